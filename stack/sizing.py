"""Memory of one llama-server process: weights + KV cache + recurrent state + compute + overhead.

The master formula of ../shared/reference/llama-cpp-memory.md §1, one term per module:
weights placement (`stack.arch.WeightsSpec`), KV and recurrent state (`stack.kv_cache`),
compute buffer (`stack.compute_buffer`), per-process overhead (`models.gpu_profiles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from models.config import DraftConfig, GpuConfig, ServerSettings
from stack.arch import MIB, ModelArch
from stack.compute_buffer import Calibration, ComputeSize, compute_buffer_size
from stack.kv_cache import (
    ContextShape,
    KvSize,
    context_shape,
    effective_ubatch,
    kv_cache_size,
    recurrent_state_bytes,
    swa_cells,
)

CUDA_BUFFER_ALIGNMENT = 128


@dataclass(frozen=True)
class Extras:
    """Parts loaded into the same process: a draft model and a multimodal projector."""

    draft: DraftConfig | None = None
    draft_arch: ModelArch | None = None
    mmproj_weights_bytes: int = 0
    mmproj_offload: bool = True


class SizingBug(RuntimeError):
    """A figure the gate would add is negative or not finite. Inputs are range-checked before sizing (the config
    schema, `stack.arch_gguf`), so this is a bug in the sizing, reported as an internal error, never as a fit."""


def _sound(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


@dataclass(frozen=True)
class ProcessSize:
    """One process's footprint on the device it runs on (VRAM, or RAM for the cpu profile).

    Every figure is checked on construction: a negative one would lower a co-resident set's total and could make
    an over-budget set "fit".
    """

    id: str
    key: str
    role: str
    arch: ModelArch
    shape: ContextShape
    kv: KvSize
    compute: ComputeSize
    weights_bytes: int
    recurrent_bytes: int
    overhead_bytes: int
    host_weights_bytes: int
    draft_bytes: int = 0
    """The draft model's weights, KV cache and compute buffer (same process, no second overhead)."""
    mmproj_bytes: int = 0
    """The multimodal projector's weights plus an estimated image-encoder compute buffer."""
    extras: Extras = Extras()

    def __post_init__(self) -> None:
        figures = {f.name: getattr(self, f.name) for f in fields(self) if f.name.endswith("_bytes")}
        figures.update(kv_bytes=self.kv.bytes, compute_bytes=self.compute.bytes)
        for name, value in figures.items():
            if not _sound(value):
                raise SizingBug(f"{self.key}: {name} = {value!r} is negative or not a finite number")

    @property
    def kv_bytes(self) -> int:
        return self.kv.bytes

    @property
    def compute_bytes(self) -> int:
        return self.compute.bytes

    @property
    def total_bytes(self) -> int:
        return (
            self.weights_bytes + self.kv_bytes + self.recurrent_bytes + self.compute_bytes + self.overhead_bytes
            + self.draft_bytes + self.mmproj_bytes
        )

    @property
    def total_mib(self) -> float:
        return self.total_bytes / MIB

    def to_json(self) -> dict[str, Any]:
        def mib(b: int) -> float:
            return round(b / MIB, 2)

        return {
            "role": self.role,
            "key": self.key,
            "weights_mib": mib(self.weights_bytes),
            "kv_mib": mib(self.kv_bytes),
            "recurrent_mib": mib(self.recurrent_bytes),
            "compute_mib": mib(self.compute_bytes),
            "overhead_mib": mib(self.overhead_bytes),
            "draft_mib": mib(self.draft_bytes),
            "mmproj_mib": mib(self.mmproj_bytes),
            "total_mib": mib(self.total_bytes),
            "host_weights_mib": mib(self.host_weights_bytes),
            "source": self.arch.source,
            "architecture": self.arch.architecture,
            "n_ctx": self.shape.n_ctx,
            "n_ctx_seq": self.shape.n_ctx_seq,
            "n_seq_max": self.shape.n_seq_max,
            "kv_cells": self.kv.cells,
            "swa_cells": self.kv.swa_cells,
        }


MMPROJ_COMPUTE_FACTOR = 0.5
"""Image-encoder compute beside projector weights: runtime is 1.3-1.5x the file (llama-cpp-memory.md §4)."""


