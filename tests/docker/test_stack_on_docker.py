"""The stack's declared containers on a real Docker engine, brought up from `python -m stack compose` output.

`python -m stack compose --cpu` turns the same `ContainerSpec`s the Pulumi components consume into a compose file
(`stack.targets.compose.compose_file.compose_service`, the counterpart of `container_args`); Debian's `docker-compose`
1.29 runs that file whole, as exported, on the local images (docker/IMAGES.md): llama-swap v250 (built from source by
scripts/install-tools.sh) starting the pinned llama-server for each model, the always-on embedding server (the real
all-MiniLM-L6-v2) and LiteLLM with a master key, the `api_key` secret set so every service requires a key. The
llama-swap models are the fixture chat model twice, in llama-swap's default group (one at a time): `chat`
(`jinja`, tools, alias `chatbot`) and `helper` (another context size). Then:

* the testinfra smoke suite (`tests/smoke --hosts=local://`) runs against the stack outputs `compose` wrote
  beside the file, unmodified (the shape of `pulumi stack output --json`; endpoints on the 127.0.0.1 ports it
  publishes), and passes in full: health, keys refused, llama-swap's listing (its models with their aliases and
  the embedder as `embeddings/<name>`), chat through llama-swap and LiteLLM (plain, streamed, JSON schema, forced
  tool call), a swap shown by `/running` while the embedding server stays up, embeddings directly, through
  llama-swap (which forwards them to the embedding server, its peer) and through LiteLLM, LiteLLM's routes via
  llama-swap, and the Docker checks: running and healthy, restart policy, labels, read-only `/models`, ports
  bound to 127.0.0.1 only. The fixture model's random weights never open a tool call by themselves: the suite
  gets a logit bias for that (`--tool-call-logit-bias`), as in CI's loopback deployment;
* one setting of the embedding server changes; `docker-compose up` replaces that container and no other; then
  one model's context size changes: only the llama-swap service changes (its bind-mounted config file and the
  config-hash label), only its container is replaced, and the model runs with the new size; LiteLLM, untouched,
  reaches both replacements by their DNS aliases;
* `docker-compose down -v` leaves no container, network or volume of the project.

Another test creates (never starts) the GPU profile's llama-swap and embedding containers: the GPU request reaches
Docker. The failure test starts a stack whose embedding model file is missing: llama-server exits, Docker reports
the container unhealthy, `docker-compose up` refuses to start LiteLLM on it, and the smoke suite fails naming the
service, while llama-swap still serves its own models.

The llama-swap image exists when the llama-swap binary does: without it these tests skip, except under CI, where
they fail. Only 127.0.0.1 published ports and the network the compose file creates are used; every project is torn
down in a finalizer, also when a test fails.
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

from stack.gguf import writers as gm
from stack.render.containers import EMBEDDINGS, LITELLM, LLAMA_SWAP
from tests.docker import support
from tests.docker.compose_project import ComposeProject
from tests.docker.fixtures import image_of
from tests.docker.support import LITELLM as LITELLM_IMAGE
from tests.docker.support import LLAMA_SERVER
from tests.docker.support import LLAMA_SWAP as LLAMA_SWAP_IMAGE
from tests.harness.loopback import free_ports, random_key
from tests.harness.smoke_runner import SmokeRun, run_smoke_suite
from tests.smoke.client import Service

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SERVICES = (LLAMA_SWAP, EMBEDDINGS, LITELLM)
MISSING_MODEL = "nomic-embed-text-v1.5.Q8_0.gguf"
"""A file the fixture models directory does not hold; the catalog sizes it by name, as `plan` would."""
HELPER_CTX, HELPER_CTX_CHANGED = 1024, 1536


# --- the stack under test ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackUnderTest:
    path: Path
    """The Pulumi-style stack file."""
    network: str
    ports: dict[str, int]
    secrets: dict[str, str]
    """Shell variable → value, for docker-compose and the smoke suite."""
    images: dict[str, str]
    """Config key under `images` → local image."""


def stack_images(local_images: dict[str, str]) -> dict[str, str]:
    """The local images of the three services; no llama-swap image skips (fails under CI), as test_image_facts."""
    image_of(local_images, LLAMA_SWAP_IMAGE)
    return {"llama_swap": local_images[LLAMA_SWAP_IMAGE], "llama_server": local_images[LLAMA_SERVER],
            "litellm": local_images[LITELLM_IMAGE]}


def swap_models(helper_ctx: int = HELPER_CTX) -> dict[str, Any]:
    """Two llama-swap ids on the fixture chat model, in llama-swap's default group (one loaded at a time)."""
    chat, _ = gm.chat_model()
    return {
        "chat": {"file": chat.name, "ctx_size": 2048, "jinja": True, "aliases": ["chatbot"]},
        "helper": {"file": chat.name, "ctx_size": helper_ctx},
    }


