"""Turn GGUF metadata and tensor infos into a `ModelArch`, following llama.cpp's hparams rules.

Rules and source paths: ../shared/reference/llama-cpp-memory.md §2.3-2.9 and §4.
"""

from __future__ import annotations

import re
from typing import Any

from gguf import GGMLQuantizationType

from stack.arch import LayerSpec, ModelArch, Recurrent, WeightsSpec, swa_layers
from stack.gguf_header import GgufHeader

# llama-model.cpp create_memory: these architectures get no KV cache (non-causal encoders, diffusion).
NO_KV_ARCHS = frozenset(
    {
        "bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert", "eurobert",
        "wavtokenizer-dec", "modern-bert", "gemma-embedding", "dream", "llada", "llada-moe", "rnd1", "clef",
    }
)

INPUT_TENSORS = frozenset(
    {
        "token_embd.weight", "position_embd.weight", "token_types.weight", "per_layer_token_embd.weight",
        "masked_embd_centroids", "masked_embd_ordering",
    }
)

# Family defaults for sliding-window layouts when the GGUF has no explicit pattern (src/models/*.cpp).
SWA_FAMILY_PATTERN: dict[str, int] = {"gemma2": 2, "gemma3": 6, "gpt-oss": 2, "cohere2": 4, "llama4": 4}
SWA_FAMILY_DEFAULT_WINDOW: dict[str, int] = {"gemma2": 4096, "llama4": 8192}

RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})

QUANTIZED_ROW_PADDING = 512
CUDA_ALIGNMENT = 128

_BLK = re.compile(r"^blk\.(\d+)\.")


def _per_layer(value: Any, n_layer: int, default: int) -> list[int]:
    if value is None:
        return [default] * n_layer
    if isinstance(value, list):
        if len(value) != n_layer:
            return [int(value[0])] * n_layer if value else [default] * n_layer
        return [int(v) for v in value]
    return [int(value)] * n_layer


def _swa_flags(h: GgufHeader, n_layer: int, n_swa: int) -> tuple[bool, ...]:
    pattern = h.arch_key("attention.sliding_window_pattern")
    if isinstance(pattern, list):
        return tuple(bool(v) for v in pattern[:n_layer]) + (False,) * max(0, n_layer - len(pattern))
    if n_swa <= 0:
        return (False,) * n_layer
    if isinstance(pattern, int):
        return swa_layers(n_layer, pattern)
    return swa_layers(n_layer, SWA_FAMILY_PATTERN.get(h.architecture, 0))


def _recurrent_flags(h: GgufHeader, n_layer: int, n_head_kv: list[int]) -> tuple[bool, ...]:
    arch = h.architecture
    if arch in RECURRENT_ARCHS:
        return (True,) * n_layer
    listed = h.arch_key("attention.recurrent_layers")
    if isinstance(listed, list):
        return tuple(bool(v) for v in listed[:n_layer])
    interval = h.arch_key("full_attention_interval")
    if isinstance(interval, int) and interval > 0:
        return tuple((il + 1) % interval != 0 for il in range(n_layer))
    if h.arch_key("ssm.state_size") and any(n == 0 for n in n_head_kv):
        return tuple(n == 0 for n in n_head_kv)
    return (False,) * n_layer


def _recurrent_dims(h: GgufHeader, n_embd: int) -> Recurrent | None:
    if h.architecture.startswith("rwkv") or h.architecture == "arwkv7":
        shift = int(h.arch_key("token_shift_count", 2))
        head = int(h.arch_key("wkv.head_size", 64))
        return Recurrent(shift * n_embd, n_embd * head)
    d_conv = h.arch_key("ssm.conv_kernel")
    d_state = h.arch_key("ssm.state_size")
    d_inner = h.arch_key("ssm.inner_size")
    if not (d_conv and d_state and d_inner):
        return None
    n_group = int(h.arch_key("ssm.group_count", 0) or 0)
    if n_group:
        return Recurrent((d_conv - 1) * (d_inner + 2 * n_group * d_state), d_state * d_inner)
    return Recurrent((d_conv - 1) * d_inner, d_state * d_inner)


def _kv_from_start(h: GgufHeader, n_layer: int) -> int:
    if h.architecture == "gemma3n":
        return 20
    shared = h.arch_key("attention.shared_kv_layers")
    if isinstance(shared, int) and shared > 0:
        return n_layer - shared
    return n_layer


