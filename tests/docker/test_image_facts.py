"""The upstream-image facts the stack relies on, checked on the local stand-in images (docker/IMAGES.md).

No registry is reachable, so the stack's containers run on local CPU images built by scripts/docker/build-images.sh.
These tests pin what those images reproduce: paths, entrypoints, commands, env, user, healthcheck, ports. If an
upstream fact changes, docker/IMAGES.md, the Dockerfiles under docker/ and the expectations below change together;
if the stack's own assumptions drift (stack.render.paths, stack.render.containers), the last tests fail.

Containers run with `--network none`: nothing leaves the machine, and the checks talk to each service over the
container's own loopback (`docker exec`). One exception, the llama-swap serving test: its port is published on
127.0.0.1 only and the test talks to it there.

The llama-swap image exists when the llama-swap binary does (scripts/install-tools.sh builds v250 into the toolchain
directory): without it these tests skip, except under CI, where they fail; with the binary installed and no image
they always fail.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.docker import support
from tests.docker.fixtures import image_of
from tests.docker.support import LITELLM, LLAMA_SERVER, LLAMA_SWAP, TEST_LABEL, docker

pytestmark = pytest.mark.docker

DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH of the upstream bases (ubuntu, python:*-slim) and of our imported rootfs."""


@dataclass(frozen=True)
class ImageConfig:
    """What `docker image inspect` must show (docker/IMAGES.md has the sources)."""

    key: str
    upstream: str
    entrypoint: list[str]
    cmd: list[str] | None
    workdir: str
    user: str
    healthcheck: list[str] | None
    exposed_ports: list[str]
    env: dict[str, str] = field(default_factory=dict)
    path: str = DEBIAN_PATH


EXPECTED = [
    ImageConfig(
        key=LLAMA_SERVER,
        upstream="ghcr.io/ggml-org/llama.cpp:server-b<N> (.devops/cpu.Dockerfile, server stage)",
        entrypoint=["/app/llama-server"],
        cmd=None,  # setting ENTRYPOINT resets the base's CMD
        workdir="/app",
        user="",  # root
        healthcheck=["CMD", "curl", "-f", "http://localhost:8080/health"],
        exposed_ports=[],
        env={"LLAMA_ARG_HOST": "0.0.0.0"},
    ),
    ImageConfig(
        key=LLAMA_SWAP,
        upstream="ghcr.io/mostlygeek/llama-swap:v<LS>-cpu-b<N> (docker/llama-swap.Containerfile, root variant)",
        entrypoint=["/app/llama-swap", "-config", "/app/config.yaml", "-watch-config"],
        cmd=None,
        workdir="/app",
        user="0:0",
        healthcheck=["CMD-SHELL", "curl -f http://localhost:8080/ || exit 1"],
        exposed_ports=[],
        env={"LLAMA_ARG_HOST": "0.0.0.0", "HOME": "/root"},
        path=f"/app:{DEBIAN_PATH}",
    ),
    ImageConfig(
        key=LITELLM,
        upstream="ghcr.io/berriai/litellm:v1.106.12 (Dockerfile, runtime stage)",
        entrypoint=["docker/prod_entrypoint.sh"],
        cmd=["--port", "4000"],
        workdir="/app",
        user="",  # root
        healthcheck=None,
        exposed_ports=["4000/tcp"],
        path=f"/app/.venv/bin:{DEBIAN_PATH}",
    ),
]


