"""The smoke suite (`tests/smoke`) against a loopback deployment of a small stack, as CI's stand-in for a GPU host.

The stack: the fixture chat model (Qwen2.5 template, `jinja: true`, an alias), the real all-MiniLM-L6-v2 as the
embedding server (an alias), LiteLLM with a master key and a cloud fallback, and the `api_key` secret set. Its
rendered files run on the real programs (`tests/harness/loopback.py`): the embedding server's argv, the model's
llama-swap `cmd` with `${PORT}` substituted by llama-swap's rule, LiteLLM with its rendered config. llama-swap
itself is absent (not installable here): LiteLLM's llama-swap URL points at the model's llama-server, so the
llama-swap hop is missing and the suite's llama-swap checks are not collected for these targets.

The cloud fallback's `api_base` is a closed port on 127.0.0.1, so even a fallback attempt sends nothing
off this machine; the suite checks that no answer came from a fallback.

A deliberately broken deployment must make the suite fail with a message that names the broken service: a
wrong port in the targets, and a wrong port in the generated LiteLLM config (rendered by the real renderer).
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
from stack.container_specs import EMBEDDINGS, LITELLM, LLAMA_SWAP, container_name, endpoints
from stack.header_sources import LocalHeaders
from stack.outputs import auth_outputs, embedding_dimension, model_outputs
from stack.plan import build_plan
from tests.fixtures import gguf_models as gm
from tests.harness.loopback import (
    LoopbackDeployment,
    free_ports,
    llama_swap_models,
    loopback_deployment,
    with_targets,
)
from tests.harness.smoke_runner import SmokeRun, run_smoke_suite

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def stack_config(chat: Path, embedding: Path, closed_port: int) -> StackConfig:
    """One llama-swap model (LiteLLM can reach only one without llama-swap), CPU profile, LiteLLM on."""
    if chat.parent != embedding.parent:
        raise ValueError("fixtures must share one models_dir")
    return StackConfig.model_validate({
        "gpu": {"profile": "cpu"},
        "models_dir": str(chat.parent),
        "models": {
            "chat": {"file": chat.name, "ctx_size": 2048, "parallel": 2, "jinja": True, "aliases": ["chatbot"],
                     "ubatch": 256, "batch": 512},
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


def tool_call_bias(spec: gm.ChatModelSpec) -> dict[str, int]:
    """Random weights never open a tool call: bias the fixture's single-token opener, then the end of turn."""
    return {str(spec.special_token_id(gm.TOOL_CALL_OPENER)): 20, str(spec.special_token_id(gm.EOS_TOKEN)): 40}


@dataclass(frozen=True)
class Fixtures:
    config: StackConfig
    smoke_hints: dict[str, Any]


@pytest.fixture(scope="module")
def fixtures() -> Fixtures:
    chat, spec = gm.chat_model()
    emb, _ = gm.minilm_model()
    hints = {"smoke": {"tool_call_logit_bias": {"chat": tool_call_bias(spec)}}}
    return Fixtures(stack_config(chat, emb, free_ports(1)[0]), hints)


@pytest.fixture(scope="module")
def deployment(fixtures: Fixtures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackDeployment]:
    workdir = tmp_path_factory.mktemp("loopback")
    with loopback_deployment(fixtures.config, workdir, extra_targets=fixtures.smoke_hints) as d:
        yield d


def run_smoke(d: LoopbackDeployment, targets: Path, junit: Path, *extra: str) -> SmokeRun:
    """`python -m pytest tests/smoke --hosts=local:// --targets=...` as a user would run it on the host."""
    return run_smoke_suite(targets, junit, d.smoke_env(), *extra)


