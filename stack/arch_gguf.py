"""Turn GGUF metadata and tensor infos into a `ModelArch`, following llama.cpp's hparams rules.

Rules and source paths: ../shared/reference/llama-cpp-memory.md §2.3-2.9 and §4. Paths below are
to the llama.cpp tree of the pinned build (b11434): `src/llama-model.cpp` (`load_hparams`,
`create_memory`), `src/llama-hparams.cpp` (`n_embd_r`, `n_embd_s`, `has_kv`), `src/models/<arch>.cpp`
(per-architecture `load_arch_hparams`: sliding-window and recurrent layer maps).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gguf import GGMLQuantizationType

from stack.arch import LayerSpec, ModelArch, Recurrent, WeightsSpec, swa_layers
from stack.gguf_header import GgufHeader

# llama-model.cpp create_memory: these architectures get no memory module at all (encoders, diffusion).
NO_KV_ARCHS = frozenset(
    {
        "bert", "jina-bert-v2", "jina-bert-v3", "nomic-bert", "nomic-bert-moe", "neo-bert", "eurobert",
        "wavtokenizer-dec", "modern-bert", "gemma-embedding", "dream", "llada", "llada-moe", "rnd1", "clef",
    }
)

# llama-arch.cpp: tensors of LLM_TENSOR_LAYER_INPUT, which llama.cpp never offloads.
INPUT_TENSORS = frozenset(
    {
        "token_embd.weight", "position_embd.weight", "token_types.weight", "per_layer_token_embd.weight",
        "masked_embd_centroids", "masked_embd_ordering",
    }
)


@dataclass(frozen=True)
class SwaRule:
    """How one architecture's `load_arch_hparams` sets up sliding-window layers.

    `pattern` is `load_swa_pattern`'s default (a GGUF `sliding_window_pattern` int or bool array
    overrides it); `requires_window` means SWA is on only when the GGUF has `sliding_window > 0`;
    `default_window` applies when the key is absent; `forced_window` ignores the key.
    """

    pattern: int
    dense_first: bool = False
    requires_window: bool = False
    default_window: int = 0
    forced_window: int = 0


SWA_RULES: dict[str, SwaRule] = {
    "gemma2": SwaRule(2, default_window=4096),
    "gemma3": SwaRule(6, requires_window=True),
    "gemma3n": SwaRule(5),
    "gemma-embedding": SwaRule(6),
    "cohere2": SwaRule(4),
    "cohere2moe": SwaRule(4, dense_first=True),
    "gpt-oss": SwaRule(2),
    "llama4": SwaRule(4, forced_window=8192),
    "exaone-moe": SwaRule(4, default_window=128),
    "olmo2": SwaRule(4, requires_window=True),
    "smallthinker": SwaRule(4, dense_first=True, requires_window=True, forced_window=4096),
    "mellum": SwaRule(4, requires_window=True),
    "plamo3": SwaRule(8, requires_window=True),
    "afmoe": SwaRule(4, requires_window=True),
    "laguna": SwaRule(4, dense_first=True, requires_window=True),
    "muse-glimmer": SwaRule(4),
}
# These read a bool `sliding_window_pattern` array (required) and `sliding_window`.
SWA_ARRAY_ARCHS = frozenset({"gemma4", "mimo2", "step35", "granite_swa", "maple", "spark2_5"})

RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
# Hybrids whose recurrent layers are the ones with head_count_kv == 0 (src/models/<arch>.cpp).
HYBRID_BY_ZERO_KV = frozenset(
    {"jamba", "granitehybrid", "lfm2", "lfm2moe", "plamo2", "kimi-linear", "kimi-k3", "glm5-next", "bailingmoe3"}
)
# Hybrids with `attention.recurrent_layers` or `full_attention_interval`.
HYBRID_BY_INTERVAL = frozenset({"qwen3next", "qwen35", "qwen35moe", "qwen4exp", "minimax-01"})

QUANTIZED_ROW_PADDING = 512
CUDA_ALIGNMENT = 128

_BLK = re.compile(r"^blk\.(\d+)\.")


def _per_layer(value: Any, n_layer: int, default: list[int]) -> list[int]:
    """llama-model-loader get_key_or_arr: a scalar fills every layer, an array gives one per layer."""
    if value is None:
        return list(default)
    if isinstance(value, list):
        values = [int(v) for v in value[:n_layer]]
        return values + list(default[len(values):])
    return [int(value)] * n_layer


def _pattern_flags(n_layer: int, n_pattern: int, dense_first: bool) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern, where a pattern of 0 makes every layer SWA."""
    if n_pattern == 0:
        return (True,) * n_layer
    return swa_layers(n_layer, n_pattern, dense_first)


