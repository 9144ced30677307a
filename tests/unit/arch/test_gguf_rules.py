"""llama.cpp's per-architecture hparams rules (src/models/<arch>.cpp, src/llama-hparams.cpp), on synthetic headers.

Layouts that b11434 loads on CPU are also checked against the real server
(tests/unit/sizing/test_process_size_measured.py); these cover the families no fixture runs here: other SWA
patterns, hybrid layer maps, RWKV/KDA state widths, MTP layers. The KV sizes these rules lead to are in
tests/unit/sizing/test_kv_cache.py, the ubatch clamp in tests/unit/sizing/test_process.py.
"""

from __future__ import annotations

from typing import Any

from gguf import GGMLQuantizationType

from models.config import CacheType
from stack.arch.gguf_rules import arch_from_header
from stack.arch.model import ModelArch
from stack.gguf.header import TensorInfo
from stack.sizing.kv_cache import context_shape, kv_cache_size, recurrent_state_bytes
from stack.units import MIB
from tests.unit.helpers import arch_of, f16_kv, synthetic_header

F32 = GGMLQuantizationType.F32


def swa_map(a: ModelArch) -> str:
    return "".join("s" if layer.swa else "F" for layer in a.layers)


def test_head_count_kv_defaults_to_head_count_per_layer() -> None:
    a = arch_of("deci", block_count=3, attention__head_count=[8, 4, 8])
    assert [layer.n_head_kv for layer in a.layers] == [8, 4, 8]
    assert [layer.k_dim for layer in a.layers] == [32, 32, 32]  # n_embd / head_count[0]


def test_key_length_beats_n_embd_over_n_head() -> None:
    a = arch_of("qwen3", block_count=2, attention__head_count=8, attention__head_count_kv=2,
                attention__key_length=128, attention__value_length=128)
    assert a.head_dim == 128 and a.n_embd_q == 1024
    assert f16_kv(a).bytes == 2 * 2 * 8192 * 2 * 128 * 2


def test_swa_family_rules() -> None:
    common: dict[str, Any] = {"block_count": 8, "attention__head_count": 4}
    assert swa_map(arch_of("gemma2", **common)) == "sFsFsFsF"
    assert arch_of("gemma2", **common).n_swa == 4096  # default window when the key is absent
    assert swa_map(arch_of("gemma3", **common)) == "FFFFFFFF"  # gemma3 needs sliding_window > 0
    assert swa_map(arch_of("gemma3", attention__sliding_window=1024, **common)) == "sssssFss"
    assert swa_map(arch_of("gpt-oss", attention__sliding_window=128, **common)) == "sFsFsFsF"
    assert swa_map(arch_of("cohere2moe", attention__sliding_window=4096, **common)) == "FsssFsss"  # dense first
    llama4 = arch_of("llama4", attention__sliding_window=2048, **common)
    assert (swa_map(llama4), llama4.n_swa) == ("sssFsssF", 8192)  # chunked attention: window forced to 8192
    assert swa_map(arch_of("llama4", attention__sliding_window=0, **common)) == "FFFFFFFF"
    assert swa_map(arch_of("exaone4", attention__sliding_window=4096, **common)) == "FFFFFFFF"  # 32B only
    # GGUF overrides: an int pattern, a bool array, and pattern 0 = every layer SWA
    assert swa_map(arch_of("gemma3", attention__sliding_window=512, attention__sliding_window_pattern=4,
                           **common)) == "sssFsssF"
    assert swa_map(arch_of("gemma4", attention__sliding_window=512,
                           attention__sliding_window_pattern=[True, False] * 4, **common)) == "sFsFsFsF"
    assert swa_map(arch_of("olmo2", attention__sliding_window=512, attention__sliding_window_pattern=0,
                           **common)) == "ssssssss"
    # a window key alone does not make an architecture SWA
    assert swa_map(arch_of("qwen2", attention__sliding_window=4096, **common)) == "FFFFFFFF"


def test_lfm2_swa_applies_to_attention_layers_only() -> None:
    a = arch_of("lfm2", block_count=4, attention__head_count=8, attention__head_count_kv=[0, 2, 0, 2],
                attention__sliding_window=512, shortconv__l_cache=3)
    assert [(la.swa, la.recurrent, la.has_kv) for la in a.layers] == [
        (False, True, False), (True, False, True), (False, True, False), (True, False, True)]
    assert a.recurrent is not None and (a.recurrent.n_embd_r, a.recurrent.n_embd_s) == (256 * 2, 0)


