"""Sizing against measured llama.cpp buffers (../shared/reference/llama-cpp-memory.md §9, §10).

KV must match to the MiB; weights from the catalog within 0.5 % (they derive from a published
file size); compute within 10 % under the calibration of the build that was measured.
"""

from __future__ import annotations

import pytest

from models import ArchConfig, GpuConfig, ModelConfig
from models.config import CacheType
from stack.arch.catalog import lookup
from stack.arch.model import WeightsSpec
from stack.arch.resolve import arch_from_config
from stack.sizing.compute_buffer import calibration_for
from stack.sizing.kv_cache import context_shape, kv_cache_size
from stack.sizing.process_size import ProcessSize, size_process
from stack.units import MIB

RTX5080 = GpuConfig(profile="rtx-5080")
F16, Q8 = CacheType.f16, CacheType.q8_0


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


@pytest.mark.parametrize(
    ("file", "f16_32k_np4", "q8_32k"),
    [
        ("Qwen2.5-3B-Instruct-Q4_K_M.gguf", 1152, 612),
        ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", 1792, 952),
        ("Qwen2.5-14B-Instruct-Q4_K_M.gguf", 6144, 3264),
        ("Qwen3-8B-Q4_K_M.gguf", 4608, 2448),
        ("Qwen3-14B-Q4_K_M.gguf", 5120, 2720),
        ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", 4096, 2176),
        ("Llama-3.2-3B-Instruct-Q4_K_M.gguf", 3584, 1904),
        ("Mistral-Nemo-Instruct-2407-Q4_K_M.gguf", 5120, 2720),
    ],
)
def test_kv_table_of_the_reference(file: str, f16_32k_np4: int, q8_32k: int) -> None:
    """§10: KV at 32k with the server's 4 unified slots (f16), and with q8_0 K and V."""
    arch = lookup(file)
    kv = kv_cache_size(arch, context_shape(32768, 4, True), cache_type_k=F16, cache_type_v=F16, flash_attn=True,
                       ubatch=512, kv_unified=True)
    assert kv.bytes == f16_32k_np4 * MIB
    kv8 = kv_cache_size(arch, context_shape(32768, 1, False), cache_type_k=Q8, cache_type_v=Q8, flash_attn=True,
                        ubatch=512, kv_unified=False)
    assert kv8.bytes == q8_32k * MIB


def test_gemma3_swa_cells_grow_with_slots_not_ctx() -> None:
    """§2.5/§10: gemma-3-12b at 32k f16: 3488 MiB with 4 unified slots (4608 SWA cells), 2528 with 1 slot."""
    arch = lookup("gemma-3-12b-it-Q4_K_M.gguf")

    def kv(ctx: int, np: int, unified: bool):
        return kv_cache_size(arch, context_shape(ctx, np, unified), cache_type_k=F16, cache_type_v=F16,
                             flash_attn=True, ubatch=512, kv_unified=unified)

    np4, np1, longer = kv(32768, 4, True), kv(32768, 1, False), kv(65536, 1, False)
    assert (np4.swa_cells, np1.swa_cells) == (4608, 1536)
    assert np4.bytes == 3488 * MIB
    assert np1.bytes == 2528 * MIB
    assert longer.swa_cells == np1.swa_cells


def test_split_kv_pads_each_slot_to_256() -> None:
    """llama-context.cpp: -c 1000 -np 3 -> 1024 padded, 1024/3 = 341 -> 512 per slot, 1536 cells in all."""
    shape = context_shape(1000, 3, False)
    assert (shape.n_ctx, shape.n_ctx_seq, shape.n_stream) == (1536, 512, 3)
    unified = context_shape(1000, 3, True)
    assert (unified.n_ctx, unified.n_ctx_seq, unified.n_stream) == (1024, 1024, 1)


def test_quantized_rows_use_block_sizes() -> None:
    arch = lookup("Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    kv = kv_cache_size(arch, context_shape(4096, 1, False), cache_type_k=Q8, cache_type_v=F16, flash_attn=False,
                       ubatch=512, kv_unified=False)
    # 28 layers x 512 values x 4096 cells: K at 34 B per 32 values, V at 2 B.
    assert kv.k_bytes == 28 * 512 // 32 * 34 * 4096
    assert kv.v_bytes == 28 * 512 * 2 * 4096


def test_embedding_encoders_have_no_kv() -> None:
    for file in ("nomic-embed-text-v1.5.Q8_0.gguf", "bge-m3-F16.gguf"):
        p = _size(file, build=11434, ctx_size=8192)
        assert p.kv_bytes == 0 and p.arch.causal is False


def test_tied_output_is_copied_to_the_gpu() -> None:
    """Qwen2.5-3B has no output.weight: token_embd stays on the host and a copy goes to the GPU."""
    tied = lookup("Qwen2.5-3B-Instruct-Q4_K_M.gguf")
    untied = lookup("Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    assert tied.weights.tied_output_bytes == tied.weights.input_bytes > 0
    assert untied.weights.tied_output_bytes == 0
    assert tied.weights.gpu_bytes(999) == tied.weights.total_bytes
    assert untied.weights.gpu_bytes(999) == untied.weights.total_bytes - untied.weights.input_bytes


def test_partial_offload_keeps_layers_and_their_kv_on_the_host() -> None:
    """-ngl counts the output layer too, and offloads it first: 14 of a 28-layer model puts the output layer and
    13 blocks on the GPU (llama-model.cpp b11434 logs "offloading output layer to GPU" for any -ngl > 0)."""
    full = _size("Qwen2.5-7B-Instruct-Q4_K_M.gguf", build=11434, ctx_size=8192)
    part = _size("Qwen2.5-7B-Instruct-Q4_K_M.gguf", build=11434, ctx_size=8192, n_gpu_layers=14)
    w = part.arch.weights
    assert part.weights_bytes == sum(w.layer_bytes[15:]) + w.output_bytes + w.tied_output_bytes + w.cuda_pad_bytes
    assert part.kv_bytes == full.kv_bytes * 13 // 28


def test_partial_offload_puts_the_output_layer_on_the_gpu_first() -> None:
    """llama-model.cpp b11434 (`i_gpu_start = max(n_layer + 1 - ngl, 0)`, output = `get_layer_buft_list(n_layer)`):
    `-ngl 1` offloads the output layer alone, `-ngl k` the output and the last k - 1 repeating layers. Read from the
    source; a CPU build has no GPU device to show it, and no GPU was lent to measure it."""
    w = WeightsSpec(layer_bytes=(10, 20, 30), input_bytes=5, output_bytes=7, tied_output_bytes=0, cuda_pad_bytes=0)
    assert [w.gpu_bytes(n) for n in (0, 1, 2, 3, 4, 999)] == [0, 7, 37, 57, 67, 67]
    assert [w.host_bytes(n) for n in (0, 1, 2, 3, 4, 999)] == [72, 65, 35, 15, 5, 5]
    assert all(w.gpu_bytes(n) + w.host_bytes(n) == 72 for n in (0, 1, 2, 3, 4, 999))