def _swa(h: GgufHeader, n_layer: int, recurrent: tuple[bool, ...]) -> tuple[int, tuple[bool, ...]]:
    """(window, per-layer SWA flags) as the architecture's load_arch_hparams sets them."""
    arch = h.architecture
    window_key = h.arch_key("attention.sliding_window")
    window = int(window_key or 0)
    pattern = h.arch_key("attention.sliding_window_pattern")
    none = (False,) * n_layer
    if arch in ("lfm2", "lfm2moe"):
        # lfm2.cpp: with a window, every attention layer is SWA
        return (window, tuple(not r for r in recurrent)) if window > 0 else (0, none)
    if arch in SWA_ARRAY_ARCHS:
        if not isinstance(pattern, list) or window <= 0:
            return 0, none
        return window, tuple(bool(v) for v in pattern[:n_layer]) + (False,) * max(0, n_layer - len(pattern))
    rule = SWA_RULES.get(arch)
    if rule is None:
        return 0, none
    if arch == "llama4" and window_key is not None and window == 0:
        return 0, none
    if rule.requires_window and window <= 0:
        return 0, none
    if rule.forced_window:
        window = rule.forced_window
    elif window_key is None:
        window = rule.default_window
    if isinstance(pattern, list):
        flags = tuple(bool(v) for v in pattern[:n_layer]) + (False,) * max(0, n_layer - len(pattern))
    else:
        n_pattern = int(pattern) if isinstance(pattern, int) else rule.pattern
        flags = _pattern_flags(n_layer, n_pattern, rule.dense_first)
    return (window, flags) if window > 0 and any(flags) else (0, none)


def _exaone4_swa(h: GgufHeader, n_layer: int) -> tuple[int, tuple[bool, ...]]:
    """exaone4.cpp: only the 64-layer (32B) model has SWA (pattern 4, window 4096 unless the GGUF says)."""
    if n_layer != 64:
        return 0, (False,) * n_layer
    pattern = h.arch_key("attention.sliding_window_pattern")
    window = int(h.arch_key("attention.sliding_window", 4096) or 0)
    if isinstance(pattern, list):
        flags = tuple(bool(v) for v in pattern[:n_layer]) + (False,) * max(0, n_layer - len(pattern))
    else:
        flags = _pattern_flags(n_layer, int(pattern) if isinstance(pattern, int) else 4, False)
    return (window, flags) if window > 0 else (0, (False,) * n_layer)


