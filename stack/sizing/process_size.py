"""Memory of one llama-server process: weights + KV cache + recurrent state + compute + overhead.

The master formula of ../shared/reference/llama-cpp-memory.md §1, one term per module:
weights placement (`stack.arch.model.WeightsSpec`), KV and recurrent state (`stack.sizing.kv_cache`),
compute buffer (`stack.sizing.compute_buffer`), per-process overhead (`models.gpu_profiles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from models.config import GpuConfig, ServerSettings
from stack.arch.model import ModelArch
from stack.sizing.compute_buffer import Calibration, ComputeSize, compute_buffer_size
from stack.sizing.kv_cache import ContextShape, KvSize, kv_cache_size, recurrent_state_bytes
from stack.sizing.process import Role, ServerProcess, resolve_process
from stack.units import MIB

CUDA_BUFFER_ALIGNMENT = 128


@dataclass(frozen=True)
class Extras:
    """What the files of a draft model and a projector tell (their settings are in the `ServerProcess`)."""

    draft_arch: ModelArch | None = None
    mmproj_weights_bytes: int = 0


class SizingBug(RuntimeError):
    """A figure the gate would add is negative or not finite. Inputs are range-checked before sizing (the config
    schema, `stack.arch.gguf_rules`), so this is a bug in the sizing, reported as an internal error, never as a fit."""


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
    process: ServerProcess
    """What it was sized from: the same value the argv is rendered from."""
    arch: ModelArch
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
    def role(self) -> str:
        return self.process.role.value

    @property
    def shape(self) -> ContextShape:
        return self.process.shape

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


@dataclass(frozen=True)
class ModelParts:
    """One model's share of a process (the main model, or its draft) in the sized memory."""

    weights_bytes: int
    host_weights_bytes: int
    """Weights left in host memory beside a GPU (0 on the cpu profile, where `weights_bytes` is host memory)."""
    kv: KvSize
    compute: ComputeSize
    recurrent_bytes: int

    @property
    def bytes(self) -> int:
        return self.weights_bytes + self.kv.bytes + self.compute.bytes + self.recurrent_bytes


def size_model(p: ServerProcess, arch: ModelArch, calibration: Calibration) -> ModelParts:
    """Weights, KV, compute and recurrent state of one model as `p` runs it; KV and state live beside their
    layer, so on a GPU only the offloaded layers' count."""
    first = p.first_sized_layer(arch.n_layer)
    alignment = CUDA_BUFFER_ALIGNMENT if p.on_gpu else 1
    shape = p.shape
    kv = kv_cache_size(
        arch,
        shape,
        cache_type_k=p.cache_type_k,
        cache_type_v=p.cache_type_v,
        flash_attn=p.flash_attn,
        ubatch=p.n_ubatch(arch.causal),
        kv_unified=p.kv_unified,
        swa_full=p.swa_full,
        alignment=alignment,
        first_layer=first,
    )
    compute = compute_buffer_size(
        arch,
        shape,
        n_ubatch=p.n_ubatch(arch.causal),
        n_batch=p.n_batch(arch.causal),
        flash_attn=p.flash_attn,
        cache_type_k=p.cache_type_k,
        cache_type_v=p.cache_type_v,
        swa_cells=kv.swa_cells,
        embedding=p.role is Role.EMBEDDING,
        cuda=p.on_gpu,
        calibration=calibration,
        n_draft=p.n_draft,
    )
    if p.on_gpu:
        weights, host = arch.weights.gpu_bytes(p.n_gpu_layers), arch.weights.host_bytes(p.n_gpu_layers)
    else:
        weights, host = arch.weights.total_bytes, 0
    recurrent = recurrent_state_bytes(arch, shape.n_seq_max, alignment=alignment, first_layer=first)
    return ModelParts(weights, host, kv, compute, recurrent)


def size_resolved(
    model_id: str, key: str, p: ServerProcess, arch: ModelArch, gpu: GpuConfig, calibration: Calibration,
    extras: Extras = Extras(),
) -> ProcessSize:
    """The footprint of a resolved process; a draft is sized like its main model, on the same memory."""
    main = size_model(p, arch, calibration)
    draft = 0
    if p.draft is not None:
        if extras.draft_arch is None:
            raise SizingBug(f"{key}.draft: no architecture to size the draft model from")
        draft = size_model(p.draft, extras.draft_arch, calibration).bytes
    mmproj = 0
    # the projector counts where it lives: VRAM when offloaded, host memory on the cpu profile
    if p.projector is not None and (p.projector.offload or not p.on_gpu):
        mmproj = int(extras.mmproj_weights_bytes * (1 + MMPROJ_COMPUTE_FACTOR))
    return ProcessSize(
        id=model_id,
        key=key,
        process=p,
        arch=arch,
        kv=main.kv,
        compute=main.compute,
        weights_bytes=main.weights_bytes,
        recurrent_bytes=main.recurrent_bytes,
        overhead_bytes=gpu.resolved_overhead_mib * MIB if p.on_gpu else 0,
        host_weights_bytes=main.host_weights_bytes,
        draft_bytes=draft,
        mmproj_bytes=mmproj,
        extras=extras,
    )


def size_process(
    model_id: str,
    key: str,
    settings: ServerSettings,
    arch: ModelArch,
    gpu: GpuConfig,
    calibration: Calibration,
    *,
    extras: Extras = Extras(),
) -> ProcessSize:
    """The footprint of the process `settings` start on `gpu` (role and draft come from the settings' type)."""
    return size_resolved(
        model_id, key, resolve_process(settings, cpu_only=gpu.cpu_only), arch, gpu, calibration, extras
    )
