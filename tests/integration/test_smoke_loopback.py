"""The smoke suite (`tests/smoke`) against a loopback deployment of a small stack, as CI's stand-in for a GPU host.

The stack: two fixture chat models on the cpu profile (`chat`: Qwen2.5 template, `jinja: true`, an alias; `plain`:
llama), the real all-MiniLM-L6-v2 as the embedding server (an alias), LiteLLM with a master key and a cloud fallback,
and the `api_key` secret set. Its rendered files run on the real programs (`tests/harness/loopback.py`): the real
llama-swap v250 loads the rendered config and starts each model's llama-server from its `cmd`, forwards the
embedding names to the embedding server (its peer), and LiteLLM routes its chat names through llama-swap. So every
check of the suite runs, the llama-swap ones included: its listing, both names of the embedder, a swap shown by
`/running` while the embedder stays loaded.

The cloud fallback's `api_base` is a closed port on 127.0.0.1, so even a fallback attempt sends nothing
off this machine; the suite checks that no answer came from a fallback.

A deliberately broken deployment must make the suite fail with a message that names the broken service: a
wrong port in the targets, and a wrong port in the generated LiteLLM config (rendered by the real renderer).

The `groups: auto` stack (its matrix sets swapping as the sizing said) is in `test_llama_swap_residency.py`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from models.config import StackConfig
from models.load import load_stack_file
from stack.deployment import build_deployment
from stack.gguf import writers as gm
from stack.gguf.sources import LocalHeaders
from stack.render.containers import EMBEDDINGS, LITELLM, LLAMA_SWAP
from stack.render.llama_swap import render_llama_swap_config
from stack.sizing.plan import build_plan
from tests.harness import binaries
from tests.harness.loopback import LoopbackDeployment, free_ports, loopback_deployment, with_targets
from tests.harness.smoke_runner import SmokeRun, run_smoke_suite

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def stack_config(chat: Path, plain: Path, embedding: Path, closed_port: int) -> StackConfig:
    """Two llama-swap models in llama-swap's default group (one at a time), CPU profile, LiteLLM on."""
    if not chat.parent == plain.parent == embedding.parent:
        raise ValueError("fixtures must share one models_dir")
    return StackConfig.model_validate({
        "gpu": {"profile": "cpu"},
        "models_dir": str(chat.parent),
        "models": {
            "chat": {"file": chat.name, "ctx_size": 2048, "parallel": 2, "jinja": True, "aliases": ["chatbot"],
                     "ubatch": 256, "batch": 512},
            "plain": {"file": plain.name, "ctx_size": 1024, "flash_attn": "off", "ubatch": 256, "batch": 512},
        },
        "embeddings": {"name": "minilm", "aliases": ["embed-small"], "file": embedding.name, "ctx_size": 512,
                       "ubatch": 512, "batch": 512, "pooling": "mean"},
        "litellm": {
            "enabled": True,
            "num_retries": 0,
            "fallbacks": [{
                "name": "cloud-chat", "model": "openai/gpt-4o-mini", "api_key_secret": "openai_api_key",
                "api_base": f"http://127.0.0.1:{closed_port}/v1", "fallback_for": ["chat"],
            }],
        },
    })


@dataclass(frozen=True)
class Fixtures:
    config: StackConfig
    smoke_hints: dict[str, Any]


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    binaries.require(binaries.llama_swap)
    chat, spec = gm.chat_model()
    plain, _ = gm.chat_model(gm.ChatModelSpec(arch="llama", dtype="f32"))
    emb, _ = gm.minilm_model()
    hints = {"smoke": {"tool_call_logit_bias": {"chat": gm.tool_call_bias(spec)}}}
    return Fixtures(stack_config(chat, plain, emb, free_ports(1)[0]), hints)


@pytest.fixture(scope="module")
def deployment(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackDeployment]:
    workdir = tmp_path_factory.mktemp("loopback")
    with loopback_deployment(fixtures.config, workdir, extra_targets=fixtures.smoke_hints) as d:
        yield d


def run_smoke(d: LoopbackDeployment, targets: Path, junit: Path, *extra: str) -> SmokeRun:
    """`python -m pytest tests/smoke --hosts=local:// --targets=...` as a user would run it on the host."""
    return run_smoke_suite(targets, junit, d.smoke_env(), *extra)


