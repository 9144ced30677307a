"""`stack.sizing.process_size`: one llama-server process's memory, against measured llama.cpp buffers
(../shared/reference/llama-cpp-memory.md §9, §10), with partial offload, a draft model and a projector.

KV must match to the MiB; weights from the catalog within 0.5 % (they derive from a published
file size); compute within 10 % under the calibration of the build that was measured. A draft model and a
multimodal projector live in the same process: their memory adds up, once.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from models import ArchConfig, ConfigError, GpuConfig, ModelConfig
from stack.arch.catalog import lookup
from stack.arch.model import ModelArch, WeightsSpec, uniform_layers
from stack.arch.resolve import arch_from_config
from stack.sizing.compute_buffer import calibration_for
from stack.sizing.plan import build_plan
from stack.sizing.process_size import ProcessSize, SizingBug, size_process
from stack.units import MIB
from tests.unit.helpers import stack

RTX5080 = GpuConfig(profile="rtx-5080")
MAIN = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 8192, "parallel": 2}


def _size(file: str, *, build: int, **settings: object) -> ProcessSize:
    s = ModelConfig.model_validate({"file": file, **settings})
    return size_process("m", "models.m", s, lookup(file), RTX5080, calibration_for(build))


def test_example_1_llama31_8b_fa_off() -> None:
    """Ollama log: ctx 8192 (4 slots), ub 512, FA off, f16: model 4403.49, CPU 281.81, KV 1024.00, compute 560.00."""
    p = _size("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", build=0, ctx_size=8192, parallel=4, kv_unified=True,
              flash_attn="off")
    assert p.kv_bytes == 1024 * MIB
    assert p.host_weights_bytes / MIB == pytest.approx(281.81, abs=0.01)
    assert p.weights_bytes / MIB == pytest.approx(4403.49, rel=0.005)
    assert p.compute_bytes / MIB == pytest.approx(560.00, rel=0.10)


def test_example_2_qwen25_7b_32k_fa_on() -> None:
    """Ollama log: ctx 32768, 1 slot, FA on, f16: model 4168.09 (+292.36 CPU), KV 1792.00, compute 382.01."""
    p = _size("Qwen2.5-7B-Instruct-Q4_K_M.gguf", build=0, ctx_size=32768, parallel=1)
    assert p.kv_bytes == 1792 * MIB
    assert p.host_weights_bytes / MIB == pytest.approx(292.36, abs=0.01)
    assert p.weights_bytes / MIB == pytest.approx(4168.09, rel=0.005)
    assert p.compute_bytes / MIB == pytest.approx(382.01, rel=0.10)


def test_example_3_qwen3_17b_default_ctx() -> None:
    """b8211 log: Qwen3-1.7B, default ctx 40960, 4 unified slots: context 4480, compute 300."""
    arch = arch_from_config(
        ArchConfig(n_layer=28, n_embd=2048, n_head=16, n_head_kv=8, head_dim=128, n_ff=6144, n_vocab=151936,
                   weights_mib=1050),
        "Qwen3-1.7B-Q4_K_M.gguf", "config",
    )
    s = ModelConfig(file="Qwen3-1.7B-Q4_K_M.gguf", ctx_size=40960, parallel=4, kv_unified=True)
    p = size_process("m", "models.m", s, arch, RTX5080, calibration_for(8211))
    assert p.kv_bytes == 4480 * MIB
    assert p.compute_bytes / MIB == pytest.approx(300, rel=0.10)


def test_embedding_encoders_have_no_kv() -> None:
    for file in ("nomic-embed-text-v1.5.Q8_0.gguf", "bge-m3-F16.gguf"):
        p = _size(file, build=11434, ctx_size=8192)
        assert p.kv_bytes == 0 and p.arch.causal is False


def test_partial_offload_keeps_layers_and_their_kv_on_the_host() -> None:
    """-ngl counts the output layer too, and offloads it first: 14 of a 28-layer model puts the output layer and
    13 blocks on the GPU (llama-model.cpp b11434 logs "offloading output layer to GPU" for any -ngl > 0)."""
    full = _size("Qwen2.5-7B-Instruct-Q4_K_M.gguf", build=11434, ctx_size=8192)
    part = _size("Qwen2.5-7B-Instruct-Q4_K_M.gguf", build=11434, ctx_size=8192, n_gpu_layers=14)
    w = part.arch.weights
    assert part.weights_bytes == sum(w.layer_bytes[15:]) + w.output_bytes + w.tied_output_bytes + w.cuda_pad_bytes
    assert part.kv_bytes == full.kv_bytes * 13 // 28


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


def test_a_negative_figure_never_reaches_the_gate() -> None:
    """Header values are range-checked before sizing; if a bug still produced a negative figure, ProcessSize
    refuses it (an internal error) instead of letting it lower a co-resident set's total."""
    good = uniform_layers(2, 2, 16)
    arch = ModelArch("llama", 64, 4, 128, 32, 2048, good, WeightsSpec((1000, 1000), 100, 100), "test")
    cfg = stack(models={"m": {"file": "m.gguf", "ctx_size": 2048}})
    settings = cfg.models["m"]
    calibration = calibration_for(None)
    assert size_process("m", "models.m", settings, arch, cfg.gpu, calibration).total_bytes > 0
    negative = replace(arch, layers=tuple(replace(layer, k_dim=-(1 << 31)) for layer in good))
    with pytest.raises(SizingBug, match="kv_bytes = -"):
        size_process("m", "models.m", settings, negative, cfg.gpu, calibration)
