"""A `groups: auto` stack on the real llama-swap v250: its matrix sets swap models exactly as the sizing said.

Three fixture chat models of very different sizes and the MiniLM embedder, sized for a GPU whose `vram_mib` is set
from the plan's own numbers so that the small model fits beside either other one but the two larger ones never fit
together: the sizing then emits the matrix sets `large & small` and `mid & small`. (The cpu profile has no VRAM gate,
so there `groups: auto` puts every model in one set and nothing is ever evicted; the models run on the CPU either
way, since the pinned llama-server build has no GPU backend and ignores `-ngl`.)

The loopback deployment (`tests/harness/loopback.py`) runs llama-swap on the rendered config; requests through it
in a fixed order must leave `/running` showing exactly the models the matrix allows together: the small one stays
loaded beside whichever larger one was asked for, the other larger one is evicted. The smoke suite runs on the
same deployment, its matrix check (`test_matrix_keeps_what_the_sizing_allows`) included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from models.config import StackConfig
from stack.gguf import writers as gm
from stack.gguf.sources import LocalHeaders
from stack.sizing.plan import build_plan
from stack.units import MIB
from tests.harness import binaries
from tests.harness.llama_server import http_request
from tests.harness.loopback import LoopbackDeployment, loopback_deployment
from tests.harness.smoke_runner import run_smoke_suite

pytestmark = pytest.mark.integration

EMBEDDER = "minilm"


def auto_stack(vram_mib: int, models_dir: Path, files: dict[str, str], embedding: str) -> StackConfig:
    return StackConfig.model_validate({
        "gpu": {"profile": "rtx-5080", "vram_mib": vram_mib, "reserve_mib": 0, "overhead_mib": 0},
        "models_dir": str(models_dir),
        "models": {
            "small": {"file": files["small"], "ctx_size": 512, "cache_type_k": "q8_0", "cache_type_v": "q8_0"},
            "mid": {"file": files["mid"], "ctx_size": 4096, "jinja": True, "aliases": ["agent"]},
            "large": {"file": files["large"], "ctx_size": 8192, "flash_attn": "off", "cache_type_k": "f32",
                      "cache_type_v": "f32"},
        },
        "groups": "auto",
        "embeddings": {"name": EMBEDDER, "aliases": ["embed-small"], "file": embedding, "ctx_size": 512,
                       "ubatch": 512, "batch": 512, "pooling": "mean"},
    })


def sized_stack() -> tuple[StackConfig, dict[str, Any]]:
    """The stack with `vram_mib` just above embedder + large + small (MiB, rounded up), so large + mid is over."""
    # Not a q8_0 fixture: on this CPU (AMX) the pinned llama-server build dies on q8_0 weights (invalid opcode).
    small, _ = gm.chat_model(gm.ChatModelSpec(tied=False))
    mid, mid_spec = gm.chat_model()
    large, _ = gm.chat_model(gm.ChatModelSpec(arch="llama", dtype="f32"))
    emb, _ = gm.minilm_model()
    files = {"small": small.name, "mid": mid.name, "large": large.name}
    headers = LocalHeaders(small.parent)
    probe = build_plan(auto_stack(1 << 20, small.parent, files, emb.name), headers)
    size = {name: p.total_bytes / MIB for name, p in probe.processes.items()}
    vram = math.ceil(size[EMBEDDER] + size["large"] + size["small"]) + 1
    assert size[EMBEDDER] + size["large"] + size["mid"] > vram, size
    hints = {"smoke": {"tool_call_logit_bias": {"mid": gm.tool_call_bias(mid_spec)}}}
    return auto_stack(vram, small.parent, files, emb.name), hints


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackDeployment]:
    binaries.require(binaries.llama_swap)
    cfg, hints = sized_stack()
    with loopback_deployment(cfg, tmp_path_factory.mktemp("auto"), api_key=False, extra_targets=hints) as d:
        yield d


def _running(d: LoopbackDeployment) -> dict[str, dict[str, Any]]:
    r = http_request("GET", f"{d.llama_swap_url}/running", timeout=10)
    assert r.status == 200, r.body[:300]
    return {str(e["model"]): e for e in r.json()["running"]}


def _chat(d: LoopbackDeployment, model: str) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    r = http_request("POST", f"{d.llama_swap_url}/v1/chat/completions", body, timeout=120)
    assert r.status == 200, f"{model}: HTTP {r.status}: {r.body[:300]!r}\n{d.process('llama-swap').log_tail()}"


def test_the_sizing_chose_two_sets_around_the_small_model(deployment: LoopbackDeployment) -> None:
    matrix = deployment.config.matrix
    assert matrix is not None
    assert matrix.sets == {"s1": ["large", "small"], "s2": ["mid", "small"]}
    text = Path(deployment.paths.llama_swap_config).read_text()
    assert "matrix:\n  sets:\n    s1: large & small\n    s2: mid & small\n" in text
    assert "groups:" not in text and "apiKeys" not in text


def test_requests_swap_exactly_as_the_matrix_predicts(deployment: LoopbackDeployment) -> None:
    """small → {small}; mid joins it (s2); large evicts mid, small stays (s1); mid evicts large (s2). The embedder
    answers at every step. Each model listens on the port llama-swap's rule gives it: startPort + its index among
    the sorted ids (large, mid, small), the range the loopback reserved."""
    d = deployment
    r = http_request("GET", f"{d.llama_swap_url}/unload", timeout=60)
    assert r.status == 200 and _running(d) == {}
    start = d.config.llama_swap.start_port
    port = {mid: start + n for n, mid in enumerate(["large", "mid", "small"])}
    steps = [("small", {"small"}), ("mid", {"mid", "small"}), ("large", {"large", "small"}), ("mid", {"mid", "small"})]
    seen = []
    for model, expected in steps:
        _chat(d, model)
        running = _running(d)
        seen.append((model, sorted(running)))
        assert set(running) == expected, seen
        assert all(e["state"] == "ready" for e in running.values()), running
        assert {m: e["proxy"] for m, e in running.items()} == {m: f"http://127.0.0.1:{port[m]}" for m in expected}
        assert http_request("GET", f"{d.paths.embedding_url}/health", timeout=5).status == 200


def test_the_embedder_answers_through_llama_swap_by_both_names(deployment: LoopbackDeployment) -> None:
    """llama-swap lists the embedder as `embeddings/minilm` and routes that id and the plain `minilm` (the name
    clients use, directly and through LiteLLM) to its peer: the same vector as the embedding server's own."""
    d = deployment
    listed = {rec["id"] for rec in http_request("GET", f"{d.llama_swap_url}/v1/models").json()["data"]}
    assert listed == {"large", "mid", "small", "embeddings/embed-small", "embeddings/minilm"}
    body = {"input": ["A cat sits on the mat."], "encoding_format": "float"}
    direct = http_request("POST", f"{d.paths.embedding_url}/v1/embeddings", {**body, "model": EMBEDDER})
    assert direct.status == 200, direct.body[:300]
    vector = direct.json()["data"][0]["embedding"]
    for name in (EMBEDDER, f"embeddings/{EMBEDDER}", "embed-small", "embeddings/embed-small"):
        r = http_request("POST", f"{d.llama_swap_url}/v1/embeddings", {**body, "model": name})
        assert r.status == 200, f"{name}: HTTP {r.status}: {r.body[:300]!r}"
        assert r.json()["data"][0]["embedding"] == vector, name
    assert "embeddings" not in {m.split("/")[0] for m in _running(d)}, "peers are not local models"


def test_smoke_suite_passes_on_the_auto_stack(deployment: LoopbackDeployment, tmp_path: Path) -> None:
    """The whole suite, its matrix check included, with no key anywhere: the keyed checks are not collected."""
    run = run_smoke_suite(deployment.targets_path, tmp_path / "junit.xml", deployment.smoke_env())
    assert run.rc == 0, run.output[-6000:]
    assert not run.failed and not run.skipped, run.output[-3000:]
    assert {
        "test_llama_swap::test_matrix_keeps_what_the_sizing_allows[large-mid-small-mid-large]",
        "test_llama_swap::test_swap_keeps_embedder_loaded[large-mid]",
        "test_llama_swap::test_llama_swap_lists_every_id_and_alias",
        *(f"test_chat::test_chat_completion[llama-swap:{m}]" for m in ("large", "mid", "small")),
        "test_chat::test_forced_tool_call[llama-swap:mid]",
        "test_embeddings::test_embedding[llama-swap:embeddings/minilm]",
    } <= set(run.passed), run.output[-3000:]
    assert "not applicable: tests/smoke/test_services.py::test_requests_without_key_are_refused[none]" in run.output
