"""`stack.sizing.process_size` for every KV layout against buffers the real llama-server b11434 printed,
replayed without the binary.

tests/data/sizing/b11434-cpu.json is written by `python -m bench.sizing_benchmark` from real runs
(the same panel as tests/integration/test_sizing_vs_llama_server.py, plus the 72-case production-shape
grid). The fixtures are rebuilt from their writers here and sized from their GGUF headers: weights, K and
V of each cache, cells and recurrent state must match to the printed hundredth of a MiB. The compute buffer
of the same cases is checked in test_compute_buffer.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.sizing_panel import Setting, header, layouts, predict, production_panel
from stack.sizing.kv_cache import recurrent_state_parts
from stack.units import MIB
from tests.unit.sizing.llama_server_record import CASES, case_id, layout_fixture

PRINTED = 0.005 + 1e-9
TENSOR_ALIGNMENT = 32


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_layout_matches_llama_server(case: dict[str, Any]) -> None:
    layout = layouts()[case["layout"]]
    path = layout_fixture(layout.key)
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


def test_record_covers_every_layout() -> None:
    assert {c["layout"] for c in CASES} == set(layouts())
    swa_settings = {Setting(**c["setting"]).label for c in CASES if c["layout"] == "swa"}
    assert any("swa-full" in s for s in swa_settings) and any("np4u" in s for s in swa_settings)
    recorded = {case_id(c) for c in CASES}
    assert {c.id for c in production_panel()} <= recorded