def _recurrent(
    h: GgufHeader, n_layer: int, n_trunk: int, n_head_kv: list[int], n_ff: list[int]
) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(recurrent-state layers, attention-KV layers) among the trunk layers (create_memory filters)."""
    arch = h.architecture
    trunk = tuple(il < n_trunk for il in range(n_layer))
    if arch in RECURRENT_ARCHS:
        return trunk, (False,) * n_layer
    if arch == "falcon-h1":
        # every layer has both a Mamba-2 mixer and attention (filter_attn and filter_recr are always true)
        return trunk, trunk
    if arch in ("nemotron_h", "nemotron_h_moe"):
        recr = tuple(trunk[il] and n_head_kv[il] == 0 and n_ff[il] == 0 for il in range(n_layer))
        attn = tuple(trunk[il] and n_head_kv[il] > 0 and n_ff[il] == 0 for il in range(n_layer))
        return recr, attn
    if arch in HYBRID_BY_ZERO_KV:
        recr = tuple(trunk[il] and n_head_kv[il] == 0 for il in range(n_layer))
        return recr, tuple(trunk[il] and not recr[il] for il in range(n_layer))
    if arch in HYBRID_BY_INTERVAL:
        listed = h.arch_key("attention.recurrent_layers")
        if isinstance(listed, list):
            recr = tuple(trunk[il] and il < len(listed) and bool(listed[il]) for il in range(n_layer))
        else:
            default_interval = 8 if arch == "minimax-01" else 4
            interval = int(h.arch_key("full_attention_interval", default_interval) or 0)
            recr = tuple(trunk[il] and interval > 0 and (il + 1) % interval != 0 for il in range(n_layer))
        return recr, tuple(trunk[il] and not recr[il] for il in range(n_layer))
    return (False,) * n_layer, trunk


def _recurrent_dims(h: GgufHeader, n_embd: int, n_head: int, head_k: int) -> Recurrent:
    """llama-hparams.cpp n_embd_r() / n_embd_s(), in the order llama.cpp tests the cases, and the
    activation width of one recurrent layer in the compute graph (stack.compute_buffer)."""
    wkv = int(h.arch_key("wkv.head_size", 0) or 0)
    shortconv = int(h.arch_key("shortconv.l_cache", 0) or 0)
    kda = int(h.arch_key("kda.head_dim", 0) or 0)
    la = head_k if h.architecture == "minimax-01" else 0
    d_conv = int(h.arch_key("ssm.conv_kernel", 0) or 0)
    d_inner = int(h.arch_key("ssm.inner_size", 0) or 0)
    d_state = int(h.arch_key("ssm.state_size", 0) or 0)
    n_group = int(h.arch_key("ssm.group_count", 0) or 0)
    if wkv:
        r = int(h.arch_key("token_shift_count", 2) or 2) * n_embd
    elif shortconv:
        r = n_embd * (shortconv - 1)
    elif kda:
        r = 3 * (d_conv - 1 if d_conv > 0 else 3) * n_head * kda
    else:
        r = (d_conv - 1 if d_conv > 0 else 0) * (d_inner + 2 * n_group * d_state)
    if wkv:
        s = n_embd * wkv
    elif kda:
        s = kda * kda * n_head
    elif la:
        s = la * la * n_head
    else:
        s = d_state * d_inner
    conv_dim = d_inner + 2 * n_group * d_state
    if shortconv:
        # lfm2.cpp: in_proj (3 n_embd), gated input, conv window, conv output, output gate, out_proj
        act = 11 * n_embd
    elif d_inner:
        # mamba-base.cpp: zxBCdt (2 d_inner + 2 n_group d_state + n_head), conv input/output/silu
        # (3 conv_dim), scan output and gated/normed y (2 d_inner)
        n_ssm_head = int(h.arch_key("ssm.time_step_rank", 0) or 0)
        act = (2 * d_inner + 2 * n_group * d_state + n_ssm_head) + 3 * conv_dim + 2 * d_inner
    else:
        act = 8 * n_embd
    return Recurrent(r, s, act)


def _kv_from_start(h: GgufHeader, n_layer: int) -> int:
    """llama_hparams::n_layer_kv_from_start: later layers reuse an earlier layer's KV (gemma3n/gemma4)."""
    if h.architecture == "gemma3n":
        return 20
    if h.architecture == "gemma4":
        return n_layer - int(h.arch_key("attention.shared_kv_layers", 0) or 0)
    return n_layer


# src/llama-hparams.h: gemma3n's AltUp streams and per-layer embedding width are fixed, not GGUF keys.
GEMMA3N_ALTUP = 4
GEMMA3N_EMBD_ALTUP = 256


def _ple_width(h: GgufHeader, n_trunk: int) -> int:
    """Values per token of the per-layer embeddings ([n_embd_per_layer, n_layer] per token)."""
    if h.architecture == "gemma3n":
        return GEMMA3N_EMBD_ALTUP * n_trunk
    return int(h.arch_key("embedding_length_per_layer_input", 0) or 0) * n_trunk


