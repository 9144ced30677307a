"""The stack's containers on the Docker host (testinfra `host.docker`): running and healthy, with the restart
policy, labels and read-only models mount the stack gave them.

Collected only when the targets name containers and `docker` works on every `--hosts` host (run pytest as a
user in the `docker` group, or add `--sudo`).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from stack.container_specs import CONFIG_HASH_LABEL, RESTART, SERVICE_LABEL
from stack.render_paths import CONTAINER_PATHS
from tests.smoke.conftest import Deployment
from tests.smoke.targets import Targets


def _inspect(host: Any, service: str, targets: Targets) -> dict[str, Any]:
    name = targets.container_names[service]
    out = host.run("docker inspect --type container %s", name)
    where = host.backend.get_pytest_id()
    assert out.rc == 0, f"{service}: container {name!r} not found on {where}: {out.stderr.strip()}"
    return dict(json.loads(out.stdout)[0])


def test_container_running_and_healthy(host: Any, container_service: str, deployment: Deployment) -> None:
    """Running, not restarting, `unless-stopped`; its Docker healthcheck reports healthy (polled while starting)."""
    name = deployment.targets.container_names[container_service]
    assert host.docker(name).is_running, f"{container_service}: container {name!r} is not running"
    deadline = time.monotonic() + deployment.ready_timeout
    while True:
        info = _inspect(host, container_service, deployment.targets)
        state = info["State"]
        health = (state.get("Health") or {}).get("Status", "none")
        if health != "starting" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not state.get("Restarting"), f"{container_service}: container {name!r} is restarting"
    policy = info["HostConfig"]["RestartPolicy"]["Name"]
    assert policy == RESTART, f"{container_service}: restart policy {policy!r}, expected {RESTART!r}"
    assert health == "healthy", f"{container_service}: container {name!r} health is {health!r}"


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
