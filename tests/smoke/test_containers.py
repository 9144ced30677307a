"""The stack's containers on the Docker host (testinfra `host.docker`): running and healthy, with the restart
policy, labels and read-only models mount the stack gave them, and ports published on the bind address only.

Collected only when the targets name containers and `docker` works on every `--hosts` host (run pytest as a
user in the `docker` group, or add `--sudo`).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from stack.render.containers import CONFIG_HASH_LABEL, RESTART, SERVICE_LABEL
from stack.render.paths import CONTAINER_PATHS
from tests.smoke.conftest import Deployment
from tests.smoke.targets import Targets


def _inspect(host: Any, service: str, targets: Targets) -> dict[str, Any]:
    name = targets.container_names[service]
    out = host.run("docker inspect --type container %s", name)
    where = host.backend.get_pytest_id()
    assert out.rc == 0, f"{service}: container {name!r} not found on {where}: {out.stderr.strip()}"
    return dict(json.loads(out.stdout)[0])


def _why(host: Any, name: str, info: dict[str, Any]) -> str:
    """State, exit code, restarts, the healthcheck's last output and the last log lines: why it is not healthy."""
    state = info["State"]
    parts = [f"status {state.get('Status')!r}", f"exit code {state.get('ExitCode')}",
             f"{info.get('RestartCount', 0)} restart(s)"]
    if state.get("Error"):
        parts.append(f"error {state['Error']!r}")
    probes = (state.get("Health") or {}).get("Log") or []
    if probes:
        last = probes[-1]
        parts.append(f"last healthcheck exit {last.get('ExitCode')}: {str(last.get('Output', '')).strip()[-300:]!r}")
    logs = host.run("docker logs --tail 5 %s", name)
    tail = " | ".join(line.strip() for line in (logs.stdout + logs.stderr).splitlines()[-5:] if line.strip())
    if tail:
        parts.append(f"last log lines: {tail[-800:]}")
    return "; ".join(parts)


def test_container_running_and_healthy(host: Any, container_service: str, deployment: Deployment) -> None:
    """Running, not restarting, `unless-stopped`; its Docker healthcheck reports healthy (polled while starting).

    A failure names the service and container and says why: the health status, exit code, restart count, the
    healthcheck's last output and the container's last log lines (e.g. llama-server's `failed to load model`)."""
    name = deployment.targets.container_names[container_service]
    deadline = time.monotonic() + deployment.ready_timeout
    while True:
        info = _inspect(host, container_service, deployment.targets)
        state = info["State"]
        health = (state.get("Health") or {}).get("Status", "none")
        if health != "starting" or time.monotonic() > deadline:
            break
        time.sleep(2)
    policy = info["HostConfig"]["RestartPolicy"]["Name"]
    assert policy == RESTART, f"{container_service}: restart policy {policy!r}, expected {RESTART!r}"
    running = host.docker(name).is_running
    if health != "healthy" or not running or state.get("Restarting"):
        what = "restarting" if state.get("Restarting") else "running" if running else "not running"
        raise AssertionError(
            f"{container_service}: container {name!r} is {health} ({what}; {_why(host, name, info)})"
        )


def test_container_labels(host: Any, container_service: str, targets: Targets) -> None:
    labels = _inspect(host, container_service, targets)["Config"].get("Labels") or {}
    assert labels.get(SERVICE_LABEL) == container_service, (
        f"{container_service}: label {SERVICE_LABEL}={labels.get(SERVICE_LABEL)!r}"
    )
    digest = labels.get(CONFIG_HASH_LABEL, "")
    assert re.fullmatch(r"[0-9a-f]{64}", digest), f"{container_service}: label {CONFIG_HASH_LABEL}={digest!r}"


def test_models_mounted_read_only(host: Any, models_mount_service: str, targets: Targets) -> None:
    mounts = _inspect(host, models_mount_service, targets).get("Mounts") or []
    at = [m for m in mounts if m.get("Destination") == CONTAINER_PATHS.models_dir]
    assert at, f"{models_mount_service}: nothing mounted at {CONTAINER_PATHS.models_dir} ({mounts})"
    assert at[0].get("RW") is False, f"{models_mount_service}: {CONTAINER_PATHS.models_dir} is mounted writable"


def test_ports_published_on_bind_address_only(host: Any, container_service: str, targets: Targets) -> None:
    """The service's port is published on the address of its endpoint (`bind_address`, 127.0.0.1 by default) and
    the container publishes nothing on any other address (an empty HostIp is every interface)."""
    address, port = targets.published(container_service)
    bindings = _inspect(host, container_service, targets)["HostConfig"].get("PortBindings") or {}
    published = sorted(
        (b.get("HostIp") or "0.0.0.0", int(b.get("HostPort") or 0), internal)
        for internal, entries in bindings.items() for b in entries or []
    )
    assert any(ip == address and p == port for ip, p, _ in published), (
        f"{container_service}: port {port} is not published on {address} ({published})"
    )
    elsewhere = [b for b in published if b[0] != address]
    assert not elsewhere, f"{container_service}: also published on other addresses than {address}: {elsewhere}"
