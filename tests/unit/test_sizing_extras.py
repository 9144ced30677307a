"""A draft model and a multimodal projector live in the same process: their memory adds up, once."""

from __future__ import annotations

import pytest

from models import ConfigError
from stack.render.paths import CONTAINER_PATHS
from stack.render.server_args import model_argv
from stack.sizing.plan import build_plan
from stack.units import MIB
from tests.unit.helpers import stack

MAIN = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 8192, "parallel": 2}


def test_draft_adds_its_weights_kv_and_compute_but_no_second_overhead() -> None:
    base = build_plan(stack(models={"m": MAIN})).processes["m"]
    drafted = build_plan(stack(models={"m": {**MAIN, "draft": {"file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf",
                                                               "n_max": 8}}})).processes["m"]
    small = build_plan(stack(models={"s": {**MAIN, "file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf"}})).processes["s"]
    assert drafted.overhead_bytes == base.overhead_bytes
    expected = small.weights_bytes + small.kv_bytes + small.compute_bytes
    # The draft's compute reserves logits for n_parallel x (1 + n_max) outputs, a little above a plain run.
    assert drafted.draft_bytes == pytest.approx(expected, rel=0.2)
    assert drafted.draft_bytes >= small.weights_bytes + small.kv_bytes
    assert drafted.compute_bytes >= base.compute_bytes
    assert drafted.total_bytes == base.total_bytes + drafted.draft_bytes + (drafted.compute_bytes - base.compute_bytes)


def test_mmproj_needs_a_size_when_its_file_is_not_readable() -> None:
    with pytest.raises(ConfigError) as info:
        build_plan(stack(models={"m": {**MAIN, "mmproj": {"file": "mmproj-F16.gguf"}}}))
    assert [k for k, _ in info.value.problems] == ["models.m.mmproj.weights_mib"]
    p = build_plan(stack(models={"m": {**MAIN, "mmproj": {"file": "mmproj-F16.gguf", "weights_mib": 800}}}))
    assert p.processes["m"].mmproj_bytes == 1200 * MIB
    off = build_plan(stack(models={"m": {**MAIN, "mmproj": {"file": "mmproj-F16.gguf", "weights_mib": 800,
                                                            "offload": False}}}))
    assert off.processes["m"].mmproj_bytes == 0


def test_draft_and_mmproj_flags_are_rendered() -> None:
    cfg = stack(models={"m": {**MAIN, "draft": {"file": "d.gguf", "arch": {
        "n_layer": 2, "n_embd": 64, "n_head": 4, "n_head_kv": 2, "head_dim": 16, "n_ff": 128, "n_vocab": 100,
        "weights_mib": 1}}, "mmproj": {"file": "p.gguf", "weights_mib": 10}}})
    argv = model_argv("m", cfg.models["m"], CONTAINER_PATHS, cpu_only=False)
    assert argv[argv.index("--spec-draft-model") + 1] == "/models/d.gguf"
    assert argv[argv.index("--spec-draft-n-max") + 1] == "3"
    assert argv[argv.index("--mmproj") + 1] == "/models/p.gguf"
    assert "--no-mmproj-offload" not in argv
