"""Turn GGUF metadata and tensor infos into a `ModelArch`, following llama.cpp's hparams rules.

Rules and source paths: ../shared/reference/llama-cpp-memory.md §2.3-2.9 and §4. Paths below are
to the llama.cpp tree of the pinned build (b11434): `src/llama-model.cpp` (`load_hparams`,
`create_memory`), `src/llama-hparams.cpp` (`n_embd_r`, `n_embd_s`, `has_kv`), `src/models/<arch>.cpp`
(per-architecture `load_arch_hparams`: sliding-window and recurrent layer maps).

Every value read from the header is type- and range-checked (`_Keys`) before it is used: a header is
untrusted input, and one negative or absurd figure would otherwise size as negative or astronomical MiB
(and so make an over-budget set "fit"), or loop over millions of layers. A refusal is a `GgufError`
naming the GGUF key, its value and the rule.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gguf import GGMLQuantizationType, GGUFValueType

from stack.arch.model import LayerSpec, ModelArch, Recurrent, WeightsSpec, swa_layers
from stack.gguf.header import KEPT_ARRAY_ITEMS, MAX_ARRAY_ITEMS, ArrayInfo, GgufError, GgufHeader

# llama-arch.cpp: tensors of LLM_TENSOR_LAYER_INPUT, which llama.cpp never offloads.
INPUT_TENSORS = frozenset(
    {
        "token_embd.weight", "position_embd.weight", "token_types.weight", "per_layer_token_embd.weight",
        "masked_embd_centroids", "masked_embd_ordering",
    }
)


# src/llama-hparams.h: gemma3n's AltUp streams and per-layer embedding width are fixed, not GGUF keys.
GEMMA3N_ALTUP = 4
GEMMA3N_EMBD_ALTUP = 256


@dataclass(frozen=True)
class SwaRule:
    """How one architecture's `load_arch_hparams` sets up sliding-window layers.

    `pattern` is `load_swa_pattern`'s default (a GGUF `sliding_window_pattern` int or bool array
    overrides it); `requires_window` means SWA is on only when the GGUF has `sliding_window > 0`;
    `default_window` applies when the key is absent; `forced_window` ignores the key, unless
    `zero_key_disables` and the key says 0; `only_n_layer` turns SWA on for that depth only.
    """

    pattern: int
    dense_first: bool = False
    requires_window: bool = False
    default_window: int = 0
    forced_window: int = 0
    zero_key_disables: bool = False
    only_n_layer: int = 0


SwaKind = Literal["none", "pattern", "flag_array", "every_attention_layer"]
"""`pattern`: a `SwaRule`; `flag_array`: a required bool `sliding_window_pattern` array and `sliding_window`;
`every_attention_layer`: with a window, every attention layer is SWA (lfm2.cpp)."""

LayerKind = Literal["attention", "recurrent", "both", "zero_kv", "zero_kv_and_ff", "interval"]
"""Which trunk layers hold recurrent state and which hold KV (create_memory's filters): `recurrent` all state;
`both` every layer has both (falcon-h1); `zero_kv` state where head_count_kv == 0; `zero_kv_and_ff` state where
head_count_kv and feed_forward_length are 0, KV where only feed_forward_length is (nemotron_h); `interval`
`attention.recurrent_layers` or every `full_attention_interval`-th layer is attention."""


@dataclass(frozen=True)
class Family:
    """One architecture family's rules, as data: read by `family_of` and nowhere else."""

    memory: bool = True
    """False: no memory module at all (encoders, diffusion): no KV cache, no causal mask."""
    layers: LayerKind = "attention"
    full_attention_interval: int = 4
    swa: SwaKind = "none"
    swa_rule: SwaRule | None = None
    altup: int = 0
    """gemma3n's AltUp width (its per-layer activations are that many times wider)."""
    kv_layers_fixed: int = 0
    """n_layer_kv_from_start when fixed (gemma3n: 20); later layers reuse an earlier layer's KV."""
    kv_layers_shared_key: bool = False
    """n_layer_kv_from_start = block_count - `attention.shared_kv_layers` (gemma4)."""
    ple_width_fixed: int = 0
    """Per-layer embedding width when fixed (gemma3n); else `embedding_length_per_layer_input`."""
    lightning_state: bool = False
    """Recurrent state of lightning attention, one key head wide (minimax-01)."""


def _table(names: str, family: Family) -> dict[str, Family]:
    return dict.fromkeys(names.split(), family)


# Sources (src/llama-model.cpp, src/models/<arch>.cpp of the pinned build) are named per group.
FAMILIES: dict[str, Family] = {
    # create_memory: no memory module
    **_table("bert jina-bert-v2 jina-bert-v3 nomic-bert nomic-bert-moe neo-bert eurobert wavtokenizer-dec "
             "modern-bert dream llada llada-moe rnd1 clef", Family(memory=False)),
    "gemma-embedding": Family(memory=False, swa="pattern", swa_rule=SwaRule(6)),
    # load_arch_hparams' sliding-window setups
    "gemma2": Family(swa="pattern", swa_rule=SwaRule(2, default_window=4096)),
    "gemma3": Family(swa="pattern", swa_rule=SwaRule(6, requires_window=True)),
    "gemma3n": Family(swa="pattern", swa_rule=SwaRule(5), altup=GEMMA3N_ALTUP, kv_layers_fixed=20,
                      ple_width_fixed=GEMMA3N_EMBD_ALTUP),
    "cohere2": Family(swa="pattern", swa_rule=SwaRule(4)),
    "cohere2moe": Family(swa="pattern", swa_rule=SwaRule(4, dense_first=True)),
    "gpt-oss": Family(swa="pattern", swa_rule=SwaRule(2)),
    "llama4": Family(swa="pattern", swa_rule=SwaRule(4, forced_window=8192, zero_key_disables=True)),
    "exaone-moe": Family(swa="pattern", swa_rule=SwaRule(4, default_window=128)),
    "exaone4": Family(swa="pattern", swa_rule=SwaRule(4, default_window=4096, only_n_layer=64)),
    "olmo2": Family(swa="pattern", swa_rule=SwaRule(4, requires_window=True)),
    "smallthinker": Family(swa="pattern",
                           swa_rule=SwaRule(4, dense_first=True, requires_window=True, forced_window=4096)),
    "mellum": Family(swa="pattern", swa_rule=SwaRule(4, requires_window=True)),
    "plamo3": Family(swa="pattern", swa_rule=SwaRule(8, requires_window=True)),
    "afmoe": Family(swa="pattern", swa_rule=SwaRule(4, requires_window=True)),
    "laguna": Family(swa="pattern", swa_rule=SwaRule(4, dense_first=True, requires_window=True)),
    "muse-glimmer": Family(swa="pattern", swa_rule=SwaRule(4)),
    "gemma4": Family(swa="flag_array", kv_layers_shared_key=True),
    **_table("mimo2 step35 granite_swa maple spark2_5", Family(swa="flag_array")),
    # recurrent and hybrid models
    **_table("mamba mamba2 rwkv6 rwkv6qwen2 rwkv7 arwkv7", Family(layers="recurrent")),
    "falcon-h1": Family(layers="both"),
    **_table("nemotron_h nemotron_h_moe", Family(layers="zero_kv_and_ff")),
    **_table("jamba granitehybrid plamo2 kimi-linear kimi-k3 glm5-next bailingmoe3", Family(layers="zero_kv")),
    **_table("lfm2 lfm2moe", Family(layers="zero_kv", swa="every_attention_layer")),
    **_table("qwen3next qwen35 qwen35moe qwen4exp", Family(layers="interval")),
    "minimax-01": Family(layers="interval", full_attention_interval=8, lightning_state=True),
}
DEFAULT_FAMILY = Family()


def family_of(arch: str) -> Family:
    """The rules of `general.architecture`; an architecture without special rules is plain attention."""
    return FAMILIES.get(arch, DEFAULT_FAMILY)


QUANTIZED_ROW_PADDING = 512
CUDA_ALIGNMENT = 128

_BLK = re.compile(r"^blk\.(\d+)\.")

# Plausible maxima of header values. The first two are llama.cpp's own (src/llama-hparams.h: it asserts
# block_count <= LLAMA_MAX_LAYERS and expert_count <= LLAMA_MAX_EXPERTS); the others are several times the
# largest released model's (Llama 3.1 405B: n_embd 16384, 128 heads; Llama 4 Scout: 10M context; vocabularies
# up to 262,144 tokens), so that only a corrupt or crafted file meets them.
MAX_LAYERS = 512
MAX_EXPERTS = 1024
MAX_EMBD = 1 << 17
MAX_FF = 1 << 20
MAX_HEADS = 1 << 12
MAX_HEAD_DIM = 1 << 14
MAX_VOCAB = MAX_ARRAY_ITEMS
MAX_CONTEXT = 1 << 26
MAX_TOKEN_SHIFT = 16


def _show(value: Any) -> str:
    if isinstance(value, ArrayInfo):
        return f"<array of {value.length:,} {value.item_type.name}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | ArrayInfo):
        return "an array"
    return type(value).__name__


class _Keys:
    """Typed, range-checked reads of the `{arch}.` hyperparameters (llama-model-loader get_key/get_key_or_arr)."""

    def __init__(self, h: GgufHeader) -> None:
        self.h = h

    def name(self, suffix: str) -> str:
        return f"{self.h.architecture}.{suffix}"

    def refuse(self, suffix: str, value: Any, rule: str) -> GgufError:
        return GgufError(f"{self.name(suffix)} = {_show(value)}: {rule}")

    def _check(self, suffix: str, value: Any, lo: int, hi: int, what: str = "") -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.refuse(suffix, value, f"{what}must be an integer, not {_kind(value)}")
        if not lo <= value <= hi:
            raise self.refuse(suffix, value, f"{what}must be between {lo:,} and {hi:,}")
        return value

    def scalar(self, suffix: str, default: int, hi: int, lo: int = 0) -> int:
        """An optional scalar; absent means `default` (which the caller keeps in range)."""
        value = self.h.arch_key(suffix)
        return default if value is None else self._check(suffix, value, lo, hi)

    def required(self, suffix: str, hi: int, lo: int = 1) -> int:
        value = self.h.arch_key(suffix)
        if value is None:
            raise GgufError(f"{self.name(suffix)} is missing (llama.cpp requires it)")
        return self._check(suffix, value, lo, hi)

    def layers(self, suffix: str, n_layer: int, default: Sequence[int], hi: int) -> list[int]:
        """A scalar fills every layer; an array must hold exactly one value per layer."""
        value = self.h.arch_key(suffix)
        if value is None:
            return list(default)
        if isinstance(value, list | ArrayInfo):
            if len(value) != n_layer:
                raise self.refuse(suffix, value, f"a per-layer array must hold block_count ({n_layer}) values, "
                                                 f"not {len(value):,}")
            assert isinstance(value, list)
            return [self._check(suffix, v, 0, hi, f"layer {il}: ") for il, v in enumerate(value)]
        return [self._check(suffix, value, 0, hi)] * n_layer

    def flags(self, suffix: str, n_layer: int) -> list[bool] | None:
        """A per-layer bool/int array (sliding-window or recurrent maps), at most llama.cpp's 512 layers."""
        value = self.h.arch_key(suffix)
        if not isinstance(value, list | ArrayInfo):
            return None
        if len(value) > KEPT_ARRAY_ITEMS:
            raise self.refuse(suffix, value, f"a per-layer array holds at most {KEPT_ARRAY_ITEMS} values")
        assert isinstance(value, list)
        for il, v in enumerate(value):
            if not isinstance(v, int):
                raise self.refuse(suffix, value, f"layer {il}: must be a bool or an integer, not {_kind(v)}")
        return [bool(v) for v in value]


def _check_floats(h: GgufHeader) -> None:
    """A NaN or infinite hyperparameter (rope base, norm epsilon) is a corrupt file: llama.cpp would run it
    and produce NaN logits."""
    prefix = f"{h.architecture}."
    for key, value in h.metadata.items():
        if not key.startswith(prefix):
            continue
        items = value if isinstance(value, list) else [value]
        for v in items:
            if isinstance(v, float) and not math.isfinite(v):
                raise GgufError(f"{key} = {_show(value)}: must be a finite number")


def _vocab_size(h: GgufHeader, keys: _Keys) -> int:
    tokens = h.metadata.get("tokenizer.ggml.tokens")
    n_tokens = 0
    if tokens is not None:
        is_strings = (
            tokens.item_type == GGUFValueType.STRING if isinstance(tokens, ArrayInfo)
            else isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
        )
        if not is_strings:
            raise GgufError(f"tokenizer.ggml.tokens = {_show(tokens)}: must be an array of strings")
        n_tokens = len(tokens)
    return keys.scalar("vocab_size", n_tokens, MAX_VOCAB)


def _pattern_flags(n_layer: int, n_pattern: int, dense_first: bool) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern, where a pattern of 0 makes every layer SWA."""
    if n_pattern == 0:
        return (True,) * n_layer
    return swa_layers(n_layer, n_pattern, dense_first)


def _swa_pattern(keys: _Keys, n_layer: int) -> list[bool] | int | None:
    """`sliding_window_pattern`: a per-layer flag array, or the period of full-attention layers."""
    flags = keys.flags("attention.sliding_window_pattern", n_layer)
    if flags is not None:
        return flags
    value = keys.h.arch_key("attention.sliding_window_pattern")
    return None if value is None else keys.scalar("attention.sliding_window_pattern", 0, MAX_LAYERS)


def _swa(h: GgufHeader, keys: _Keys, n_layer: int, recurrent: tuple[bool, ...]) -> tuple[int, tuple[bool, ...]]:
    """(window, per-layer SWA flags) as the architecture's load_arch_hparams sets them."""
    family = family_of(h.architecture)
    window_key = h.arch_key("attention.sliding_window")
    window = keys.scalar("attention.sliding_window", 0, MAX_CONTEXT)
    pattern = _swa_pattern(keys, n_layer)
    none = (False,) * n_layer
    if family.swa == "every_attention_layer":
        return (window, tuple(not r for r in recurrent)) if window > 0 else (0, none)
    if family.swa == "flag_array":
        if not isinstance(pattern, list) or window <= 0:
            return 0, none
        return window, tuple(bool(v) for v in pattern[:n_layer]) + (False,) * max(0, n_layer - len(pattern))
    rule = family.swa_rule
    if family.swa != "pattern" or rule is None:
        return 0, none
    if rule.only_n_layer and n_layer != rule.only_n_layer:
        return 0, none
    if rule.zero_key_disables and window_key is not None and window == 0:
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


def _recurrent(
    h: GgufHeader, keys: _Keys, n_layer: int, n_trunk: int, n_head_kv: list[int], n_ff: list[int]
) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """(recurrent-state layers, attention-KV layers) among the trunk layers (create_memory filters)."""
    family = family_of(h.architecture)
    trunk = tuple(il < n_trunk for il in range(n_layer))
    if family.layers == "recurrent":
        return trunk, (False,) * n_layer
    if family.layers == "both":
        return trunk, trunk
    if family.layers == "zero_kv_and_ff":
        recr = tuple(trunk[il] and n_head_kv[il] == 0 and n_ff[il] == 0 for il in range(n_layer))
        attn = tuple(trunk[il] and n_head_kv[il] > 0 and n_ff[il] == 0 for il in range(n_layer))
        return recr, attn
    if family.layers == "zero_kv":
        recr = tuple(trunk[il] and n_head_kv[il] == 0 for il in range(n_layer))
        return recr, tuple(trunk[il] and not recr[il] for il in range(n_layer))
    if family.layers == "interval":
        listed = keys.flags("attention.recurrent_layers", n_layer)
        if listed is not None:
            # get_key_or_arr: one flag per layer
            if len(listed) != n_layer:
                raise keys.refuse("attention.recurrent_layers", h.arch_key("attention.recurrent_layers"),
                                  f"a per-layer array must hold block_count ({n_layer}) values, not {len(listed)}")
            recr = tuple(trunk[il] and listed[il] for il in range(n_layer))
        else:
            interval = keys.scalar("full_attention_interval", family.full_attention_interval, MAX_LAYERS)
            recr = tuple(trunk[il] and interval > 0 and (il + 1) % interval != 0 for il in range(n_layer))
        return recr, tuple(trunk[il] and not recr[il] for il in range(n_layer))
    return (False,) * n_layer, trunk


def _recurrent_dims(h: GgufHeader, keys: _Keys, n_embd: int, n_head: int, head_k: int) -> Recurrent:
    """llama-hparams.cpp n_embd_r() / n_embd_s(), in the order llama.cpp tests the cases, and the
    activation width of one recurrent layer in the compute graph (stack.sizing.compute_buffer)."""
    wkv = keys.scalar("wkv.head_size", 0, MAX_HEAD_DIM)
    shortconv = keys.scalar("shortconv.l_cache", 0, MAX_HEAD_DIM)
    kda = keys.scalar("kda.head_dim", 0, MAX_HEAD_DIM)
    la = head_k if family_of(h.architecture).lightning_state else 0
    d_conv = keys.scalar("ssm.conv_kernel", 0, MAX_HEAD_DIM)
    d_inner = keys.scalar("ssm.inner_size", 0, MAX_FF)
    d_state = keys.scalar("ssm.state_size", 0, MAX_HEAD_DIM)
    n_group = keys.scalar("ssm.group_count", 0, MAX_HEADS)
    if wkv:
        r = (keys.scalar("token_shift_count", 2, MAX_TOKEN_SHIFT) or 2) * n_embd
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
        n_ssm_head = keys.scalar("ssm.time_step_rank", 0, MAX_EMBD)
        act = (2 * d_inner + 2 * n_group * d_state + n_ssm_head) + 3 * conv_dim + 2 * d_inner
    else:
        act = 8 * n_embd
    return Recurrent(r, s, act)


def _kv_from_start(keys: _Keys, n_layer: int) -> int:
    """llama_hparams::n_layer_kv_from_start: later layers reuse an earlier layer's KV (gemma3n/gemma4)."""
    family = family_of(keys.h.architecture)
    if family.kv_layers_fixed:
        return family.kv_layers_fixed
    if family.kv_layers_shared_key:
        return n_layer - keys.scalar("attention.shared_kv_layers", 0, n_layer)
    return n_layer


def _ple_width(keys: _Keys, n_trunk: int) -> int:
    """Values per token of the per-layer embeddings ([n_embd_per_layer, n_layer] per token)."""
    fixed = family_of(keys.h.architecture).ple_width_fixed
    if fixed:
        return fixed * n_trunk
    return keys.scalar("embedding_length_per_layer_input", 0, MAX_EMBD) * n_trunk


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


def _architecture(h: GgufHeader) -> str:
    value = h.metadata.get("general.architecture")
    if value is None:
        raise GgufError("general.architecture is missing")
    if not isinstance(value, str) or not value:
        raise GgufError(f"general.architecture = {_show(value)}: must name the architecture (a non-empty string)")
    return value


def arch_from_header(h: GgufHeader, source: str) -> ModelArch:
    """Raises GgufError naming the key when a value is missing, mistyped or out of range."""
    arch = _architecture(h)
    _check_floats(h)
    keys = _Keys(h)
    n_layer = keys.required("block_count", MAX_LAYERS)
    n_trunk = n_layer - keys.scalar("nextn_predict_layers", 0, n_layer)
    n_embd = keys.required("embedding_length", MAX_EMBD)
    n_ctx_train = keys.required("context_length", MAX_CONTEXT)
    zeros = [0] * n_layer
    n_head = keys.layers("attention.head_count", n_layer, zeros, MAX_HEADS)
    # llama-model.cpp load_hparams: head_count_kv defaults to head_count, layer by layer
    n_head_kv = keys.layers("attention.head_count_kv", n_layer, n_head, MAX_HEADS)
    for il in range(n_layer):
        if n_head_kv[il] > n_head[il]:
            raise keys.refuse("attention.head_count_kv", h.arch_key("attention.head_count_kv"),
                              f"layer {il} has {n_head_kv[il]} KV heads but {keys.name('attention.head_count')} "
                              f"gives it {n_head[il]}; KV heads cannot outnumber attention heads")
    n_ff = keys.layers("feed_forward_length", n_layer, zeros, MAX_FF)
    # head sizes default to n_embd / n_head of layer 0 (hparams.n_head()); always read the keys
    head_default = min(n_embd // n_head[0] if n_head[0] else 0, MAX_HEAD_DIM)
    k_len = keys.scalar("attention.key_length", head_default, MAX_HEAD_DIM)
    v_len = keys.scalar("attention.value_length", head_default, MAX_HEAD_DIM)
    k_len_swa = keys.scalar("attention.key_length_swa", k_len, MAX_HEAD_DIM)
    v_len_swa = keys.scalar("attention.value_length_swa", v_len, MAX_HEAD_DIM)
    # llama_hparams::is_mla(): both MLA head sizes present -> the cache holds K only (K = latent + rope)
    mla = bool(keys.scalar("attention.key_length_mla", 0, MAX_HEAD_DIM)) and bool(
        keys.scalar("attention.value_length_mla", 0, MAX_HEAD_DIM))
    family = family_of(arch)
    decoder = family.memory
    recurrent, attention = _recurrent(h, keys, n_layer, n_trunk, n_head_kv, n_ff)
    n_swa, swa = _swa(h, keys, n_layer, recurrent)
    kv_from_start = _kv_from_start(keys, n_layer)
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
    n_vocab = _vocab_size(h, keys)
    ff_exp = keys.layers("expert_feed_forward_length", n_layer, zeros, MAX_FF)
    n_expert = keys.scalar("expert_count", 0, MAX_EXPERTS)
    expert_used = keys.layers("expert_used_count", n_layer, zeros, n_expert)
    gated = any(t.name.startswith("blk.") and (".ffn_gate." in t.name or ".ffn_gate_exps." in t.name
                                                or ".ffn_gate_up_exps." in t.name) for t in h.tensors)
    return ModelArch(
        architecture=arch,
        n_embd=n_embd,
        n_head=max(n_head, default=0),
        n_ff=max(n_ff, default=0),
        n_vocab=n_vocab,
        n_ctx_train=n_ctx_train,
        layers=layers,
        weights=_weights(h, n_layer, n_trunk, decoder=decoder),
        source=source,
        causal=decoder,
        n_swa=n_swa if any(swa) else 0,
        mla=mla,
        recurrent=(_recurrent_dims(h, keys, n_embd, n_head[0], k_len)
                   if any(layer.recurrent for layer in layers) else None),
        n_expert=n_expert,
        n_expert_used=max(expert_used, default=0),
        n_ff_exp=max(ff_exp, default=0),
        ffn_gated=gated or not any(".ffn_up" in t.name for t in h.tensors),
        v_head_dim=v_len,
        shared_kv=kv_from_start < n_layer,
        ple_width=_ple_width(keys, n_trunk),
        n_altup=family.altup,
    )