def _run(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """`docker run --rm --network none` and return the result (not checked)."""
    opts = ["--rm", "--network", "none", "--label", f"{TEST_LABEL}=image-facts"]
    if entrypoint is not None:
        opts += ["--entrypoint", entrypoint]
    return docker("run", *opts, image, *args, check=False, timeout=180)


def _exec(name: str, script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return docker("exec", name, "sh", "-c", script, check=False, timeout=timeout)


def _start(image: str, service: str, *args: str, options: tuple[str, ...] = ()) -> str:
    name = f"lls-facts-{service}-{uuid.uuid4().hex[:8]}"
    docker(
        "run", "-d", "--name", name, "--network", "none", "--label", f"{TEST_LABEL}=image-facts",
        *options, image, *args, timeout=180,
    )
    return name


# --- image configuration (no container) ------------------------------------------------------------------------


@pytest.mark.parametrize("expected", EXPECTED, ids=[e.key for e in EXPECTED])
def test_image_config_matches_upstream(local_images: dict[str, str], expected: ImageConfig) -> None:
    config: dict[str, Any] = support.inspect_image(image_of(local_images, expected.key))["Config"]
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    actual = {
        "entrypoint": config.get("Entrypoint"),
        "cmd": config.get("Cmd"),
        "workdir": config.get("WorkingDir"),
        "user": config.get("User") or "",
        "healthcheck": (config.get("Healthcheck") or {}).get("Test"),
        "exposed_ports": sorted(config.get("ExposedPorts") or {}),
        "env": {k: env.get(k) for k in expected.env},
        "PATH": env.get("PATH"),
    }
    assert actual == {
        "entrypoint": expected.entrypoint,
        "cmd": expected.cmd,
        "workdir": expected.workdir,
        "user": expected.user,
        "healthcheck": expected.healthcheck,
        "exposed_ports": expected.exposed_ports,
        "env": expected.env,
        "PATH": expected.path,
    }, f"local image for {expected.upstream} drifted from docker/IMAGES.md"


def test_images_record_what_they_stand_in_for(local_images: dict[str, str]) -> None:
    for key, ref in local_images.items():
        labels = support.inspect_image(ref)["Config"].get("Labels") or {}
        assert labels.get("local-llm-stack.built-by") == "scripts/docker/build-images.sh", key
        assert len(labels.get("local-llm-stack.build-key", "")) == 64, key
        mimics = labels.get("local-llm-stack.mimics", "")
        prefix = {
            LLAMA_SERVER: "ghcr.io/ggml-org/llama.cpp:server-b",
            LLAMA_SWAP: "ghcr.io/mostlygeek/llama-swap:v",
            LITELLM: "ghcr.io/berriai/litellm:v",
        }[key]
        assert mimics.startswith(prefix), (key, mimics)
        # The local tag carries the same version parts as the upstream one.
        assert ref.rpartition(":")[2] in mimics, (ref, mimics)


# --- llama.cpp server image ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_server_container(local_images: dict[str, str]) -> Iterator[str]:
    """The image's own ENTRYPOINT with only `-m`: host and port come from the image and the build's defaults."""
    from stack.gguf.writers import chat_model

    model, _ = chat_model()
    name = _start(
        image_of(local_images, LLAMA_SERVER), "llama-server", "-m", "/models/model.gguf",
        # the image's HEALTHCHECK command, probed every second instead of every 30 s
        options=("--health-interval", "1s", "--health-start-period", "60s", "-v", f"{model}:/models/model.gguf:ro"),
    )
    try:
        yield name
    finally:
        support.remove_container(name)


def test_llama_server_entrypoint_takes_arguments(local_images: dict[str, str]) -> None:
    proc = _run(image_of(local_images, LLAMA_SERVER), "--version")
    assert proc.returncode == 0, proc.stderr
    assert "version:" in proc.stdout + proc.stderr


def test_llama_server_healthcheck_passes_on_the_default_port(llama_server_container: str) -> None:
    """The upstream HEALTHCHECK curls :8080 while no Dockerfile sets a port: this build must default to 8080
    (llama.cpp moves its default to 9931 in later builds; then the HEALTHCHECK needs LLAMA_ARG_PORT=8080)."""
    support.wait_healthy(llama_server_container)
    logs = docker("logs", llama_server_container)
    assert "0.0.0.0:8080" in logs.stdout + logs.stderr, "LLAMA_ARG_HOST=0.0.0.0 and port 8080 should be in effect"


def test_llama_server_image_has_its_libraries_and_curl(llama_server_container: str) -> None:
    proc = _exec(
        llama_server_container,
        "set -e; command -v curl; test -x /app/llama-server; ls /app; "
        "! ldd /app/llama-server | grep 'not found'; id -u; pwd",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split()
    assert lines[0] == "/usr/bin/curl"
    assert lines[-2:] == ["0", "/app"]
    assert any(f.startswith("libllama") for f in lines), "llama-server's shared libraries belong in /app"


# --- llama-swap image ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_swap_container(local_images: dict[str, str]) -> Iterator[str]:
    """The image's ENTRYPOINT with its default /app/config.yaml (which loads nothing until a request comes)."""
    name = _start(
        image_of(local_images, LLAMA_SWAP), "llama-swap",
        options=("--health-interval", "1s", "--health-start-period", "30s"),
    )
    try:
        yield name
    finally:
        support.remove_container(name)


def test_llama_swap_binary_runs(local_images: dict[str, str]) -> None:
    """`/app/llama-swap -version` works, and names the release the image tag carries (v<LS>-cpu-b<N>)."""
    image = image_of(local_images, LLAMA_SWAP)
    proc = _run(image, "-version", entrypoint="/app/llama-swap")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    release = image.rpartition(":")[2].split("-", 1)[0].removeprefix("v")  # "v250-cpu-b11434" -> "250"
    assert out.startswith(f"version: {release} ("), out


def test_llama_swap_healthcheck_passes_on_8080(llama_swap_container: str) -> None:
    support.wait_healthy(llama_swap_container)


def test_llama_swap_image_layout(llama_swap_container: str) -> None:
    """/app holds llama-swap, its config and llama-server (with PATH=/app:...), curl for the healthcheck."""
    proc = _exec(
        llama_swap_container,
        "set -e; command -v curl; command -v llama-server; command -v llama-swap; "
        "test -f /app/config.yaml; ! ldd /app/llama-server | grep 'not found'; id -u; pwd",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["/usr/bin/curl", "/app/llama-server", "/app/llama-swap", "0", "/app"]


SERVE_MODEL = "tiny-chat"


def _local_get(url: str, timeout: float = 10, data: bytes | None = None) -> tuple[int, bytes]:
    """HTTP to 127.0.0.1 only, never through a proxy from the environment."""
    assert url.startswith("http://127.0.0.1:"), url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture(scope="module")
def llama_swap_serving(local_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image's own ENTRYPOINT (-config /app/config.yaml -watch-config) with a one-model config in place of the
    default, a fixture GGUF under /models, port 8080 published on 127.0.0.1 only. Yields the base URL."""
    from stack.gguf.writers import chat_model

    model, _ = chat_model()
    config = tmp_path_factory.mktemp("llama-swap") / "config.yaml"
    config.write_text(
        "healthCheckTimeout: 120\n"
        "logLevel: debug\n"
        "models:\n"
        f"  {SERVE_MODEL}:\n"
        "    cmd: >-\n"
        "      /app/llama-server --host 127.0.0.1 --port ${PORT} -m /models/model.gguf -ngl 0 -c 256 -t 1\n"
        "    proxy: http://127.0.0.1:${PORT}\n"
        "    checkEndpoint: /health\n"
    )
    config.chmod(0o644)
    name = f"lls-facts-llama-swap-serve-{uuid.uuid4().hex[:8]}"
    try:
        docker(
            "run", "-d", "--name", name, "--label", f"{TEST_LABEL}=image-facts",
            "-p", "127.0.0.1::8080",
            "-v", f"{Path(model).resolve()}:/models/model.gguf:ro",
            "-v", f"{config}:/app/config.yaml:ro",
            image_of(local_images, LLAMA_SWAP), timeout=180,
        )
        binding = docker("port", name, "8080/tcp").stdout.split()
        assert binding and all(b.startswith("127.0.0.1:") for b in binding), f"published beyond 127.0.0.1: {binding}"
        base = f"http://{binding[0]}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if _local_get(f"{base}/health", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if not support.container_state(name).get("Running") or time.monotonic() > deadline:
                logs = docker("logs", "--tail", "40", name, check=False)
                pytest.fail(f"llama-swap did not answer {base}/health:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}",
                            pytrace=False)
            time.sleep(0.5)
        yield base
    finally:
        support.remove_container(name)


def test_llama_swap_serves_a_config_on_a_published_port(llama_swap_serving: str) -> None:
    """llama-swap answers /health and lists the configured model, still unloaded (nothing started yet)."""
    status, body = _local_get(f"{llama_swap_serving}/health")
    assert (status, body) == (200, b"OK")
    status, body = _local_get(f"{llama_swap_serving}/v1/models")
    assert status == 200, body
    models = json.loads(body)
    assert [m["id"] for m in models["data"]] == [SERVE_MODEL], models
    assert models["data"][0]["owned_by"] == "llama-swap"


def test_llama_swap_starts_app_llama_server_for_a_request(llama_swap_serving: str) -> None:
    """A completion makes llama-swap run the model's cmd: /app/llama-server from the same image, on ${PORT}."""
    payload = json.dumps({"model": SERVE_MODEL, "prompt": "hello", "max_tokens": 4, "temperature": 0}).encode()
    status, body = _local_get(f"{llama_swap_serving}/v1/completions", timeout=180, data=payload)
    assert status == 200, body[-2000:]
    result = json.loads(body)
    assert result["choices"] and result["usage"]["completion_tokens"] >= 1, result
    status, body = _local_get(f"{llama_swap_serving}/running")
    assert status == 200, body
    running = json.loads(body)["running"]
    assert [(r["model"], r["state"]) for r in running] == [(SERVE_MODEL, "ready")], running


# --- LiteLLM image ---------------------------------------------------------------------------------------------


LITELLM_LIVELINESS = (
    "import urllib.request; "
    "print(urllib.request.urlopen('http://127.0.0.1:4000/health/liveliness', timeout=5).read().decode())"
)


@pytest.fixture(scope="module")
def litellm_container(local_images: dict[str, str]) -> Iterator[str]:
    """The image's ENTRYPOINT and CMD unchanged (no config): the proxy must come up on port 4000."""
    name = _start(
        image_of(local_images, LITELLM), "litellm",
        options=(
            "-e", f"LITELLM_MASTER_KEY=sk-{secrets.token_hex(24)}",
            "-e", "LITELLM_LOCAL_MODEL_COST_MAP=True",  # no fetch of the remote cost map
        ),
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            proc = docker("exec", name, "python3", "-c", LITELLM_LIVELINESS, check=False, timeout=30)
            if proc.returncode == 0:
                break
            running = support.container_state(name).get("Running")
            if not running or time.monotonic() > deadline:
                logs = docker("logs", "--tail", "40", name, check=False)
                pytest.fail(
                    f"LiteLLM did not answer /health/liveliness on :4000 (running={running}):\n"
                    f"{proc.stderr[-1500:]}\nlogs:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}",
                    pytrace=False,
                )
            time.sleep(1)
        yield name
    finally:
        support.remove_container(name)


def test_litellm_default_command_serves_liveliness_on_4000(litellm_container: str) -> None:
    proc = docker("exec", litellm_container, "python3", "-c", LITELLM_LIVELINESS)
    assert "I'm alive" in proc.stdout


def test_litellm_image_layout(litellm_container: str) -> None:
    """python3 (the stack's healthcheck tool) and litellm from /app/.venv, the entrypoint script, no curl."""
    proc = _exec(
        litellm_container,
        "set -e; command -v python3; command -v litellm; test -x /app/docker/prod_entrypoint.sh; "
        "if command -v curl >/dev/null; then echo has-curl; else echo no-curl; fi; "
        "python3 -c 'import litellm.proxy.proxy_server'; id -u; pwd",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["/app/.venv/bin/python3", "/app/.venv/bin/litellm", "no-curl", "0", "/app"]


# --- the stack's own assumptions about these images ------------------------------------------------------------


SERVICE_CONTAINERS = {"llama-swap": "llama_swap_container", "embeddings": "llama_server_container",
                      "litellm": "litellm_container"}


@pytest.mark.parametrize("service", list(SERVICE_CONTAINERS))
def test_stack_specs_programs_and_healthchecks_work_in_the_local_images(
    request: pytest.FixtureRequest, service: str
) -> None:
    """What stack.render.containers declares (entrypoint binary, upload directory, healthcheck command) works in
    the image that stands in for the spec's upstream image; the healthcheck runs in a live container of it."""
    from tests.unit.render_samples import ALL_SECRETS, deployment

    specs = {s.service: s for s in deployment(secret_keys=ALL_SECRETS - {"api_key"}).specs}
    assert set(specs) == set(SERVICE_CONTAINERS), "new service: add its container fixture here"
    spec = specs[service]
    container = request.getfixturevalue(SERVICE_CONTAINERS[service])

    checks = [f"test -x {spec.entrypoint[0]}"] if spec.entrypoint else []
    checks += [f"test -d {upload.path.rpartition('/')[0] or '/'}" for upload in spec.uploads]
    checks += [f"test -d {mount.target} || test ! -e {mount.target}" for mount in spec.mounts]
    if checks:
        proc = _exec(container, " && ".join(checks))
        assert proc.returncode == 0, (checks, proc.stderr)

    kind, *command = spec.healthcheck.test
    assert kind in ("CMD", "CMD-SHELL"), spec.healthcheck.test
    argv = command if kind == "CMD" else ["sh", "-c", command[0]]
    if service == "embeddings":
        support.wait_healthy(container)  # the model must have loaded before /health answers 200
    if service == "llama-swap":
        support.wait_healthy(container)
    proc = docker("exec", container, *argv, check=False, timeout=60)
    assert proc.returncode == 0, f"{service}: healthcheck {spec.healthcheck.test} failed: {proc.stdout}{proc.stderr}"
