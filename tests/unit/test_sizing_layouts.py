"""Every KV layout against buffers the real llama-server b11434 printed, replayed without the binary.

tests/data/sizing/b11434-cpu.json is written by `python -m bench.sizing_benchmark` from real runs
(the same panel as tests/integration/test_sizing_vs_llama_server.py). The fixtures are rebuilt from
their writers here and sized from their GGUF headers: weights, K and V of each cache, cells and
recurrent state must match to the printed hundredth of a MiB; compute within the calibration band.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.sizing_panel import Setting, layouts, predict
from stack.arch import MIB
from stack.gguf_header import read_header_file
from stack.kv_cache import recurrent_state_parts

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
    slack = len(read_header_file(path).tensors) * TENSOR_ALIGNMENT / MIB
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
    assert -0.02 <= err <= 0.16, f"compute {p.compute_bytes / MIB:.2f} MiB vs {case['compute_mib']} ({err:+.1%})"


def test_record_covers_every_layout() -> None:
    assert {c["layout"] for c in CASES} == set(layouts())
    swa_settings = {Setting(**c["setting"]).label for c in CASES if c["layout"] == "swa"}
    assert any("swa-full" in s for s in swa_settings) and any("np4u" in s for s in swa_settings)