def test_loopback_runs_the_rendered_files(deployment: LoopbackDeployment) -> None:
    """The processes run exactly the rendered argv, and the targets have the shape of the Pulumi outputs."""
    swap_yaml = (deployment.workdir / "llama-swap.yaml").read_text()
    models = llama_swap_models(swap_yaml, {"LLAMA_SWAP_API_KEY": deployment.secret_values["api_key"]})
    by_name = {p.name: p for p in deployment.processes}
    assert by_name["llama-swap model 'chat'"].argv == models["chat"].argv
    port = deployment.config.llama_swap.start_port  # the only model, so startPort + 0
    assert models["chat"].proxy == f"http://127.0.0.1:{port}" == deployment.upstreams["chat"]
    assert by_name[EMBEDDINGS].argv[0] == deployment.paths.llama_server_bin
    assert by_name[LITELLM].argv[1:3] == ["--config", deployment.paths.litellm_config]
    t = deployment.targets
    assert set(t["endpoints"]) == {EMBEDDINGS, LITELLM}
    assert t["models"]["llama_swap"] == {"chat": {"aliases": ["chatbot"], "tools": True}}
    assert t["models"]["embedding"] == {"name": "minilm", "aliases": ["embed-small"], "dimension": 384}
    assert t["models"]["litellm"] == {"chat": ["chat", "chatbot"], "embedding": ["embed-small", "minilm"],
                                      "cloud": ["cloud-chat"]}
    assert t["auth_required"] == {EMBEDDINGS: True, LITELLM: True}
    assert all(p.running() for p in deployment.processes)


def test_smoke_suite_passes(deployment: LoopbackDeployment, tmp_path: Path) -> None:
    run = run_smoke(deployment, deployment.targets_path, tmp_path / "junit.xml")
    assert run.rc == 0, run.output[-6000:]
    assert not run.failed and not run.skipped, run.output[-3000:]
    expected = {
        "test_services::test_health[embeddings]", "test_services::test_health[litellm]",
        "test_services::test_health[upstream:chat]",
        "test_services::test_published_port_listens[embeddings-local]",
        "test_services::test_requests_without_key_are_refused[embeddings]",
        "test_services::test_requests_without_key_are_refused[litellm]",
        "test_chat::test_chat_completion[upstream:chat]", "test_chat::test_chat_completion[litellm:chat]",
        "test_chat::test_chat_completion_streamed[litellm:chat]",
        "test_chat::test_json_schema_response[upstream:chat]",
        "test_chat::test_forced_tool_call[litellm:chat]", "test_chat::test_forced_tool_call[upstream:chat]",
        "test_embeddings::test_embedding[embeddings:minilm]", "test_embeddings::test_embedding[litellm:embed-small]",
        "test_litellm::test_litellm_lists_every_public_name",
        "test_litellm::test_litellm_routes_public_name[chatbot]",
    }
    assert expected <= set(run.passed), sorted(expected - set(run.passed))
    assert not any("test_llama_swap" in n or "test_containers" in n for n in run.passed)


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
    assert "test_services::test_published_port_listens[embeddings-local]" in run.failed
    assert set(run.failed) <= {n for n in run.failed if "embeddings" in n}, sorted(run.failed)
    assert "test_chat::test_chat_completion[litellm:chat]" in run.passed


def test_smoke_fails_on_a_wrong_port_in_the_generated_litellm_config(
    fixtures: Fixtures, tmp_path: Path
) -> None:
    """LiteLLM rendered (by the real renderer) with a llama-swap URL on a closed port: it starts, lists its
    names, and fails every chat route; the failures name LiteLLM."""
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
    assert "test_chat::test_chat_completion[upstream:chat]" in run.passed
    assert "test_embeddings::test_embedding[litellm:minilm]" in run.passed