def _cuda_extra(tensor_shape: tuple[int, ...], ggml_type: GGMLQuantizationType, n_bytes: int, row: int) -> int:
    """ggml-cuda get_alloc_size: quantized rows padded to 512 elements, plus 128-byte alignment."""
    pad = row if ggml_type not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16) else 0
    aligned = -(-(n_bytes + pad) // CUDA_ALIGNMENT) * CUDA_ALIGNMENT
    return aligned - n_bytes


def _weights(h: GgufHeader, n_layer: int, decoder: bool) -> WeightsSpec:
    layer_bytes = [0] * n_layer
    input_bytes = output_bytes = cuda_pad = 0
    token_embd_bytes = 0
    names = {t.name for t in h.tensors}
    for t in h.tensors:
        n = t.n_bytes
        ne0 = t.shape[0] if t.shape else 0
        pad_row = t.row_bytes(QUANTIZED_ROW_PADDING - ne0 % QUANTIZED_ROW_PADDING) if ne0 % QUANTIZED_ROW_PADDING else 0
        m = _BLK.match(t.name)
        if t.name in INPUT_TENSORS:
            input_bytes += n
            if t.name == "token_embd.weight":
                token_embd_bytes = n
            continue
        cuda_pad += _cuda_extra(t.shape, t.ggml_type, n, pad_row)
        if m and int(m.group(1)) < n_layer:
            layer_bytes[int(m.group(1))] += n
        else:
            output_bytes += n
    tied = decoder and "output.weight" not in names and token_embd_bytes > 0
    return WeightsSpec(
        tuple(layer_bytes), input_bytes, output_bytes, tied_output_bytes=token_embd_bytes if tied else 0,
        cuda_pad_bytes=cuda_pad,
    )


def arch_from_header(h: GgufHeader, source: str) -> ModelArch:
    arch = h.architecture
    n_layer = int(h.arch_key("block_count", 0))
    if not arch or n_layer <= 0:
        raise ValueError(f"{source}: GGUF has no general.architecture / {arch}.block_count")
    n_embd = int(h.arch_key("embedding_length"))
    n_head_list = _per_layer(h.arch_key("attention.head_count"), n_layer, 0)
    n_head = max(n_head_list) if n_head_list else 0
    n_head_kv = _per_layer(h.arch_key("attention.head_count_kv"), n_layer, n_head)
    head_dim = n_embd // n_head if n_head else 0
    k_len = int(h.arch_key("attention.key_length", head_dim))
    v_len = int(h.arch_key("attention.value_length", head_dim))
    k_len_swa = int(h.arch_key("attention.key_length_swa", k_len))
    v_len_swa = int(h.arch_key("attention.value_length_swa", v_len))
    mla = bool(h.arch_key("attention.kv_lora_rank")) and bool(h.arch_key("attention.key_length_mla"))
    n_swa = int(h.arch_key("attention.sliding_window", SWA_FAMILY_DEFAULT_WINDOW.get(arch, 0)) or 0)
    swa = _swa_flags(h, n_layer, n_swa)
    recurrent = _recurrent_flags(h, n_layer, n_head_kv)
    kv_from_start = _kv_from_start(h, n_layer)
    causal = arch not in NO_KV_ARCHS and bool(h.arch_key("attention.causal", True))
    layers = tuple(
        LayerSpec(
            n_head_kv=n_head_kv[il],
            k_dim=k_len_swa if swa[il] else k_len,
            v_dim=0 if mla else (v_len_swa if swa[il] else v_len),
            swa=swa[il],
            recurrent=recurrent[il],
            has_kv=causal and not recurrent[il] and il < kv_from_start and n_head_kv[il] > 0,
        )
        for il in range(n_layer)
    )
    n_ff = max(_per_layer(h.arch_key("feed_forward_length"), n_layer, 0) or [0])
    tokens = h.metadata.get("tokenizer.ggml.tokens")
    n_vocab = int(h.arch_key("vocab_size", len(tokens) if isinstance(tokens, list) else 0))
    return ModelArch(
        architecture=arch,
        n_embd=n_embd,
        n_head=n_head,
        n_ff=n_ff,
        n_vocab=n_vocab,
        n_ctx_train=int(h.arch_key("context_length", 0)),
        layers=layers,
        weights=_weights(h, n_layer, decoder=causal),
        source=source,
        causal=causal,
        n_swa=n_swa if any(swa) else 0,
        mla=mla,
        recurrent=_recurrent_dims(h, n_embd) if any(recurrent) else None,
        n_expert=int(h.arch_key("expert_count", 0) or 0),
        n_expert_used=int(h.arch_key("expert_used_count", 0) or 0),
        n_ff_exp=int(h.arch_key("expert_feed_forward_length", 0) or 0),
    )