def _stack_config(stack: StackUnderTest, embedding: dict[str, Any], models: dict[str, Any]) -> dict[str, Any]:
    chat, _ = gm.chat_model()
    return {
        "gpu": {"profile": "rtx-5080"},  # `compose --cpu` switches it to the cpu profile
        "models_dir": str(chat.parent),
        "network": {"name": stack.network},
        "ports": stack.ports,
        "images": stack.images,
        "models": models,
        "embeddings": embedding,
        "litellm": {"enabled": True, "num_retries": 0},
        # Secrets by name only, as in a Pulumi stack file; their values come from the environment of compose.
        "api_key": {"secure": "v1:not-read"},
        "litellm_master_key": {"secure": "v1:not-read"},
    }


def write_stack(stack: StackUnderTest, embedding: dict[str, Any], models: dict[str, Any] | None = None) -> Path:
    config = _stack_config(stack, embedding, models or swap_models())
    stack.path.write_text(yaml.safe_dump({"config": {f"local-llm-stack:{k}": v for k, v in config.items()}}))
    return stack.path


def minilm_embedding(**changes: Any) -> dict[str, Any]:
    emb, _ = gm.minilm_model()
    return {"name": "minilm", "aliases": ["embed-small"], "file": emb.name, "ctx_size": 512, "ubatch": 512,
            "batch": 512, "pooling": "mean", **changes}


def new_stack(tmp: Path, local_images: dict[str, str], embedding: dict[str, Any]) -> StackUnderTest:
    network = f"lls-t{uuid.uuid4().hex[:8]}"
    swap, emb, lite = free_ports(3)
    secrets = {"LLAMA_SWAP_API_KEY": random_key(), "LITELLM_MASTER_KEY": random_key()}
    stack = StackUnderTest(tmp / "Pulumi.compose-test.yaml", network,
                           {"llama_swap": swap, "embeddings": emb, "litellm": lite}, secrets,
                           stack_images(local_images))
    write_stack(stack, embedding)
    return stack


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


def outputs_path(out: Path) -> Path:
    """The stack outputs `python -m stack compose` wrote next to the compose file (what `pulumi stack output
    --json` gives for the same stack): the smoke suite's targets, as they are."""
    return out.with_name(f"{out.stem}.outputs.json")


def tool_call_bias() -> dict[str, dict[str, int]]:
    """`--tool-call-logit-bias` for `chat`: random weights never open a tool call, so bias the fixture's
    single-token opener, then the end of turn (as CI's loopback deployment does through its targets)."""
    return {"chat": gm.tool_call_bias(gm.chat_model()[1])}


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


def run_smoke(out: Path, tmp: Path, secrets: dict[str, str], *extra: str) -> SmokeRun:
    """`python -m pytest tests/smoke --hosts=local:// --targets=<outputs>`, as a user runs it on the Docker host,
    on the outputs file `compose` wrote next to `out`."""
    junit = tmp / f"smoke-{uuid.uuid4().hex[:6]}.xml"
    bias = f"--tool-call-logit-bias={json.dumps(tool_call_bias())}"
    return run_smoke_suite(outputs_path(out), junit, secrets, bias, *extra)


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


