"""The stack's declared containers on a real Docker engine, brought up from `python -m stack compose` output.

`python -m stack compose --cpu` turns the same `ContainerSpec`s the Pulumi components consume into a compose file
(`stack.compose.compose_service`, the counterpart of `container_args`); Debian's `docker-compose` 1.29 runs it on
the local images (docker/IMAGES.md) with fixture models: the real all-MiniLM-L6-v2 as the embedding server and
LiteLLM with a master key, the `api_key` secret set so both require a key. Then:

* the testinfra smoke suite (`tests/smoke --hosts=local://`) runs against the stack outputs `compose` wrote
  beside the file (the shape of `pulumi stack output --json`; endpoints on the 127.0.0.1 ports it publishes):
  health, keys refused, embeddings directly and through LiteLLM (which reaches the embedding server by its DNS
  alias on the stack's network), and the Docker checks: running and healthy, restart policy, labels, read-only
  `/models`, ports bound to 127.0.0.1 only;
* one setting of the embedding server changes; `docker-compose up` replaces that container and no other;
* `docker-compose down -v` leaves no container, network or volume of the project.

**Why no llama-swap service**: llama-swap cannot be installed here (the Go module proxy answers 403 for
github.com/mostlygeek/llama-swap), so there is no llama-swap image, and a stand-in would prove nothing. The
exported file has the llama-swap service; the test runs that file minus that one service (and LiteLLM's
`depends_on` entry for it), every other line as exported. Without llama-swap LiteLLM's chat names have no
backend, so the targets list no llama-swap models and no LiteLLM chat names (its embedding names stay).

Another test creates (never starts) the GPU profile's embedding container: the GPU request reaches Docker.
The failure test starts a stack whose embedding model file is missing: llama-server exits, Docker reports the
container unhealthy, `docker-compose up` refuses to start LiteLLM on it, and the smoke suite fails naming the
service.

Only 127.0.0.1 published ports and the network the compose file creates are used; every project is torn down in
a finalizer, also when a test fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stack.container_specs import EMBEDDINGS, LITELLM, LLAMA_SWAP
from tests.docker import support
from tests.docker.compose_project import ComposeProject, without_services, write_compose
from tests.docker.support import LITELLM as LITELLM_IMAGE
from tests.docker.support import LLAMA_SERVER
from tests.fixtures import gguf_models as gm
from tests.harness.loopback import free_ports, random_key
from tests.harness.smoke_runner import SmokeRun, run_smoke_suite
from tests.smoke.client import Service

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
NO_LLAMA_SWAP = (
    "llama-swap is not installable here (the Go module proxy answers 403 for github.com/mostlygeek/llama-swap): "
    "no image, so its service is left out of the exported compose file"
)
MISSING_MODEL = "nomic-embed-text-v1.5.Q8_0.gguf"
"""A file the fixture models directory does not hold; the catalog sizes it by name, as `plan` would."""


# --- the stack under test ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackUnderTest:
    path: Path
    """The Pulumi-style stack file."""
    network: str
    ports: dict[str, int]
    secrets: dict[str, str]
    """Shell variable → value, for docker-compose and the smoke suite."""


def _stack_config(
    local_images: dict[str, str], network: str, ports: dict[str, int], embedding: dict[str, Any]
) -> dict[str, Any]:
    chat, _ = gm.chat_model()
    return {
        "gpu": {"profile": "rtx-5080"},  # `compose --cpu` switches it to the cpu profile
        "models_dir": str(chat.parent),
        "network": {"name": network},
        "ports": ports,
        "images": {
            "llama_swap": "local/llama-swap:v250-cpu-b11434",  # never run (no llama-swap here)
            "llama_server": local_images[LLAMA_SERVER],
            "litellm": local_images[LITELLM_IMAGE],
        },
        "models": {"chat": {"file": chat.name, "ctx_size": 2048, "aliases": ["chatbot"]}},
        "embeddings": embedding,
        "litellm": {"enabled": True, "num_retries": 0},
        # Secrets by name only, as in a Pulumi stack file; their values come from the environment of compose.
        "api_key": {"secure": "v1:not-read"},
        "litellm_master_key": {"secure": "v1:not-read"},
    }


def write_stack(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"config": {f"local-llm-stack:{k}": v for k, v in config.items()}}))
    return path


def minilm_embedding(**changes: Any) -> dict[str, Any]:
    emb, _ = gm.minilm_model()
    return {"name": "minilm", "aliases": ["embed-small"], "file": emb.name, "ctx_size": 512, "ubatch": 512,
            "batch": 512, "pooling": "mean", **changes}


def new_stack(tmp: Path, local_images: dict[str, str], embedding: dict[str, Any]) -> StackUnderTest:
    network = f"lls-t{uuid.uuid4().hex[:8]}"
    swap, emb, lite = free_ports(3)
    ports = {"llama_swap": swap, "embeddings": emb, "litellm": lite}
    path = write_stack(tmp / "Pulumi.compose-test.yaml", _stack_config(local_images, network, ports, embedding))
    secrets = {"LLAMA_SWAP_API_KEY": random_key(), "LITELLM_MASTER_KEY": random_key()}
    return StackUnderTest(path, network, ports, secrets)


def export_compose(stack: StackUnderTest, out: Path, *, cpu: bool = True) -> dict[str, Any]:
    """`python -m stack compose [--cpu]`, as a user runs it; returns the exported document."""
    proc = subprocess.run(
        [sys.executable, "-m", "stack", "compose", "--config", str(stack.path), "--out", str(out),
         *(["--cpu"] if cpu else [])],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, Any] = yaml.safe_load(out.read_text())
    return doc


def file_under_test(exported: dict[str, Any], out: Path, drop: set[str]) -> Path:
    """The exported file minus `drop`, next to it (so its relative config-file paths still resolve)."""
    assert LLAMA_SWAP in drop
    return write_compose(
        out.with_name("under-test.yml"), without_services(exported, drop),
        f"{out.name} without services {sorted(drop)}: {NO_LLAMA_SWAP}",
    )


def smoke_targets(out: Path, services: set[str]) -> dict[str, Any]:
    """The stack outputs `python -m stack compose` wrote next to the compose file (what `pulumi stack output
    --json` gives for the same stack), reduced to the services that run: no llama-swap, so no llama-swap models
    and no LiteLLM chat names (they need llama-swap behind them)."""
    outputs: dict[str, Any] = json.loads(out.with_name(f"{out.stem}.outputs.json").read_text())
    assert set(outputs["endpoints"]) == {LLAMA_SWAP, EMBEDDINGS, LITELLM}
    targets = {
        **outputs,
        "endpoints": {s: u for s, u in outputs["endpoints"].items() if s in services},
        "container_names": {s: n for s, n in outputs["container_names"].items() if s in services},
        "auth_required": {s: v for s, v in outputs["auth_required"].items() if s in services},
        "compose": {LLAMA_SWAP: NO_LLAMA_SWAP},
    }
    for service in {LLAMA_SWAP, EMBEDDINGS, LITELLM} - services:
        targets.pop(f"{service.replace('-', '_')}_url", None)
    targets["models"] = {**outputs["models"], "llama_swap": {}}
    if targets["models"]["litellm"] is not None:
        targets["models"]["litellm"] = {**outputs["models"]["litellm"], "chat": []}
    return targets


# --- running things ---------------------------------------------------------------------------------------------


@pytest.fixture
def projects(compose_cli: str) -> Iterator[list[ComposeProject]]:
    """Compose projects a test created; each is brought down (and anything left force-removed) at the end."""
    created: list[ComposeProject] = []
    yield created
    for project in created:
        project.down()
        project.force_remove()


def project_for(cli: str, stack: StackUnderTest, file: Path, projects: list[ComposeProject]) -> ComposeProject:
    project = ComposeProject(cli, stack.network, file, stack.network, dict(stack.secrets))
    projects.append(project)
    return project


def run_smoke(targets: dict[str, Any], tmp: Path, secrets: dict[str, str], *extra: str) -> SmokeRun:
    """`python -m pytest tests/smoke --hosts=local:// --targets=...`, as a user runs it on the Docker host."""
    path = tmp / f"targets-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(targets, indent=2))
    return run_smoke_suite(path, path.with_suffix(".xml"), secrets, *extra)


def wait_health(name: str, status: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        state = support.container_state(name)
        if (state.get("Health") or {}).get("Status") == status or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (state.get("Health") or {}).get("Status") == status, f"{name}: {state}"
    return state


def assert_clean(project: ComposeProject) -> None:
    volumes = project.mounted_volumes()
    down = project.down()
    assert down.returncode == 0, down.stdout + down.stderr
    left = project.leftovers()
    assert left == {"containers": [], "networks": [], "volumes": []}, left
    still = {v for v in volumes if support.docker("volume", "inspect", v, check=False).returncode == 0}
    assert not still, f"volumes left behind: {sorted(still)}"


# --- tests ------------------------------------------------------------------------------------------------------


def test_stack_from_the_compose_export_passes_the_smoke_suite_and_replaces_only_what_changed(
    compose_cli: str, local_images: dict[str, str], projects: list[ComposeProject], tmp_path: Path
) -> None:
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - t0 - sum(timings.values()), 1)

    stack = new_stack(tmp_path, local_images, minilm_embedding())
    out = tmp_path / "compose" / "docker-compose.yml"
    exported = export_compose(stack, out)
    assert list(exported["services"]) == [LLAMA_SWAP, EMBEDDINGS, LITELLM]
    assert not any("deploy" in s for s in exported["services"].values()), "--cpu: no GPU request"
    project = project_for(compose_cli, stack, file_under_test(exported, out, {LLAMA_SWAP}), projects)
    names = {s: f"{stack.network}-{s}" for s in (EMBEDDINGS, LITELLM)}
    lap("export")

    # LiteLLM waits for the embedding server to be healthy (depends_on), so `up` returns once both exist.
    project.run("up", "-d", timeout=400)
    lap("up")
    for name in names.values():
        support.wait_healthy(name, timeout_s=240)
    lap("healthy")

    run = run_smoke(smoke_targets(out, {EMBEDDINGS, LITELLM}), tmp_path, stack.secrets)
    lap("smoke")
    assert run.rc == 0, run.output[-6000:]
    assert not run.failed and not run.skipped, run.output[-3000:]
    docker_checks = {
        f"test_containers::{check}[{service}-local]"
        for service in (EMBEDDINGS, LITELLM)
        for check in ("test_container_running_and_healthy", "test_container_labels",
                      "test_ports_published_on_bind_address_only")
    } | {f"test_containers::test_models_mounted_read_only[{EMBEDDINGS}-local]"}
    expected = docker_checks | {
        "test_services::test_health[embeddings]", "test_services::test_health[litellm]",
        "test_services::test_published_port_listens[embeddings-local]",
        "test_services::test_published_port_listens[litellm-local]",
        "test_services::test_requests_without_key_are_refused[embeddings]",
        "test_services::test_requests_without_key_are_refused[litellm]",
        "test_embeddings::test_embedding[embeddings:minilm]", "test_embeddings::test_embedding[litellm:embed-small]",
        "test_embeddings::test_embedding[litellm:minilm]",
        "test_litellm::test_litellm_lists_every_public_name",
    }
    assert expected <= set(run.passed), (sorted(expected - set(run.passed)), run.output[-3000:])

    # One setting of the embedding server changes: only its service changes, only its container is replaced.
    before = {s: project.container_id(n) for s, n in names.items()}
    litellm_file = out.parent / "docker-compose.files" / LITELLM / "app" / "config.yaml"
    litellm_inode = litellm_file.stat().st_ino
    write_stack(stack.path, _stack_config(local_images, stack.network, stack.ports, minilm_embedding(ctx_size=1024)))
    changed = export_compose(stack, out)
    assert {k for k in exported["services"] if exported["services"][k] != changed["services"][k]} == {EMBEDDINGS}
    assert litellm_file.stat().st_ino == litellm_inode, "an unchanged config file must not be rewritten"
    file_under_test(changed, out, {LLAMA_SWAP})
    lap("re-export")
    up = project.run("up", "-d", timeout=400)
    support.wait_healthy(names[EMBEDDINGS], timeout_s=240)
    lap("re-up")
    after = {s: project.container_id(n) for s, n in names.items()}
    assert after[EMBEDDINGS] != before[EMBEDDINGS], up.stdout + up.stderr
    assert after[LITELLM] == before[LITELLM], up.stdout + up.stderr
    entrypoint = json.loads(support.docker("inspect", "-f", "{{json .Config.Entrypoint}}", names[EMBEDDINGS]).stdout)
    assert entrypoint[entrypoint.index("-c") + 1] == "1024"
    # LiteLLM, untouched, reaches the replacement by its DNS alias on the stack's network.
    lite = Service(LITELLM, f"http://127.0.0.1:{stack.ports['litellm']}", key=stack.secrets["LITELLM_MASTER_KEY"],
                   timeout=60)
    data = lite.json("POST", "/v1/embeddings", {"model": "embed-small", "input": ["hello"]})
    assert len(data["data"][0]["embedding"]) == 384

    assert_clean(project)
    lap("down")
    print(f"timings (s): {timings}")


def test_missing_model_file_is_reported_unhealthy_naming_the_service(
    compose_cli: str, local_images: dict[str, str], projects: list[ComposeProject], tmp_path: Path
) -> None:
    stack = new_stack(tmp_path, local_images, minilm_embedding(file=MISSING_MODEL))
    models_dir = Path(gm.chat_model()[0].parent)
    assert not (models_dir / MISSING_MODEL).exists()
    out = tmp_path / "compose" / "docker-compose.yml"
    exported = export_compose(stack, out)
    project = project_for(compose_cli, stack, file_under_test(exported, out, {LLAMA_SWAP}), projects)
    emb_name = f"{stack.network}-{EMBEDDINGS}"

    # compose starts the embedding server, sees it unhealthy and refuses to start LiteLLM, which depends on it.
    up = project.run("up", "-d", check=False, timeout=400)
    assert up.returncode != 0, up.stdout + up.stderr
    emb_id = project.container_id(emb_name)
    assert f'Container "{emb_id[:12]}" is unhealthy' in up.stdout + up.stderr, up.stdout + up.stderr
    # Docker's own verdict: each time llama-server exits the health turns unhealthy (starting again on restart).
    state = wait_health(emb_name, "unhealthy", timeout_s=60)
    assert state["Restarting"] or not state["Running"], state
    assert support.docker("ps", "-aq", "--filter", f"name=^/{stack.network}-{LITELLM}$").stdout.strip() == ""

    run = run_smoke(smoke_targets(out, {EMBEDDINGS}), tmp_path, stack.secrets, "--ready-timeout=5")
    assert run.rc == 1, run.output[-4000:]
    health = run.failed.get(f"test_containers::test_container_running_and_healthy[{EMBEDDINGS}-local]", "")
    assert f"{EMBEDDINGS}: container '{emb_name}' is unhealthy" in health, run.output[-4000:]
    assert f"failed to load model '/models/{MISSING_MODEL}'" in health, health
    print(f"smoke suite on the broken stack: {health.splitlines()[0]}")
    assert f"{EMBEDDINGS} (http://127.0.0.1:{stack.ports['embeddings']})" in run.failed.get(
        f"test_services::test_health[{EMBEDDINGS}]", ""
    ), run.output[-4000:]
    assert all(EMBEDDINGS in text for text in run.failed.values()), run.failed
    # What the stack configured is still right: labels, read-only models, ports on 127.0.0.1 only.
    assert {
        f"test_containers::test_container_labels[{EMBEDDINGS}-local]",
        f"test_containers::test_models_mounted_read_only[{EMBEDDINGS}-local]",
        f"test_containers::test_ports_published_on_bind_address_only[{EMBEDDINGS}-local]",
    } <= set(run.passed), run.output[-4000:]

    assert_clean(project)


def test_gpu_profile_export_requests_the_gpu_from_docker(
    compose_cli: str, local_images: dict[str, str], projects: list[ComposeProject], tmp_path: Path
) -> None:
    """Without `--cpu` the GPU services carry `deploy.resources.reservations.devices`; docker-compose 1.29 turns
    that into the device request `docker run --gpus all` makes (what Pulumi's `gpus` sets). The container is only
    created, never started: this machine has no GPU."""
    stack = new_stack(tmp_path, local_images, minilm_embedding())
    out = tmp_path / "compose" / "docker-compose.yml"
    exported = export_compose(stack, out, cpu=False)
    assert {k for k, s in exported["services"].items() if "deploy" in s} == {LLAMA_SWAP, EMBEDDINGS}
    check = ComposeProject(compose_cli, stack.network, out, stack.network, dict(stack.secrets))
    check.run("config", "-q")  # the whole exported file, llama-swap included, is valid for docker-compose
    project = project_for(compose_cli, stack, file_under_test(exported, out, {LLAMA_SWAP, LITELLM}), projects)
    project.run("up", "--no-start", EMBEDDINGS, timeout=300)
    name = f"{stack.network}-{EMBEDDINGS}"
    info = json.loads(support.docker("inspect", name).stdout)[0]
    requests = info["HostConfig"]["DeviceRequests"]
    assert [(r["Driver"], r["Count"], r["Capabilities"]) for r in requests] == [("nvidia", -1, [["gpu"]])], requests
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in info["Config"]["Env"]
    entrypoint = info["Config"]["Entrypoint"]
    assert entrypoint[entrypoint.index("-ngl") + 1] == "999"
    assert_clean(project)
