"""The README's deploy flow, run by the real Pulumi engine and pulumi-docker provider on a real Docker engine.

No GPU here: the stack uses the `cpu` profile (no GPU request, `-ngl 0`), the local CPU images that reproduce
the upstream layouts (docker/IMAGES.md: the real llama-swap v250, llama-server b11434 and LiteLLM inside), and
fixture models (a random-weight Qwen2-architecture chat model served under two ids, the real all-MiniLM-L6-v2
as the embedder) copied into a models directory of this test. A GPU host differs only in the profile, the images
and `gpus=all`, which the mock tests (tests/pulumi) and the compose GPU test check.

The tests run in file order on one stack, each starting from the state the previous one left, as a user's
session would:

1. `pulumi preview --diff` plans exactly the resources the program declares;
2. `pulumi up` brings every container to healthy; the smoke suite passes against `pulumi stack output --json`;
3. a second preview and a refresh show no change;
4. a changed `ctx_size` replaces the llama-swap container (its uploaded config) and nothing else, and the new
   `-c` is in the running llama-server's command line;
5. LiteLLM on creates only its resources, off removes only them;
6. an invalid or over-budget config fails preview and up with the gate's message and leaves the state alone;
7. faults: a killed llama-swap comes back by its restart policy; an unreachable Docker daemon fails `up` clearly
   with the state intact, and the next `up` converges; a model file gone from models_dir is named by preview;
8. secrets: not in `pulumi stack export`, labels or command lines; only in the environment;
9. `pulumi destroy` leaves no container, network or volume, and the stack can be removed.

Only 127.0.0.1 ports and the network the stack creates are used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stack.gguf import writers as gm
from stack.render.containers import EMBEDDINGS, LITELLM, LLAMA_SWAP
from tests.deploy.pulumi_project import REPO, PulumiFailed, PulumiProject, smoke_on_outputs
from tests.docker import support
from tests.docker.fixtures import image_of
from tests.docker.support import LITELLM as LITELLM_IMAGE
from tests.docker.support import LLAMA_SERVER
from tests.docker.support import LLAMA_SWAP as LLAMA_SWAP_IMAGE
from tests.harness import binaries
from tests.harness.loopback import free_ports, random_key
from tests.smoke.client import Service

pytestmark = [pytest.mark.docker, pytest.mark.deploy]

STACK = "cpu-e2e"
COMPONENTS = {
    LLAMA_SWAP: "local-llm-stack:index:LlamaSwap",
    EMBEDDINGS: "local-llm-stack:index:EmbeddingServer",
    LITELLM: "local-llm-stack:index:LiteLLMProxy",
}


@dataclass
class Deployed:
    project: PulumiProject
    network: str
    models_dir: Path
    secrets: dict[str, str]
    tmp: Path
    timings: dict[str, float]

    def container(self, service: str) -> str:
        return f"{self.network}-{service}"

    def smoke(self, label: str) -> None:
        """`pulumi stack output --json`, then the smoke suite on it, with the deployment's keys in the environment."""
        run = smoke_on_outputs(self.project, self.tmp, self.secrets, label)
        assert len(run.passed) >= 10, run.output[-3000:]


def expected_resources(services: list[str]) -> set[tuple[str, str]]:
    """(type, name) of everything the program declares for `services`: stack, composite, network, and per service
    its component, pinned image and container."""
    out = {
        ("pulumi:pulumi:Stack", f"local-llm-stack-{STACK}"),
        ("local-llm-stack:index:LocalLlmStack", "local-llm-stack"),
        ("local-llm-stack:index:StackNetwork", "local-llm-stack-net"),
        ("docker:index/network:Network", "local-llm-stack-net-network"),
    }
    for service in services:
        name = f"local-llm-stack-{service}"
        out |= {
            (COMPONENTS[service], name),
            ("docker:index/remoteImage:RemoteImage", f"{name}-image"),
            ("docker:index/container:Container", f"{name}-container"),
        }
    return out


