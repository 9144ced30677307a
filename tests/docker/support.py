"""Docker engine and local images for the container tests, via scripts/docker/{engine,build-images}.sh.

Usable outside pytest fixtures too (e.g. from another test package's conftest):

* :func:`ensure_engine` makes a daemon answer (``engine.sh start``) and says whether this call started it;
* :func:`build_local_images` builds or reuses the local stand-ins for the upstream images and returns
  ``{"LLS_IMAGE_LLAMA_SERVER": "local/llama-server:server-b11434", ...}`` (see docker/IMAGES.md);
* :func:`docker` runs the docker CLI.

Every container a test starts must carry :data:`TEST_LABEL` and be removed by that test; tests run containers with
``--network none`` (or on networks they create) so that no traffic leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_SH = REPO_ROOT / "scripts" / "docker" / "engine.sh"
BUILD_SH = REPO_ROOT / "scripts" / "docker" / "build-images.sh"

LLAMA_SERVER, LLAMA_SWAP, LITELLM = "LLS_IMAGE_LLAMA_SERVER", "LLS_IMAGE_LLAMA_SWAP", "LLS_IMAGE_LITELLM"
"""Keys of :func:`build_local_images`' result (the KEY=VALUE lines build-images.sh prints)."""

TEST_LABEL = "local-llm-stack.test"
ENGINE_START_TIMEOUT_S = 600  # includes installing docker.io with apt-get on a bare machine
BUILD_TIMEOUT_S = 1800  # a first build is ~4 min here (debootstrap x2, LiteLLM's 118 wheels); cached: ~1 s


class DockerUnavailable(RuntimeError):
    """No Docker daemon answers and engine.sh could not start one."""


def in_ci() -> bool:
    """True under CI (`CI` set to anything but empty/0/false), where missing Docker is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS...`; on failure (check=True) the error names the command and its output."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"`docker {' '.join(args)}` exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}"
        )
    return proc


def daemon_answers() -> bool:
    try:
        return docker("info", check=False, timeout=20).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def ensure_engine() -> bool:
    """Make a Docker daemon answer; True when this call started it (so the caller may stop it again)."""
    if daemon_answers():
        return False
    try:
        proc = subprocess.run(
            ["bash", str(ENGINE_SH), "start"],
            capture_output=True, text=True, timeout=ENGINE_START_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerUnavailable(f"{ENGINE_SH.name} start timed out after {exc.timeout}s") from exc
    if proc.returncode != 0 or not daemon_answers():
        output = (proc.stdout + proc.stderr)[-3000:]
        raise DockerUnavailable(f"`{ENGINE_SH.relative_to(REPO_ROOT)} start` exited {proc.returncode}: {output}")
    return True


def ensure_compose() -> str:
    """Path of Debian's `docker-compose` (1.29); `engine.sh start` installs it when missing (root, apt-get)."""
    found = shutil.which("docker-compose")
    if found:
        return found
    try:
        proc = subprocess.run(
            ["bash", str(ENGINE_SH), "start"],
            capture_output=True, text=True, timeout=ENGINE_START_TIMEOUT_S, check=False,
        )
        output = (proc.stdout + proc.stderr)[-2000:]
    except subprocess.TimeoutExpired as exc:
        output = f"timed out after {exc.timeout}s"
    found = shutil.which("docker-compose")
    if not found:
        raise DockerUnavailable(
            "docker-compose is not installed (Debian's docker-compose package; `scripts/docker/engine.sh start` "
            f"installs it when run as root): {output}"
        )
    return found


def stop_engine() -> None:
    """Stop the daemon if engine.sh started it (engine.sh leaves any other daemon alone)."""
    subprocess.run(["bash", str(ENGINE_SH), "stop"], capture_output=True, text=True, timeout=120, check=False)


def build_local_images(names: Sequence[str] = ()) -> dict[str, str]:
    """Build (or reuse) the local images; returns KEY → image reference for those that exist afterwards.

    `names`: a subset of ``llama-server``, ``llama-swap``, ``litellm`` (default: all). llama-swap's image is left
    out, with a warning from the script, when the llama-swap binary is not installed (unless
    ``LLS_REQUIRE_LLAMA_SWAP=1``, which makes that an error).
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SH), *names], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{BUILD_SH.relative_to(REPO_ROOT)}` exited {proc.returncode}:\n{proc.stderr[-5000:]}{proc.stdout}"
        )
    images: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("LLS_IMAGE_"):
            images[key] = value
    return images


def inspect_image(ref: str) -> dict[str, Any]:
    data = json.loads(docker("image", "inspect", ref).stdout)
    assert isinstance(data, list) and len(data) == 1
    result: dict[str, Any] = data[0]
    return result


def container_state(name: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
    return state


def wait_healthy(name: str, timeout_s: float = 90) -> dict[str, Any]:
    """Poll until the container's healthcheck reports healthy; raise with its last checks and logs otherwise."""
    deadline = time.monotonic() + timeout_s
    state = container_state(name)
    while time.monotonic() < deadline:
        state = container_state(name)
        if not state.get("Running"):
            break
        if state.get("Health", {}).get("Status") == "healthy":
            return state
        time.sleep(0.5)
    logs = docker("logs", "--tail", "40", name, check=False)
    raise AssertionError(
        f"container {name} is not healthy after {timeout_s}s: state={json.dumps(state)[:3000]}\n"
        f"logs:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}"
    )


def remove_container(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False, timeout=120)
