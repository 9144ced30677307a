"""`stack.sizing.kv_cache`: cells and bytes of the KV cache, against the reference's measured tables
(../shared/reference/llama-cpp-memory.md §2.5, §10) and llama.cpp's padding and SWA rules.

KV must match to the MiB. The per-architecture rules that decide which layers hold KV are in
tests/unit/arch/test_gguf_rules.py; the whole process size in tests/unit/sizing/test_process_size.py.
"""

from __future__ import annotations

import pytest

from models.config import CacheType
from stack.arch.catalog import lookup
from stack.sizing.kv_cache import context_shape, kv_cache_size
from stack.units import MIB
from tests.unit.helpers import arch_of, f16_kv

F16, Q8 = CacheType.f16, CacheType.q8_0


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


def test_gemma3_27b_swa_cells_grow_with_slots_and_ubatch() -> None:
    a = arch_of("gemma3", block_count=62, attention__head_count=32, attention__head_count_kv=16,
                attention__key_length=128, attention__value_length=128, attention__sliding_window=1024)
    assert f16_kv(a, 32768, 4, unified=True).swa_cells == 4608  # 4 x 1024 + 512
    assert f16_kv(a, 32768, 1).swa_cells == f16_kv(a, 65536, 1).swa_cells == 1536
    assert f16_kv(a, 32768, 1, ub=2048).swa_cells == 3072
    assert f16_kv(a, 32768, 4, unified=False).swa_cells == 1536  # per stream
    assert f16_kv(a, 32768, 4, unified=True).bytes == 4432 * MIB  # reference §10


def test_fa_off_pads_v_to_the_widest_layer_including_swa_head_sizes() -> None:
    g4 = arch_of("gemma4", block_count=2, attention__head_count=4, attention__head_count_kv=2,
                 attention__key_length=64, attention__value_length=64, attention__key_length_swa=32,
                 attention__value_length_swa=32, attention__sliding_window=128,
                 attention__sliding_window_pattern=[True, False])
    on, off = f16_kv(g4, 4096, fa=True), f16_kv(g4, 4096, fa=False)
    assert on.v_swa_bytes == 768 * 64 * 2 and off.v_swa_bytes == 768 * 128 * 2  # PAD256(128 + 512) cells
    assert on.k_bytes == off.k_bytes