def _config(images: dict[str, str], models_dir: Path, network: str, chat_file: str, emb_file: str) -> dict[str, Any]:
    swap, emb, lite = free_ports(3)
    start = free_ports(2, consecutive=True, exclude=[swap, emb, lite])[0]
    return {
        "gpu": {"profile": "cpu"},
        "models_dir": str(models_dir),
        "network": {"name": network},
        "ports": {"llama_swap": swap, "embeddings": emb, "litellm": lite},
        "images": {
            "llama_swap": image_of(images, LLAMA_SWAP_IMAGE),
            "llama_server": image_of(images, LLAMA_SERVER),
            "litellm": image_of(images, LITELLM_IMAGE),
        },
        "llama_swap": {"start_port": start, "health_check_timeout": 120},
        "models": {
            "chat": {"file": chat_file, "ctx_size": 2048, "aliases": ["chatbot"], "jinja": True},
            "helper": {"file": chat_file, "ctx_size": 1024, "aliases": ["classify"]},
        },
        "groups": {"main": {"swap": True, "exclusive": True, "members": ["chat", "helper"]}},
        "embeddings": {"name": "minilm", "aliases": ["embed-small"], "file": emb_file, "ctx_size": 512,
                       "ubatch": 512, "batch": 512, "pooling": "mean"},
        "litellm": {"enabled": False, "num_retries": 0},
    }