def expected_checks(targets: dict[str, Any]) -> set[str]:
    """Every check the smoke suite must pass on the whole stack (test ids of tests/smoke)."""
    swap_ids = targets["models"]["embedding"]["llama_swap_ids"]
    assert swap_ids == ["embeddings/embed-small", "embeddings/minilm"], swap_ids
    containers = {
        f"test_containers::{check}[{service}-local]"
        for service in SERVICES
        for check in ("test_container_running_and_healthy", "test_container_labels",
                      "test_ports_published_on_bind_address_only")
    } | {f"test_containers::test_models_mounted_read_only[{s}-local]" for s in (LLAMA_SWAP, EMBEDDINGS)}
    services = {
        f"test_services::{check}[{service}{suffix}]"
        for service in SERVICES
        for check, suffix in (("test_health", ""), ("test_published_port_listens", "-local"),
                              ("test_requests_without_key_are_refused", ""))
    }
    chat = {
        "test_chat::test_chat_completion[llama-swap:chat]", "test_chat::test_chat_completion[llama-swap:helper]",
        "test_chat::test_chat_completion[litellm:chat]",
        *(f"test_chat::{check}[{service}:chat]"
          for check in ("test_chat_completion_streamed", "test_json_schema_response", "test_forced_tool_call")
          for service in (LLAMA_SWAP, LITELLM)),
    }
    embeddings = {
        "test_embeddings::test_embedding[embeddings:minilm]",
        # llama-swap forwards the plain names and the ids it lists to the embedding server, its peer.
        *(f"test_embeddings::test_embedding[llama-swap:{n}]" for n in ("minilm", "embed-small", *swap_ids)),
        "test_embeddings::test_embedding[litellm:minilm]", "test_embeddings::test_embedding[litellm:embed-small]",
    }
    litellm = {
        "test_litellm::test_litellm_lists_every_public_name",
        *(f"test_litellm::test_litellm_routes_public_name[{n}]" for n in ("chat", "chatbot", "helper")),
    }
    llama_swap = {
        "test_llama_swap::test_llama_swap_lists_every_id_and_alias",
        "test_llama_swap::test_swap_keeps_embedder_loaded[chat-helper]",
    }
    return containers | services | chat | embeddings | litellm | llama_swap


def container_ids(project: ComposeProject, names: dict[str, str]) -> dict[str, str]:
    return {s: project.container_id(n) for s, n in names.items()}


def up_again(project: ComposeProject, names: dict[str, str], changed: str) -> tuple[set[str], str]:
    """`docker-compose up -d` after an edit, waiting for `changed` to be healthy: the services whose container was
    replaced, and what compose printed."""
    before = container_ids(project, names)
    up = project.run("up", "-d", timeout=400)
    support.wait_healthy(names[changed], timeout_s=240)
    after = container_ids(project, names)
    return {s for s in SERVICES if after[s] != before[s]}, up.stdout + up.stderr