def test_loopback_runs_the_rendered_files(deployment: LoopbackDeployment) -> None:
    """llama-swap runs its container's argv on the rendered config, byte for byte what the renderer makes for these
    paths; the targets have the shape of the Pulumi outputs, with a real llama-swap endpoint and its key."""
    swap = deployment.process(LLAMA_SWAP)
    assert swap.argv == [str(binaries.llama_swap()), "-config", deployment.paths.llama_swap_config,
                         "-listen", f"127.0.0.1:{deployment.config.ports.llama_swap}"]
    rendered = render_llama_swap_config(deployment.config, deployment.paths, api_key_enabled=True)
    assert Path(deployment.paths.llama_swap_config).read_text() == rendered
    assert deployment.process(EMBEDDINGS).argv[0] == deployment.paths.llama_server_bin
    assert deployment.process(LITELLM).argv[1:3] == ["--config", deployment.paths.litellm_config]
    assert f"api_base: {deployment.llama_swap_url}/v1" in Path(deployment.paths.litellm_config).read_text()
    t = deployment.targets
    assert t["endpoints"] == {LLAMA_SWAP: deployment.llama_swap_url, **{s: t["endpoints"][s] for s in
                                                                        (EMBEDDINGS, LITELLM)}}
    assert t["llama_swap_url"] == deployment.llama_swap_url
    assert t["models"]["llama_swap"] == {"chat": {"aliases": ["chatbot"], "tools": True},
                                         "plain": {"aliases": [], "tools": False}}
    assert t["models"]["embedding"] == {"name": "minilm", "aliases": ["embed-small"], "dimension": 384,
                                        "llama_swap_ids": ["embeddings/embed-small", "embeddings/minilm"]}
    assert t["models"]["litellm"] == {"chat": ["chat", "chatbot", "plain"], "embedding": ["embed-small", "minilm"],
                                      "cloud": ["cloud-chat"]}
    assert t["auth_required"] == {LLAMA_SWAP: True, EMBEDDINGS: True, LITELLM: True}
    assert "upstreams" not in t and "loopback" not in t and "container_names" not in t
    assert all(p.running() for p in deployment.processes)


def test_smoke_suite_passes(deployment: LoopbackDeployment, tmp_path: Path) -> None:
    run = run_smoke(deployment, deployment.targets_path, tmp_path / "junit.xml")
    assert run.rc == 0, run.output[-6000:]
    assert not run.failed and not run.skipped, run.output[-3000:]
    expected = {
        *(f"test_services::test_health[{s}]" for s in (LLAMA_SWAP, EMBEDDINGS, LITELLM)),
        *(f"test_services::test_published_port_listens[{s}-local]" for s in (LLAMA_SWAP, EMBEDDINGS, LITELLM)),
        *(f"test_services::test_requests_without_key_are_refused[{s}]" for s in (LLAMA_SWAP, EMBEDDINGS, LITELLM)),
        "test_chat::test_chat_completion[llama-swap:chat]", "test_chat::test_chat_completion[llama-swap:plain]",
        "test_chat::test_chat_completion[litellm:chat]",
        "test_chat::test_chat_completion_streamed[llama-swap:chat]",
        "test_chat::test_chat_completion_streamed[litellm:chat]",
        "test_chat::test_json_schema_response[llama-swap:chat]",
        "test_chat::test_forced_tool_call[llama-swap:chat]", "test_chat::test_forced_tool_call[litellm:chat]",
        "test_embeddings::test_embedding[embeddings:minilm]",
        # The embedder by its plain names and by the ids llama-swap lists, all through llama-swap to its peer.
        "test_embeddings::test_embedding[llama-swap:minilm]", "test_embeddings::test_embedding[llama-swap:embed-small]",
        "test_embeddings::test_embedding[llama-swap:embeddings/minilm]",
        "test_embeddings::test_embedding[llama-swap:embeddings/embed-small]",
        "test_embeddings::test_embedding[litellm:minilm]", "test_embeddings::test_embedding[litellm:embed-small]",
        "test_litellm::test_litellm_lists_every_public_name",
        *(f"test_litellm::test_litellm_routes_public_name[{n}]" for n in ("chat", "chatbot", "plain")),
        "test_llama_swap::test_llama_swap_lists_every_id_and_alias",
        "test_llama_swap::test_swap_keeps_embedder_loaded[chat-plain]",
    }
    assert expected <= set(run.passed), sorted(expected - set(run.passed))
    # No matrix here (llama-swap's default group): that check is not applicable, and said so.
    assert "not applicable: tests/smoke/test_llama_swap.py::test_matrix_keeps_what_the_sizing_allows[none]" \
        in run.output


def _failures_naming(run: SmokeRun, service_label: str) -> list[str]:
    return [name for name, text in run.failed.items() if service_label in text]