def _draft_bytes(
    extras: Extras, settings: ServerSettings, gpu: GpuConfig, calibration: Calibration, swa_full: bool
) -> int:
    draft, arch = extras.draft, extras.draft_arch
    if draft is None or arch is None or gpu.cpu_only:
        return 0
    as_server = settings.model_copy(update={
        "n_gpu_layers": draft.n_gpu_layers, "cache_type_k": draft.cache_type_k, "cache_type_v": draft.cache_type_v,
    })
    part = _size_parts(as_server, arch, gpu, calibration, embedding=False, swa_full=swa_full, n_draft=draft.n_max)
    return part[0] + part[1].bytes + part[2].bytes + part[3]


def _size_parts(
    settings: ServerSettings,
    arch: ModelArch,
    gpu: GpuConfig,
    calibration: Calibration,
    *,
    embedding: bool,
    swa_full: bool,
    n_draft: int = 0,
) -> tuple[int, KvSize, ComputeSize, int, ContextShape]:
    """(weights on device, KV, compute, recurrent state, context shape) of one model in a process."""
    cuda = not gpu.cpu_only
    ngl = settings.n_gpu_layers if cuda else 0
    shape = context_shape(settings.ctx_size, settings.parallel, settings.kv_unified)
    flash = settings.flash_attn == "on"
    ubatch = effective_ubatch(settings.ctx_size, settings.ubatch, settings.batch, arch.causal)
    # KV and recurrent state live beside their layer: on the GPU only for offloaded layers
    first = min(max(arch.n_layer + 1 - ngl, 0), arch.n_layer) if cuda else 0
    alignment = CUDA_BUFFER_ALIGNMENT if cuda else 1
    kv = kv_cache_size(
        arch,
        shape,
        cache_type_k=settings.cache_type_k,
        cache_type_v=settings.cache_type_v,
        flash_attn=flash,
        ubatch=ubatch,
        kv_unified=settings.kv_unified,
        swa_full=swa_full,
        alignment=alignment,
        first_layer=first,
    )
    n_swa_cells = swa_cells(arch, shape, ubatch, swa_full, settings.kv_unified) if arch.has_swa else 0
    compute = compute_buffer_size(
        arch,
        shape,
        ubatch=settings.ubatch,
        batch=settings.batch,
        flash_attn=flash,
        cache_type_k=settings.cache_type_k,
        cache_type_v=settings.cache_type_v,
        swa_cells=n_swa_cells,
        embedding=embedding,
        cuda=cuda,
        calibration=calibration,
        n_draft=n_draft,
    )
    weights = arch.weights.gpu_bytes(ngl) if cuda else arch.weights.total_bytes
    rs = recurrent_state_bytes(arch, shape.n_seq_max, alignment=alignment, first_layer=first)
    return weights, kv, compute, rs, shape


def size_process(
    model_id: str,
    key: str,
    settings: ServerSettings,
    arch: ModelArch,
    gpu: GpuConfig,
    calibration: Calibration,
    *,
    embedding: bool = False,
    swa_full: bool = False,
    extras: Extras = Extras(),
) -> ProcessSize:
    n_draft = extras.draft.n_max if extras.draft is not None else 0
    weights, kv, compute, recurrent, shape = _size_parts(
        settings, arch, gpu, calibration, embedding=embedding, swa_full=swa_full, n_draft=n_draft
    )
    cuda = not gpu.cpu_only
    ngl = settings.n_gpu_layers if cuda else 0
    mmproj = 0
    if extras.mmproj_weights_bytes and ((extras.mmproj_offload and cuda) or not cuda):
        mmproj = int(extras.mmproj_weights_bytes * (1 + MMPROJ_COMPUTE_FACTOR))
    return ProcessSize(
        id=model_id,
        key=key,
        role="embedding" if embedding else "model",
        arch=arch,
        shape=shape,
        kv=kv,
        compute=compute,
        weights_bytes=weights,
        recurrent_bytes=recurrent,
        overhead_bytes=gpu.resolved_overhead_mib * MIB if cuda else 0,
        host_weights_bytes=arch.weights.host_bytes(ngl) if cuda else 0,
        draft_bytes=_draft_bytes(extras, settings, gpu, calibration, swa_full),
        mmproj_bytes=mmproj,
        extras=extras,
    )
