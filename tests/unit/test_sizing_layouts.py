"""Every KV layout against buffers the real llama-server b11434 printed, replayed without the binary.

tests/data/sizing/b11434-cpu.json is written by `python -m bench.sizing_benchmark` from real runs
(the same panel as tests/integration/test_sizing_vs_llama_server.py, plus the 72-case production-shape
grid). The fixtures are rebuilt from their writers here and sized from their GGUF headers: weights, K and
V of each cache, cells and recurrent state must match to the printed hundredth of a MiB; compute within
the calibration band, and within 0.5 % on the production shapes (Qwen2.5-0.5B, Llama-3.2-1B).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import pytest

from bench.sizing_panel import Setting, header, layouts, load_arch, predict, production_panel
from models.config import CacheType
from stack.gguf import writers as gm
from stack.sizing.compute_buffer import rotation_sizes
from stack.sizing.kv_cache import recurrent_state_parts
from stack.units import MIB

RECORD = Path(__file__).resolve().parents[1] / "data" / "sizing" / "b11434-cpu.json"
PRINTED = 0.005 + 1e-9
TENSOR_ALIGNMENT = 32

CASES: list[dict[str, Any]] = json.loads(RECORD.read_text())["cases"]


def _id(case: dict[str, Any]) -> str:
    return f"{case['layout']}[{Setting(**case['setting']).label}]"


def _fixture(layout_key: str) -> Path:
    try:
        return layouts()[layout_key].build()
    except RuntimeError as exc:  # the MiniLM source package is not installed here
        pytest.skip(str(exc))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_layout_matches_llama_server(case: dict[str, Any]) -> None:
    layout = layouts()[case["layout"]]
    path = _fixture(layout.key)
    p = predict(layout, path, Setting(**case["setting"]))
    # weights: CPU_Mapped is the mmap span of the tensors (GGUF pads each to 32 bytes)
    slack = len(header(path).tensors) * TENSOR_ALIGNMENT / MIB
    assert -PRINTED <= case["weights_mib"] - p.weights_bytes / MIB <= PRINTED + slack
    caches = case["caches"]
    if p.arch.causal:
        assert (case["n_ctx"], case["n_ctx_seq"]) == (p.shape.n_ctx, p.shape.n_ctx_seq)
    by_kind = {c["kind"]: c for c in caches}
    if p.arch.has_swa:
        base, swa = by_kind["non-SWA"], by_kind["SWA"]
        assert (base["cells"], swa["cells"]) == (p.kv.cells, p.kv.swa_cells)
        assert swa["layers"] == p.kv.swa_layers
        assert abs(base["k_mib"] - p.kv.k_base_bytes / MIB) <= PRINTED
        assert abs(base["v_mib"] - p.kv.v_base_bytes / MIB) <= PRINTED
        assert abs(swa["k_mib"] - p.kv.k_swa_bytes / MIB) <= PRINTED
        assert abs(swa["v_mib"] - p.kv.v_swa_bytes / MIB) <= PRINTED
    elif caches:
        (c,) = caches
        assert (c["cells"], c["layers"], c["n_stream"]) == (p.kv.cells, p.kv.layers_with_kv, p.shape.n_stream)
        assert abs(c["k_mib"] - p.kv.k_bytes / MIB) <= PRINTED
        assert abs(c["v_mib"] - p.kv.v_bytes / MIB) <= PRINTED
    else:
        assert p.kv.bytes == 0
    r, s = recurrent_state_parts(p.arch, p.shape.n_seq_max)
    assert abs(case["rs_r_mib"] - r / MIB) <= PRINTED
    assert abs(case["rs_s_mib"] - s / MIB) <= PRINTED
    err = (p.compute_bytes / MIB - case["compute_mib"]) / case["compute_mib"]
    band = (-0.005, 0.005) if layout.production else (-0.02, 0.16)
    assert band[0] <= err <= band[1], f"compute {p.compute_bytes / MIB:.2f} MiB vs {case['compute_mib']} ({err:+.1%})"


@pytest.mark.parametrize("case", [c for c in CASES if c["layout"] != "mla"], ids=_id)
def test_kv_rotation_matches_llama_server(case: dict[str, Any]) -> None:
    """Hadamard rotation of quantized caches (n_rot_k/n_rot_v as llama-kv-cache.cpp logged them, non-SWA cache
    first). MLA is left out: llama.cpp sets an n_rot_k for its cache, but the K-only attention builds no rotation."""
    layout = layouts()[case["layout"]]
    setting = Setting(**case["setting"])
    arch = load_arch(_fixture(layout.key))
    caches = [False, True] if arch.has_swa else [False]
    k, v = CacheType(setting.cache_k), CacheType(setting.cache_v)
    expected = [rotation_sizes(arch, swa, k, v) for swa in caches] if case["caches"] else []
    assert [tuple(r) for r in case["n_rot"]] == expected


def test_record_covers_every_layout() -> None:
    assert {c["layout"] for c in CASES} == set(layouts())
    swa_settings = {Setting(**c["setting"]).label for c in CASES if c["layout"] == "swa"}
    assert any("swa-full" in s for s in swa_settings) and any("np4u" in s for s in swa_settings)
    recorded = {_id(c) for c in CASES}
    assert {c.id for c in production_panel()} <= recorded


@pytest.mark.parametrize("spec", [gm.QWEN25_05B_SPEC, gm.LLAMA32_1B_SPEC], ids=lambda s: s.name)
def test_production_shape_fixture(spec: gm.ProductionShapeSpec) -> None:
    """The zero-weight fixtures carry the released models' shapes, types and vocabulary size."""
    path, _ = gm.production_shape_model(spec)
    h = header(path)
    arch = load_arch(path)
    assert (arch.architecture, arch.n_layer, arch.n_embd, arch.n_head, arch.n_ff, arch.n_vocab) == (
        spec.arch, spec.n_layer, spec.n_embd, spec.n_head, spec.n_ff, spec.n_vocab)
    assert {(ly.n_head_kv, ly.k_dim, ly.v_dim) for ly in arch.layers} == {(spec.n_head_kv, 64, 64)}
    tensors = {t.name: t for t in h.tensors}
    assert "output.weight" not in tensors  # tied: llama.cpp duplicates token_embd
    assert arch.weights.tied_output_bytes == tensors["token_embd.weight"].n_bytes
    n_q8 = sum(t.n_bytes for t in h.tensors if t.ggml_type == gguf.GGMLQuantizationType.Q8_0)
    n_elements = sum(t.n_elements for t in h.tensors if t.ggml_type == gguf.GGMLQuantizationType.Q8_0)
    assert n_q8 == n_elements // 32 * 34
    # data past the header is a hole: the file's logical size is what llama.cpp maps, its blocks are not written
    assert path.stat().st_size >= arch.weights.total_bytes