def test_smoke_fails_on_a_wrong_port_in_the_targets(deployment: LoopbackDeployment, tmp_path: Path) -> None:
    closed = free_ports(1)[0]

    def break_port(t: dict[str, Any]) -> None:
        t["endpoints"][EMBEDDINGS] = t["embeddings_url"] = f"http://127.0.0.1:{closed}"

    targets = with_targets(deployment, "targets-wrong-port.json", break_port)
    run = run_smoke(deployment, targets, tmp_path / "junit.xml", "--ready-timeout=2")
    assert run.rc == 1, run.output[-3000:]
    label = f"embeddings (http://127.0.0.1:{closed})"
    named = _failures_naming(run, label)
    assert "test_services::test_health[embeddings]" in named, run.output[-4000:]
    assert "test_embeddings::test_embedding[embeddings:minilm]" in named
    assert "test_llama_swap::test_swap_keeps_embedder_loaded[chat-plain]" in named
    assert "test_services::test_published_port_listens[embeddings-local]" in run.failed
    assert set(run.failed) <= {n for n in run.failed if "embeddings" in n or "embedder" in n}, sorted(run.failed)
    assert "test_chat::test_chat_completion[litellm:chat]" in run.passed
    assert "test_embeddings::test_embedding[llama-swap:embeddings/minilm]" in run.passed


def test_smoke_fails_on_a_wrong_port_in_the_generated_litellm_config(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    """LiteLLM rendered (by the real renderer) with a llama-swap URL on a closed port: it starts, lists its
    names, and fails every chat route; the failures name LiteLLM, and llama-swap itself still serves."""
    closed = free_ports(1)[0]
    with loopback_deployment(
        fixtures.config,
        tmp_path / "broken",
        extra_targets=fixtures.smoke_hints,
        adjust_paths=lambda p: dataclasses.replace(p, llama_swap_url=f"http://127.0.0.1:{closed}"),
    ) as d:
        rendered = Path(d.paths.litellm_config).read_text()
        assert f"api_base: http://127.0.0.1:{closed}/v1" in rendered
        run = run_smoke(d, d.targets_path, tmp_path / "junit.xml")
        litellm_url = d.targets["endpoints"][LITELLM]
    assert run.rc == 1, run.output[-3000:]
    named = _failures_naming(run, f"litellm ({litellm_url})")
    assert "test_chat::test_chat_completion[litellm:chat]" in named, run.output[-4000:]
    assert "test_litellm::test_litellm_routes_public_name[chatbot]" in named
    assert all(LITELLM in n or "litellm" in n for n in run.failed), sorted(run.failed)
    assert "test_chat::test_chat_completion[llama-swap:chat]" in run.passed
    assert "test_embeddings::test_embedding[litellm:minilm]" in run.passed


def test_smoke_suite_collects_llama_swap_and_container_checks_for_a_docker_deployment(tmp_path: Path) -> None:
    """For the outputs of a real deployment (Pulumi.dev.yaml with LiteLLM on and the `api_key` secret, as
    `stack.targets.pulumi.program` exports them: the Deployment's outputs with its container names), the llama-swap
    checks are collected, and the container checks wherever `docker` works."""
    cfg = load_stack_file(REPO / "Pulumi.dev.yaml").config
    cfg = cfg.model_copy(update={"litellm": cfg.litellm.model_copy(update={"enabled": True})})
    plan = build_plan(cfg, LocalHeaders(Path(cfg.models_dir)))
    deployment = build_deployment(plan, frozenset({"api_key", "litellm_master_key"}))
    targets = deployment.outputs(deployment.container_names)
    assert set(targets["container_names"]) == {LLAMA_SWAP, EMBEDDINGS, LITELLM}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(targets))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke", "--hosts=local://", f"--targets={path}",
         "-p", "no:cacheprovider", "--collect-only", "-q"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = {line.split("tests/smoke/", 1)[1] for line in proc.stdout.splitlines() if line.startswith("tests/smoke/")}
    assert {
        "test_llama_swap.py::test_llama_swap_lists_every_id_and_alias",
        "test_llama_swap.py::test_swap_keeps_embedder_loaded[agent-chat]",
        "test_chat.py::test_chat_completion[llama-swap:generator]",
        "test_chat.py::test_forced_tool_call[llama-swap:agent]",
        "test_embeddings.py::test_embedding[llama-swap:nomic-embed-text]",
        "test_embeddings.py::test_embedding[llama-swap:embeddings/nomic-embed-text]",
        "test_litellm.py::test_litellm_routes_public_name[synth]",
        "test_services.py::test_requests_without_key_are_refused[llama-swap]",
        "test_services.py::test_published_port_listens[llama-swap-local]",
    } <= ids, sorted(ids)
    assert not any("test_matrix_keeps_what_the_sizing_allows" in i for i in ids), "Pulumi.dev.yaml has no matrix"
    docker_works = shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, check=False, timeout=60
    ).returncode == 0
    containers = {i for i in ids if i.startswith("test_containers.py")}
    assert bool(containers) is docker_works, sorted(containers)
    if docker_works:
        assert "test_containers.py::test_models_mounted_read_only[embeddings-local]" in containers
        assert not any("litellm" in i for i in containers if "models_mounted" in i)