def _cuda_extra(ggml_type: GGMLQuantizationType, n_bytes: int, row: int) -> int:
    """ggml-cuda get_alloc_size: quantized rows padded to 512 elements, plus 128-byte alignment."""
    pad = row if ggml_type not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16) else 0
    aligned = -(-(n_bytes + pad) // CUDA_ALIGNMENT) * CUDA_ALIGNMENT
    return aligned - n_bytes


def _weights(h: GgufHeader, n_layer: int, n_trunk: int, decoder: bool) -> WeightsSpec:
    """Tensor bytes per placement group. MTP/NextN layers (il >= n_trunk) are skipped by the loader
    (TENSOR_SKIP unless `--spec-type draft-mtp`), so they count nowhere."""
    layer_bytes = [0] * n_layer
    input_bytes = output_bytes = cuda_pad = 0
    token_embd_bytes = 0
    names = {t.name for t in h.tensors}
    for t in h.tensors:
        n = t.n_bytes
        m = _BLK.match(t.name)
        if m and n_trunk <= int(m.group(1)) < n_layer:
            continue
        ne0 = t.shape[0] if t.shape else 0
        pad_row = t.row_bytes(QUANTIZED_ROW_PADDING - ne0 % QUANTIZED_ROW_PADDING) if ne0 % QUANTIZED_ROW_PADDING else 0
        if t.name in INPUT_TENSORS:
            input_bytes += n
            if t.name == "token_embd.weight":
                token_embd_bytes = n
            continue
        cuda_pad += _cuda_extra(t.ggml_type, n, pad_row)
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
    n_trunk = n_layer - int(h.arch_key("nextn_predict_layers", 0) or 0)
    n_embd = int(h.arch_key("embedding_length"))
    zeros = [0] * n_layer
    n_head = _per_layer(h.arch_key("attention.head_count"), n_layer, zeros)
    # llama-model.cpp load_hparams: head_count_kv defaults to head_count, layer by layer
    n_head_kv = _per_layer(h.arch_key("attention.head_count_kv"), n_layer, n_head)
    n_ff = _per_layer(h.arch_key("feed_forward_length"), n_layer, zeros)
    # head sizes default to n_embd / n_head of layer 0 (hparams.n_head()); always read the keys
    head_default = n_embd // n_head[0] if n_head[0] else 0
    k_len = int(h.arch_key("attention.key_length", head_default))
    v_len = int(h.arch_key("attention.value_length", head_default))
    k_len_swa = int(h.arch_key("attention.key_length_swa", k_len))
    v_len_swa = int(h.arch_key("attention.value_length_swa", v_len))
    # llama_hparams::is_mla(): both MLA head sizes present -> the cache holds K only (K = latent + rope)
    mla = bool(h.arch_key("attention.key_length_mla")) and bool(h.arch_key("attention.value_length_mla"))
    decoder = arch not in NO_KV_ARCHS
    recurrent, attention = _recurrent(h, n_layer, n_trunk, n_head_kv, n_ff)
    n_swa, swa = _exaone4_swa(h, n_layer) if arch == "exaone4" else _swa(h, n_layer, recurrent)
    kv_from_start = _kv_from_start(h, n_layer)
    layers = tuple(
        LayerSpec(
            n_head_kv=n_head_kv[il],
            k_dim=k_len_swa if swa[il] else k_len,
            v_dim=0 if mla else (v_len_swa if swa[il] else v_len),
            swa=swa[il],
            recurrent=decoder and recurrent[il],
            has_kv=decoder and attention[il] and il < kv_from_start and n_head_kv[il] > 0,
        )
        for il in range(n_layer)
    )
    tokens = h.metadata.get("tokenizer.ggml.tokens")
    n_vocab = int(h.arch_key("vocab_size", len(tokens) if isinstance(tokens, list) else 0))
    ff_exp = _per_layer(h.arch_key("expert_feed_forward_length"), n_layer, zeros)
    gated = any(t.name.startswith("blk.") and (".ffn_gate." in t.name or ".ffn_gate_exps." in t.name
                                                or ".ffn_gate_up_exps." in t.name) for t in h.tensors)
    return ModelArch(
        architecture=arch,
        n_embd=n_embd,
        n_head=max(n_head, default=0),
        n_ff=max(n_ff, default=0),
        n_vocab=n_vocab,
        n_ctx_train=int(h.arch_key("context_length", 0)),
        layers=layers,
        weights=_weights(h, n_layer, n_trunk, decoder=decoder),
        source=source,
        causal=decoder,
        n_swa=n_swa if any(swa) else 0,
        mla=mla,
        recurrent=_recurrent_dims(h, n_embd, n_head[0], k_len) if any(layer.recurrent for layer in layers) else None,
        n_expert=int(h.arch_key("expert_count", 0) or 0),
        n_expert_used=max(_per_layer(h.arch_key("expert_used_count"), n_layer, zeros), default=0),
        n_ff_exp=max(ff_exp, default=0),
        ffn_gated=gated or not any(".ffn_up" in t.name for t in h.tensors),
        v_head_dim=v_len,
        shared_kv=kv_from_start < n_layer,
        ple_width=_ple_width(h, n_trunk),
        n_altup=GEMMA3N_ALTUP if arch == "gemma3n" else 0,
    )
