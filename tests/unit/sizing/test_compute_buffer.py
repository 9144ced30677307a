"""`stack.sizing.compute_buffer`: compute buffers and quantized-cache rotation against what the real llama-server
b11434 printed (tests/data/sizing/b11434-cpu.json, replayed without the binary), and which calibration a build
gets."""

from __future__ import annotations

from typing import Any

import pytest

from bench.sizing_panel import Setting, layouts, load_arch, predict
from models.config import CacheType
from stack.sizing.compute_buffer import CALIBRATIONS, calibration_for, rotation_sizes
from stack.units import MIB
from tests.unit.sizing.llama_server_record import CASES, case_id, layout_fixture


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_compute_buffer_matches_llama_server(case: dict[str, Any]) -> None:
    """Within the calibration band on the small fixtures, and within 0.5 % on the production shapes (Qwen2.5-0.5B,
    Llama-3.2-1B)."""
    layout = layouts()[case["layout"]]
    p = predict(layout, layout_fixture(layout.key), Setting(**case["setting"]))
    err = (p.compute_bytes / MIB - case["compute_mib"]) / case["compute_mib"]
    band = (-0.005, 0.005) if layout.production else (-0.02, 0.16)
    assert band[0] <= err <= band[1], f"compute {p.compute_bytes / MIB:.2f} MiB vs {case['compute_mib']} ({err:+.1%})"


@pytest.mark.parametrize("case", [c for c in CASES if c["layout"] != "mla"], ids=case_id)
def test_kv_rotation_matches_llama_server(case: dict[str, Any]) -> None:
    """Hadamard rotation of quantized caches (n_rot_k/n_rot_v as llama-kv-cache.cpp logged them, non-SWA cache
    first). MLA is left out: llama.cpp sets an n_rot_k for its cache, but the K-only attention builds no rotation."""
    layout = layouts()[case["layout"]]
    setting = Setting(**case["setting"])
    arch = load_arch(layout_fixture(layout.key))
    caches = [False, True] if arch.has_swa else [False]
    k, v = CacheType(setting.cache_k), CacheType(setting.cache_v)
    expected = [rotation_sizes(arch, swa, k, v) for swa in caches] if case["caches"] else []
    assert [tuple(r) for r in case["n_rot"]] == expected


def test_each_build_gets_the_newest_calibration_at_or_below_it() -> None:
    assert [c.build for c in CALIBRATIONS] == sorted(c.build for c in CALIBRATIONS)
    assert calibration_for(None) == CALIBRATIONS[-1]
    assert calibration_for(8211).build == 8000
    assert calibration_for(11433).build == 8000
    assert calibration_for(11434).build == calibration_for(99999).build == 11434
    assert calibration_for(7999).build == 0