def changed_services(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    assert list(before["services"]) == list(after["services"])
    return {k for k in before["services"] if before["services"][k] != after["services"][k]}


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
    assert list(exported["services"]) == list(SERVICES)
    assert not any("deploy" in s for s in exported["services"].values()), "--cpu: no GPU request"
    assert exported["services"][LITELLM]["depends_on"] == {
        s: {"condition": "service_healthy"} for s in (LLAMA_SWAP, EMBEDDINGS)
    }
    targets = json.loads(outputs_path(out).read_text())
    names: dict[str, str] = targets["container_names"]
    assert names == {s: f"{stack.network}-{s}" for s in SERVICES}, names
    project = project_for(compose_cli, stack, out, projects)  # the exported file itself, every service
    lap("export")

    # LiteLLM waits for llama-swap and the embedding server to be healthy (depends_on): `up` returns once all exist.
    project.run("up", "-d", timeout=400)
    lap("up")
    for name in names.values():
        support.wait_healthy(name, timeout_s=240)
    lap("healthy")

    run = run_smoke(out, tmp_path, stack.secrets)
    lap("smoke")
    assert run.rc == 0, run.output[-6000:]
    assert not run.failed and not run.skipped, run.output[-3000:]
    expected = expected_checks(targets)
    assert expected <= set(run.passed), (sorted(expected - set(run.passed)), run.output[-3000:])
    # No matrix (llama-swap's default group): that check does not apply, and the suite says so.
    assert "not applicable: tests/smoke/test_llama_swap.py::test_matrix_keeps_what_the_sizing_allows[none]" \
        in run.output, run.output[-3000:]
    print(f"smoke suite on the whole stack: {len(run.passed)} passed ({len(expected)} expected by name)")

    files = out.parent / "docker-compose.files"
    litellm_file = files / LITELLM / "app" / "config.yaml"
    swap_file = files / LLAMA_SWAP / "app" / "config.yaml"
    inodes = {LITELLM: litellm_file.stat().st_ino, LLAMA_SWAP: swap_file.stat().st_ino}
    lite = Service(LITELLM, targets["endpoints"][LITELLM], key=stack.secrets["LITELLM_MASTER_KEY"], timeout=120)
    swap = Service(LLAMA_SWAP, targets["endpoints"][LLAMA_SWAP], key=stack.secrets["LLAMA_SWAP_API_KEY"],
                   timeout=120)

    # One setting of the embedding server changes: only its service changes, only its container is replaced.
    write_stack(stack, minilm_embedding(ctx_size=1024))
    changed = export_compose(stack, out)
    assert changed_services(exported, changed) == {EMBEDDINGS}
    assert {s: f.stat().st_ino for s, f in ((LITELLM, litellm_file), (LLAMA_SWAP, swap_file))} == inodes, \
        "an unchanged config file must not be rewritten"
    lap("re-export")
    replaced, output = up_again(project, names, EMBEDDINGS)
    lap("re-up")
    assert replaced == {EMBEDDINGS}, output
    entrypoint = json.loads(support.docker("inspect", "-f", "{{json .Config.Entrypoint}}", names[EMBEDDINGS]).stdout)
    assert entrypoint[entrypoint.index("-c") + 1] == "1024"
    # LiteLLM and llama-swap, untouched, reach the replacement by its DNS alias on the stack's network.
    data = lite.json("POST", "/v1/embeddings", {"model": "embed-small", "input": ["hello"]})
    assert len(data["data"][0]["embedding"]) == 384
    data = swap.json("POST", "/v1/embeddings", {"model": "embeddings/minilm", "input": ["hello"]})
    assert len(data["data"][0]["embedding"]) == 384

    # One model's context size changes: only llama-swap's service changes (its config file, bind-mounted, and the
    # config-hash label), only its container is replaced, and llama-swap starts that model with the new size.
    write_stack(stack, minilm_embedding(ctx_size=1024), swap_models(helper_ctx=HELPER_CTX_CHANGED))
    exported, changed = changed, export_compose(stack, out)
    assert changed_services(exported, changed) == {LLAMA_SWAP}
    assert litellm_file.stat().st_ino == inodes[LITELLM], "an unchanged config file must not be rewritten"
    assert swap_file.stat().st_ino != inodes[LLAMA_SWAP], "a changed config file is replaced, not edited in place"
    assert f"-c {HELPER_CTX_CHANGED} " in swap_file.read_text()
    lap("ctx re-export")
    replaced, output = up_again(project, names, LLAMA_SWAP)
    lap("ctx re-up")
    assert replaced == {LLAMA_SWAP}, output
    props = swap.json("GET", "/upstream/helper/props")
    assert props["default_generation_settings"]["n_ctx"] == HELPER_CTX_CHANGED, props
    # LiteLLM, untouched, reaches the new llama-swap by its DNS alias; llama-swap swaps to the model asked for.
    data = lite.json("POST", "/v1/chat/completions",
                     {"model": "chatbot", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert data["choices"][0]["message"]["role"] == "assistant", data
    running = {e["model"]: e["state"] for e in swap.json("GET", "/running")["running"]}
    assert running == {"chat": "ready"}, running
    lap("ctx checks")

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
    export_compose(stack, out)
    project = project_for(compose_cli, stack, out, projects)
    emb_name = f"{stack.network}-{EMBEDDINGS}"

    # compose starts llama-swap and the embedding server, sees the latter unhealthy and refuses to start LiteLLM,
    # which depends on both.
    up = project.run("up", "-d", check=False, timeout=400)
    assert up.returncode != 0, up.stdout + up.stderr
    emb_id = project.container_id(emb_name)
    assert f'Container "{emb_id[:12]}" is unhealthy' in up.stdout + up.stderr, up.stdout + up.stderr
    # Docker's own verdict: each time llama-server exits the health turns unhealthy (starting again on restart).
    state = wait_health(emb_name, "unhealthy", timeout_s=60)
    assert state["Restarting"] or not state["Running"], state
    lite_name = f"{stack.network}-{LITELLM}"
    assert support.docker("ps", "-aq", "--filter", f"name=^/{lite_name}$").stdout.strip() == ""
    support.wait_healthy(f"{stack.network}-{LLAMA_SWAP}", timeout_s=120)

    # The smoke suite on the outputs as they are: the embedding server fails, named; LiteLLM (never started)
    # fails, named; llama-swap serves its own models and fails only where it forwards to the embedding server.
    run = run_smoke(out, tmp_path, stack.secrets, "--ready-timeout=5")
    assert run.rc == 1, run.output[-4000:]
    health = run.failed.get(f"test_containers::test_container_running_and_healthy[{EMBEDDINGS}-local]", "")
    assert f"{EMBEDDINGS}: container '{emb_name}' is unhealthy" in health, run.output[-4000:]
    assert f"failed to load model '/models/{MISSING_MODEL}'" in health, health
    print(f"smoke suite on the broken stack: {health.splitlines()[0]}")
    assert f"{EMBEDDINGS} (http://127.0.0.1:{stack.ports['embeddings']})" in run.failed.get(
        f"test_services::test_health[{EMBEDDINGS}]", ""
    ), run.output[-4000:]
    lite_label = f"{LITELLM} (http://127.0.0.1:{stack.ports['litellm']})"
    assert lite_label in run.failed.get(f"test_services::test_health[{LITELLM}]", ""), run.output[-4000:]
    assert f"{LITELLM}: container '{lite_name}' not found" in run.failed.get(
        f"test_containers::test_container_running_and_healthy[{LITELLM}-local]", ""
    ), run.output[-4000:]
    # Every failure names the service at fault: the embedding server, LiteLLM, or llama-swap where it forwards an
    # embedding name to its peer, the embedding server, which is not there.
    at_fault = (f"AssertionError: {EMBEDDINGS}", f"AssertionError: {LITELLM}")
    unexplained = {
        name: line for name, text in run.failed.items()
        if not ((line := text.splitlines()[0]).startswith(at_fault)
                or (name.startswith(f"test_embeddings::test_embedding[{LLAMA_SWAP}:") and "peer proxy error" in line))
    }
    assert not unexplained, unexplained
    of_llama_swap = {n for n in [*run.passed, *run.failed] if LLAMA_SWAP in n and "test_embedding[" not in n}
    assert of_llama_swap <= set(run.passed), sorted(of_llama_swap - set(run.passed))
    # What the stack configured is still right (labels, read-only models, ports on 127.0.0.1 only), and llama-swap
    # serves: its health, its listing, chat with each model.
    assert {
        f"test_containers::test_container_labels[{EMBEDDINGS}-local]",
        f"test_containers::test_models_mounted_read_only[{EMBEDDINGS}-local]",
        f"test_containers::test_ports_published_on_bind_address_only[{EMBEDDINGS}-local]",
        f"test_containers::test_container_running_and_healthy[{LLAMA_SWAP}-local]",
        f"test_services::test_health[{LLAMA_SWAP}]",
        "test_llama_swap::test_llama_swap_lists_every_id_and_alias",
        "test_chat::test_chat_completion[llama-swap:chat]", "test_chat::test_chat_completion[llama-swap:helper]",
        "test_chat::test_forced_tool_call[llama-swap:chat]",
    } <= set(run.passed), run.output[-4000:]
    print(f"smoke suite on the broken stack: {len(run.passed)} passed, {len(run.failed)} failed")

    assert_clean(project)


def test_gpu_profile_export_requests_the_gpu_from_docker(
    compose_cli: str, local_images: dict[str, str], projects: list[ComposeProject], tmp_path: Path
) -> None:
    """Without `--cpu` the GPU services carry `deploy.resources.reservations.devices`; docker-compose 1.29 turns
    that into the device request `docker run --gpus all` makes (what Pulumi's `gpus` sets). The containers are
    only created, never started: this machine has no GPU."""
    stack = new_stack(tmp_path, local_images, minilm_embedding())
    out = tmp_path / "compose" / "docker-compose.yml"
    exported = export_compose(stack, out, cpu=False)
    gpu_services = {k for k, s in exported["services"].items() if "deploy" in s}
    assert gpu_services == {LLAMA_SWAP, EMBEDDINGS}
    project = project_for(compose_cli, stack, out, projects)
    project.run("config", "-q")  # the whole exported file is valid for docker-compose
    project.run("up", "--no-start", LLAMA_SWAP, EMBEDDINGS, timeout=300)
    for service in sorted(gpu_services):
        info = json.loads(support.docker("inspect", f"{stack.network}-{service}").stdout)[0]
        requests = info["HostConfig"]["DeviceRequests"]
        assert [(r["Driver"], r["Count"], r["Capabilities"]) for r in requests] == [("nvidia", -1, [["gpu"]])], \
            (service, requests)
        assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility" in info["Config"]["Env"], (service, info["Config"]["Env"])
    info = json.loads(support.docker("inspect", f"{stack.network}-{EMBEDDINGS}").stdout)[0]
    entrypoint = info["Config"]["Entrypoint"]
    assert entrypoint[entrypoint.index("-ngl") + 1] == "999"
    # llama-swap starts each model's llama-server from its config file (bind-mounted): all layers on the GPU.
    swap_config = yaml.safe_load((out.parent / "docker-compose.files" / LLAMA_SWAP / "app" / "config.yaml").read_text())
    assert all(" -ngl 999 " in m["cmd"] for m in swap_config["models"].values()), swap_config["models"]
    assert support.docker("ps", "-aq", "--filter", f"name=^/{stack.network}-{LITELLM}$").stdout.strip() == ""
    assert_clean(project)