def test_hybrid_layer_maps() -> None:
    jamba = arch_of("jamba", block_count=4, attention__head_count=8, attention__head_count_kv=[0, 0, 0, 8],
                    ssm__conv_kernel=4, ssm__inner_size=512, ssm__state_size=16)
    assert [(la.recurrent, la.has_kv) for la in jamba.layers] == [(True, False)] * 3 + [(False, True)]
    # qwen3next / qwen3.5: recurrent unless (il + 1) % full_attention_interval == 0
    q = arch_of("qwen35", block_count=8, attention__head_count=16, attention__head_count_kv=2,
                attention__key_length=256, attention__value_length=256, full_attention_interval=4,
                ssm__conv_kernel=4, ssm__inner_size=4096, ssm__state_size=128, ssm__group_count=16)
    assert [la.has_kv for la in q.layers] == [False, False, False, True] * 2
    assert q.recurrent is not None and q.recurrent.n_embd_r == 3 * (4096 + 2 * 16 * 128)
    assert recurrent_state_bytes(q, 4) == 6 * 4 * 4 * (3 * (4096 + 4096) + 128 * 4096)
    # nemotron-h: mamba where n_head_kv == 0 and n_ff == 0, attention where n_ff == 0, MLP layers have neither
    n = arch_of("nemotron_h", block_count=3, attention__head_count=8, attention__head_count_kv=[0, 0, 2],
                feed_forward_length=[0, 1024, 0], ssm__conv_kernel=4, ssm__inner_size=512, ssm__state_size=64,
                ssm__group_count=8)
    assert [(la.recurrent, la.has_kv) for la in n.layers] == [(True, False), (False, False), (False, True)]
    # falcon-h1: every layer has attention and a Mamba-2 mixer
    f = arch_of("falcon-h1", block_count=2, attention__head_count=8, attention__head_count_kv=2,
                ssm__conv_kernel=4, ssm__inner_size=512, ssm__state_size=16, ssm__group_count=1)
    assert [(la.recurrent, la.has_kv) for la in f.layers] == [(True, True)] * 2


def test_recurrent_state_widths() -> None:
    rwkv = arch_of("rwkv6", block_count=2, wkv__head_size=64, token_shift_count=2)
    assert rwkv.recurrent is not None and (rwkv.recurrent.n_embd_r, rwkv.recurrent.n_embd_s) == (512, 256 * 64)
    assert f16_kv(rwkv).bytes == 0
    mamba = arch_of("mamba", block_count=2, ssm__conv_kernel=4, ssm__inner_size=512, ssm__state_size=16)
    assert mamba.recurrent is not None and (mamba.recurrent.n_embd_r, mamba.recurrent.n_embd_s) == (3 * 512, 16 * 512)
    kimi = arch_of("kimi-linear", block_count=2, attention__head_count=32, attention__head_count_kv=[0, 8],
                   kda__head_dim=128, ssm__conv_kernel=4)
    assert kimi.recurrent is not None
    assert (kimi.recurrent.n_embd_r, kimi.recurrent.n_embd_s) == (3 * 3 * 32 * 128, 128 * 128 * 32)
    # one cell per sequence, f32
    assert recurrent_state_bytes(mamba, 3) == 2 * 3 * 4 * (3 * 512 + 16 * 512)


def test_mla_keeps_k_only_and_mtp_layers_have_no_kv_or_weights() -> None:
    norms = [TensorInfo(f"blk.{il}.attn_norm.weight", (256,), F32) for il in range(3)]
    tensors = (*norms, TensorInfo("token_embd.weight", (256, 1000), F32))
    h = synthetic_header("deepseek2", tensors, block_count=3, nextn_predict_layers=1, attention__head_count=16,
               attention__head_count_kv=1, attention__key_length=576, attention__value_length=512,
               attention__key_length_mla=192, attention__value_length_mla=128, attention__kv_lora_rank=512)
    a = arch_from_header(h, "test")
    assert a.mla and [la.has_kv for la in a.layers] == [True, True, False]
    size = f16_kv(a, 4096)
    assert (size.k_bytes, size.v_bytes) == (2 * 4096 * 576 * 2, 0)
    assert a.weights.layer_bytes == (1024, 1024, 0)  # the MTP block is skipped by the loader


def test_shared_kv_layers() -> None:
    g4 = arch_of("gemma4", block_count=6, attention__head_count=4, attention__head_count_kv=2,
                 attention__key_length=64, attention__value_length=64, attention__key_length_swa=32,
                 attention__value_length_swa=32, attention__sliding_window=128,
                 attention__sliding_window_pattern=[True, True, True, False, True, False],
                 attention__shared_kv_layers=2)
    assert [la.has_kv for la in g4.layers] == [True] * 4 + [False] * 2 and g4.shared_kv
    assert [la.k_dim for la in g4.layers] == [32, 32, 32, 64, 32, 64]
    g3n = arch_of("gemma3n", block_count=30, attention__head_count=8, attention__head_count_kv=2,
                  attention__key_length=256, attention__value_length=256, attention__sliding_window=512)
    assert sum(la.has_kv for la in g3n.layers) == 20 and g3n.ple_width == 256 * 30


def test_gpt_oss_20b_reference_table() -> None:
    """§10: gpt-oss-20b, alternating SWA (window 128, even layers), @32k: 792 MiB f16 with 4 unified slots,
    786 with one, 421 (420.75) with q8_0 K and V and 4 unified slots."""
    a = arch_of("gpt-oss", block_count=24, embedding_length=2880, attention__head_count=64,
                attention__head_count_kv=8, attention__key_length=64, attention__value_length=64,
                attention__sliding_window=128)
    assert swa_map(a) == "sF" * 12
    assert f16_kv(a, 32768, 4, unified=True).bytes == 792 * MIB
    assert f16_kv(a, 32768, 1).bytes == 786 * MIB
    q8 = kv_cache_size(a, context_shape(32768, 4, True), cache_type_k=CacheType.q8_0, cache_type_v=CacheType.q8_0,
                       flash_attn=True, ubatch=512, kv_unified=True)
    assert q8.bytes == int(420.75 * MIB)
