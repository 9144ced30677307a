"""Known GPUs: total VRAM, what the driver keeps, and llama-server's per-process overhead.

`vram_mib` is the total nvidia-smi reports. `reserve_mib` is what a process can never allocate
(cudaMemGetInfo total is ~0.45 GiB below nvidia-smi on 16 GB Blackwell cards, more with a desktop
session) plus a margin for lazily loaded kernels and pool growth. `overhead_mib` is the per-process
CUDA context, cuBLAS workspace (32 MiB/stream from Hopper on) and pool that llama.cpp does not
report ("unaccounted" in llama_memory_breakdown_print). Figures: ../shared/reference/llama-cpp-memory.md
§1 and §5; each stack can override all three.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GpuProfile:
    name: str
    vram_mib: int
    reserve_mib: int
    overhead_mib: int


GPU_PROFILES: dict[str, GpuProfile] = {
    "rtx-5080": GpuProfile("NVIDIA GeForce RTX 5080 16 GB", 16303, 768, 500),
    "rtx-4090": GpuProfile("NVIDIA GeForce RTX 4090 24 GB", 24564, 768, 450),
    "rtx-3090": GpuProfile("NVIDIA GeForce RTX 3090 24 GB", 24576, 768, 400),
    "rtx-5090": GpuProfile("NVIDIA GeForce RTX 5090 32 GB", 32607, 1024, 500),
    "h100-80gb": GpuProfile("NVIDIA H100 80GB HBM3", 81559, 1024, 600),
    "cpu": GpuProfile("CPU only (no GPU request, -ngl 0)", 0, 0, 0),
}