def test_smoke_suite_collects_llama_swap_and_container_checks_for_a_docker_deployment(tmp_path: Path) -> None:
    """For the outputs of a real deployment (Pulumi.dev.yaml, built by the functions `stack.program` exports
    with), the llama-swap checks are collected, and the container checks wherever `docker` works. They cannot
    run here: there is no llama-swap to deploy."""
    cfg = load_stack_file(REPO / "Pulumi.dev.yaml").config
    plan = build_plan(cfg, LocalHeaders(Path(cfg.models_dir)))
    cfg = plan.config.model_copy(update={"litellm": plan.config.litellm.model_copy(update={"enabled": True})})
    urls = endpoints(cfg)
    targets = {
        "endpoints": urls,
        "container_names": {s: container_name(cfg, s) for s in urls},
        "models": model_outputs(cfg, embedding_dimension(plan)),
        "auth_required": auth_outputs(cfg, api_key_enabled=True),
        "sizing": plan.to_json(),
    }
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
        "test_litellm.py::test_litellm_routes_public_name[synth]",
        "test_services.py::test_requests_without_key_are_refused[llama-swap]",
        "test_services.py::test_published_port_listens[llama-swap-local]",
    } <= ids, sorted(ids)
    docker_works = shutil.which("docker") is not None and subprocess.run(
        ["docker", "version"], capture_output=True, check=False, timeout=60
    ).returncode == 0
    containers = {i for i in ids if i.startswith("test_containers.py")}
    assert bool(containers) is docker_works, sorted(containers)
    if docker_works:
        assert "test_containers.py::test_models_mounted_read_only[embeddings-local]" in containers
        assert not any("litellm" in i for i in containers if "models_mounted" in i)
    assert LLAMA_SWAP in targets["endpoints"]


def test_every_rendered_model_cmd_serves_in_a_multi_model_stack(tmp_path: Path) -> None:
    """Three models (`groups: auto` → a matrix), no LiteLLM, no api key: each model's rendered cmd starts on the
    port llama-swap's rule gives it (sorted ids, startPort + n) and passes the smoke suite's chat checks; the
    checks that need a key or LiteLLM are not collected and nothing is skipped."""
    tools, tools_spec = gm.chat_model()
    quant, _ = gm.chat_model(gm.ChatModelSpec(tied=False, dtype="q8_0"))
    plain, _ = gm.chat_model(gm.ChatModelSpec(arch="llama", dtype="f32"))
    emb, _ = gm.minilm_model()
    cfg = StackConfig.model_validate({
        "gpu": {"profile": "cpu"},
        "models_dir": str(tools.parent),
        "models": {
            "tools": {"file": tools.name, "ctx_size": 1024, "jinja": True, "aliases": ["agent"]},
            "quant": {"file": quant.name, "ctx_size": 2048, "parallel": 2, "kv_unified": True,
                      "cache_type_k": "q8_0", "cache_type_v": "q8_0"},
            "plain": {"file": plain.name, "ctx_size": 1024, "flash_attn": "off", "ubatch": 256, "batch": 512},
        },
        "groups": "auto",
        "embeddings": {"name": "minilm", "file": emb.name, "ctx_size": 512, "ubatch": 512, "batch": 512,
                       "pooling": "mean"},
    })
    hints = {"smoke": {"tool_call_logit_bias": {"tools": tool_call_bias(tools_spec)}}}
    with loopback_deployment(cfg, tmp_path / "multi", api_key=False, extra_targets=hints) as d:
        swap_yaml = Path(d.paths.llama_swap_config).read_text()
        assert "\nmatrix:\n" in swap_yaml and "apiKeys" not in swap_yaml
        start = d.config.llama_swap.start_port
        ports = {mid: f"http://127.0.0.1:{start + n}" for n, mid in enumerate(["plain", "quant", "tools"])}
        assert d.upstreams == ports
        run = run_smoke(d, d.targets_path, tmp_path / "junit.xml")
    assert run.rc == 0, run.output[-6000:]
    assert not run.failed and not run.skipped
    assert {f"test_chat::test_chat_completion[upstream:{m}]" for m in ("plain", "quant", "tools")} <= set(run.passed)
    assert "test_chat::test_forced_tool_call[upstream:tools]" in run.passed
    assert not any("refused" in n or "litellm" in n for n in run.passed), run.passed
    assert "not applicable: tests/smoke/test_services.py::test_requests_without_key_are_refused[none]" in run.output