@pytest.fixture(scope="module")
def deployed(local_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """A created (not yet deployed) stack; destroyed at the end whatever happened."""
    binaries.require(binaries.pulumi)
    tmp = tmp_path_factory.mktemp("pulumi-e2e")
    models_dir = tmp / "models"
    models_dir.mkdir()
    chat, _ = gm.chat_model()
    emb, _ = gm.minilm_model()
    for src in (chat, emb):
        shutil.copyfile(src, models_dir / src.name)
    network = f"lls-e2e-{uuid.uuid4().hex[:6]}"
    secrets = {"api_key": random_key(), "litellm_master_key": random_key()}
    project = PulumiProject(tmp / "project", STACK)
    project.workdir.mkdir()
    project.create(_config(local_images, models_dir, network, chat.name, emb.name), secrets)
    d = Deployed(project, network, models_dir, secrets, tmp, {})
    try:
        yield d
    finally:
        with contextlib.suppress(Exception):
            project.destroy()
        for service in COMPONENTS:
            support.remove_container(d.container(service))
        support.docker("network", "rm", network, check=False)
        timings = json.dumps({k: round(v, 1) for k, v in d.timings.items()})
        print(f"\npulumi e2e wall times (s): {timings}")


def _healthy(d: Deployed, services: list[str]) -> None:
    for service in services:
        state = support.container_state(d.container(service))
        assert state["Running"] and state.get("Health", {}).get("Status") == "healthy", (service, state)


def test_1_preview_plans_exactly_the_declared_resources(deployed: Deployed) -> None:
    out = deployed.project.preview()
    deployed.timings["preview"] = out.seconds
    planned = {(s.type, s.name) for s in out.steps if s.op == "create" and not s.type.startswith("pulumi:providers:")}
    assert planned == expected_resources([LLAMA_SWAP, EMBEDDINGS])
    providers = {(s.type, s.name) for s in out.steps if s.type.startswith("pulumi:providers:")}
    assert providers == {("pulumi:providers:docker", "default_5_1_0")}, "the SDK pin asks for plugin 5.1.0"
    assert len(planned) == 10
    assert out.summary.get("create") == 10, out.summary


def test_2_up_brings_every_container_to_healthy_and_the_smoke_suite_passes(deployed: Deployed) -> None:
    out = deployed.project.up()
    deployed.timings["up"] = out.seconds
    assert out.summary.get("create") == 10, out.summary
    _healthy(deployed, [LLAMA_SWAP, EMBEDDINGS])
    deployed.smoke("first-up")


def test_3_second_preview_and_refresh_show_no_change(deployed: Deployed) -> None:
    out = deployed.project.preview(expect_no_changes=True)
    assert out.changed() == {}, out.output
    # A refresh reads every resource back ("refresh" steps); the engine itself fails on any drift.
    refreshed = deployed.project.refresh(expect_no_changes=True)
    assert set(refreshed.summary) == {"same"} and refreshed.summary["same"] == 10, refreshed.summary
    again = deployed.project.preview(expect_no_changes=True)
    assert again.changed() == {}, again.output


def _llama_server_cmdlines(container: str) -> list[str]:
    """Full command lines of the llama-server processes llama-swap started in `container`: the host pids from
    `docker top`, then `/proc/<pid>/cmdline` (ps truncates long argument lists)."""
    pids = [line.split()[0] for line in support.docker("top", container, "-eo", "pid").stdout.splitlines()[1:]]
    out = []
    for pid in pids:
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            line = " ".join(a.decode(errors="replace") for a in argv if a)
            if "llama-server" in line:
                out.append(line)
    return out


def test_4_ctx_change_replaces_only_the_llama_swap_container(deployed: Deployed) -> None:
    deployed.project.set_value("models", "chat", "ctx_size", value=3072)
    out = deployed.project.preview()
    assert out.changed() == {"local-llm-stack-llama-swap-container": "replace"}, out.changed()
    diffs = {d for s in out.steps if s.name == "local-llm-stack-llama-swap-container" for d in s.diffs}
    assert diffs and all(d.startswith(("uploads", "labels")) for d in diffs), diffs
    before = support.container_state(deployed.container(EMBEDDINGS))["StartedAt"]
    up = deployed.project.up()
    assert up.changed() == {"local-llm-stack-llama-swap-container": "replace"}, up.changed()
    assert support.container_state(deployed.container(EMBEDDINGS))["StartedAt"] == before
    _healthy(deployed, [LLAMA_SWAP, EMBEDDINGS])
    deployed.smoke("after-ctx-change")
    outputs = json.loads(deployed.project.outputs_json(deployed.tmp / "outputs-ctx.json").read_text())
    assert outputs["sizing"]["models"]["chat"]["n_ctx"] == 3072
    # The smoke suite may have left another model loaded: ask `chat` now, then read its command line.
    swap = Service(LLAMA_SWAP, outputs["endpoints"][LLAMA_SWAP], key=deployed.secrets["api_key"], timeout=300)
    swap.ok("POST", "/v1/chat/completions",
            {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    cmdlines = _llama_server_cmdlines(deployed.container(LLAMA_SWAP))
    assert any(" -c 3072 " in f" {c} " for c in cmdlines), cmdlines


def test_5_litellm_on_then_off_touches_only_its_resources(deployed: Deployed) -> None:
    litellm = {n for _, n in expected_resources([LITELLM])} - {n for _, n in expected_resources([])}
    deployed.project.set_value("litellm", "enabled", value=True)
    out = deployed.project.preview()
    assert out.changed() == dict.fromkeys(litellm, "create"), out.changed()
    up = deployed.project.up()
    assert up.changed() == dict.fromkeys(litellm, "create"), up.changed()
    _healthy(deployed, [LLAMA_SWAP, EMBEDDINGS, LITELLM])
    deployed.project.set_value("litellm", "enabled", value=False)
    off = deployed.project.up()
    assert off.changed() == dict.fromkeys(litellm, "delete"), off.changed()
    assert support.docker("inspect", deployed.container(LITELLM), check=False).returncode != 0
    assert deployed.project.preview(expect_no_changes=True).changed() == {}


@pytest.mark.parametrize(
    ("key_path", "value", "message"),
    [
        (("models", "chat", "ctx_size"), "lots", "models.chat.ctx_size"),
        (("gpu",), {"profile": "rtx-5080", "vram_mib": 1024}, "does not fit"),
    ],
    ids=["invalid", "over-budget"],
)
def test_6_refused_config_changes_nothing(
    deployed: Deployed, key_path: tuple[str, ...], value: Any, message: str
) -> None:
    before = deployed.project.resources()
    original = deployed.project.stack_file.read_text()
    deployed.project.set_value(*key_path, value=value)
    try:
        for verb in ("preview", "up"):
            with pytest.raises(PulumiFailed) as failed:
                getattr(deployed.project, verb)()
            text = failed.value.output + failed.value.error
            assert message in text, text[-4000:]
            assert "Traceback" not in text, text[-4000:]
    finally:
        deployed.project.stack_file.write_text(original)
    assert _state_diff(before, deployed.project.resources()) == []
    assert deployed.project.preview(expect_no_changes=True).changed() == {}


def _state_diff(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    """`urn: key` for every top-level field of a resource that differs between two state exports."""
    old = {r["urn"]: r for r in before}
    new = {r["urn"]: r for r in after}
    out = [f"{urn}: added" for urn in new.keys() - old.keys()] + [f"{urn}: removed" for urn in old.keys() - new.keys()]
    for urn in old.keys() & new.keys():
        for key in sorted(old[urn].keys() | new[urn].keys()):
            a, b = old[urn].get(key), new[urn].get(key)
            if a != b:
                if isinstance(a, dict) and isinstance(b, dict):
                    inner = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
                    out.append(f"{urn.rsplit('::', 1)[-1]}: {key}.{inner}")
                else:
                    out.append(f"{urn.rsplit('::', 1)[-1]}: {key}")
    return out


def test_7a_killed_llama_swap_comes_back(deployed: Deployed) -> None:
    name = deployed.container(LLAMA_SWAP)
    state = support.container_state(name)
    restarts = int(json.loads(support.docker("inspect", "-f", "{{json .RestartCount}}", name).stdout))
    os.kill(int(state["Pid"]), signal.SIGKILL)  # as the OOM killer would: from the host, not `docker stop`
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = int(json.loads(support.docker("inspect", "-f", "{{json .RestartCount}}", name).stdout))
        if count > restarts:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"{name} was not restarted within 60 s")
    support.wait_healthy(name, 120)
    deployed.smoke("after-kill")
    assert deployed.project.preview(expect_no_changes=True).changed() == {}


@contextlib.contextmanager
def _daemon_unreachable() -> Iterator[None]:
    """The engine's socket moved aside: every client (the provider too) gets 'cannot connect'; containers keep
    running, and the socket is put back whatever happens."""
    sock = Path("/var/run/docker.sock")
    away = sock.with_name("docker.sock.e2e-away")
    os.rename(sock, away)
    try:
        yield
    finally:
        os.rename(away, sock)


def test_7b_unreachable_daemon_fails_clearly_and_the_next_up_converges(deployed: Deployed) -> None:
    before = deployed.project.resources()
    deployed.project.set_value("models", "helper", "ctx_size", value=1536)
    with _daemon_unreachable(), pytest.raises(PulumiFailed) as failed:
        deployed.project.up()
    text = failed.value.output + failed.value.error
    errors = [line for line in text.splitlines() if "error" in line.lower()]
    assert any("failed to connect to any docker daemon" in line for line in errors), errors
    # The engine cancels the program with SIGINT once the provider fails; Pulumi's Python language host then prints
    # its own KeyboardInterrupt traceback (pulumi-language-python-exec, the SDK, asyncio). No frame of this
    # project's code is in it.
    frames = [line for line in text.splitlines() if 'File "' in line]
    ours = [f for f in frames if any(f'"{REPO / part}' in f for part in ("stack", "models", "__main__.py"))]
    assert not ours, ours
    assert _state_diff(before, deployed.project.resources()) == []
    up = deployed.project.up()
    assert up.changed() == {"local-llm-stack-llama-swap-container": "replace"}, up.changed()
    _healthy(deployed, [LLAMA_SWAP, EMBEDDINGS])
    assert deployed.project.preview(expect_no_changes=True).changed() == {}


def test_7c_model_file_gone_is_named_by_preview(deployed: Deployed) -> None:
    chat_file = next(p for p in deployed.models_dir.iterdir() if "chat" in p.name)
    aside = chat_file.with_name(chat_file.name + ".aside")
    chat_file.rename(aside)
    try:
        with pytest.raises(PulumiFailed) as failed:
            deployed.project.preview()
        text = failed.value.output + failed.value.error
        assert "models.chat.file" in text and "models.helper.file" in text, text[-4000:]
        assert str(chat_file) in text, text[-3000:]
    finally:
        aside.rename(chat_file)
    assert deployed.project.preview(expect_no_changes=True).changed() == {}


def test_8_secrets_stay_secret(deployed: Deployed) -> None:
    export = json.dumps(deployed.project.export())
    for key, value in deployed.secrets.items():
        assert value not in export, f"{key} in plain text in pulumi stack export"
    for service in (LLAMA_SWAP, EMBEDDINGS):
        info = json.loads(support.docker("inspect", deployed.container(service)).stdout)[0]
        config = info["Config"]
        visible = json.dumps([config.get("Labels"), config.get("Cmd"), config.get("Entrypoint"), info.get("Args")])
        assert deployed.secrets["api_key"] not in visible, service
        assert any(e.endswith("=" + deployed.secrets["api_key"]) for e in config["Env"]), service


def test_9_destroy_leaves_nothing_and_the_stack_can_be_removed(deployed: Deployed) -> None:
    out = deployed.project.destroy()
    deployed.timings["destroy"] = out.seconds
    assert out.summary.get("delete") == 10, out.summary
    label = "label=local-llm-stack.service"
    names = support.docker("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
    assert not [n for n in names if n.startswith(deployed.network)], names
    nets = support.docker("network", "ls", "--filter", f"name={deployed.network}", "--format", "{{.Name}}").stdout
    assert deployed.network not in nets.split()
    vols = support.docker("volume", "ls", "--format", "{{.Name}}").stdout.split()
    assert not [v for v in vols if v.startswith(deployed.network)], vols
    deployed.project.remove()
    assert deployed.project.cli("stack", "ls").stdout.count(STACK) == 0
