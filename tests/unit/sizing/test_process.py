"""`stack.sizing.process`: the argv a process starts with and the memory the gate sized for it agree, for every
fixture layout; llama-context.cpp's ubatch clamp.

For each small layout of bench/sizing_panel.py, on the cpu and the rtx-5080 profiles, with and without a draft
model and a projector, the rendered argv is parsed back with llama-server's own option table, and the sizing is
redone from the parsed values alone with the low-level terms (`kv_cache_size`, `compute_buffer_size`, ...) and
llama.cpp's rules written out here: llama-context.cpp's n_batch/n_ubatch (from -c before padding) and
llama-model.cpp's first offloaded layer. Every figure must equal what `size_process` reported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import pytest

from bench.sizing_panel import layouts, load_arch
from models.config import CacheType, EmbeddingConfig, GpuConfig, ModelConfig, ServerSettings
from models.server_flags import BY_NAME
from stack.arch.model import ModelArch
from stack.render.paths import CONTAINER_PATHS
from stack.render.server_args import embedding_argv, model_argv
from stack.sizing.compute_buffer import calibration_for, compute_buffer_size
from stack.sizing.kv_cache import context_shape, kv_cache_size, recurrent_state_bytes
from stack.sizing.process import Role, effective_ubatch, resolve_process
from stack.sizing.process_size import CUDA_BUFFER_ALIGNMENT, MMPROJ_COMPUTE_FACTOR, Extras, ProcessSize, size_process
from stack.units import MIB

CALIBRATION = calibration_for(11434)
PROFILES = ("cpu", "rtx-5080")
LAYOUTS = [key for key, layout in layouts().items() if not layout.production]
DRAFT_LAYOUT = "gqa-tied"
MMPROJ_BYTES = 7 * MIB

SETTINGS: dict[str, dict[str, Any]] = {
    "split-fa": {"ctx_size": 4096, "parallel": 2, "flash_attn": "on", "ubatch": 256, "n_gpu_layers": 999},
    # -c below -ub and off the 256 grid, partial offload, quantized K without flash attention
    "short-partial": {"ctx_size": 300, "flash_attn": "off", "ubatch": 512, "batch": 512, "n_gpu_layers": 2,
                      "cache_type_k": "q8_0"},
    "unified-q8": {"ctx_size": 8192, "parallel": 4, "kv_unified": True, "cache_type_k": "q8_0",
                   "cache_type_v": "q8_0", "ubatch": 512, "n_gpu_layers": 3},
}


@functools.cache
def _fixture(key: str) -> tuple[str, ModelArch]:
    try:
        path = layouts()[key].build()
    except RuntimeError as exc:  # llama-quantize or the MiniLM source missing on this machine
        pytest.skip(f"{key} fixture unavailable: {exc}")
    return path.name, load_arch(path)


def _parse(argv: list[str]) -> dict[str, list[str]]:
    """Each option under its first name in llama-server's table (so aliases meet), with its values."""
    out: dict[str, list[str]] = {}
    i = 1
    while i < len(argv):
        opt = BY_NAME[argv[i]]
        name = opt.names[0]
        assert name not in out, f"{argv[i]} given twice in {argv}"
        out[name] = argv[i + 1:i + 1 + opt.nargs]
        i += 1 + opt.nargs
    return out


@dataclass(frozen=True)
class Parsed:
    """The memory-relevant values of one parsed argv."""

    opts: dict[str, list[str]]

    def value(self, *names: str) -> str:
        (name,) = {BY_NAME[n].names[0] for n in names}
        (v,) = self.opts[name]
        return v

    def has(self, flag: str) -> bool:
        return BY_NAME[flag].names[0] in self.opts

    def int(self, flag: str) -> int:
        return int(self.value(flag))


def _expected_model(
    a: Parsed, arch: ModelArch, *, gpu: bool, ngl: int, ctk: str, ctv: str, n_draft: int
) -> tuple[int, int, int, int]:
    """(weights, KV, compute, recurrent) of one model that llama-server started with `a` allocates, derived from
    the argv only; on the cpu profile every layer counts (the sized memory is host memory)."""
    ctx, batch, ubatch = a.int("-c"), a.int("-b"), a.int("-ub")
    n_batch = min(ctx, batch) if arch.causal else batch
    n_ubatch = min(n_batch, ubatch)
    first = min(max(arch.n_layer + 1 - ngl, 0), arch.n_layer) if gpu else 0
    alignment = CUDA_BUFFER_ALIGNMENT if gpu else 1
    unified, flash = a.has("-kvu"), a.value("-fa") == "on"
    shape = context_shape(ctx, a.int("-np"), unified)
    kv = kv_cache_size(arch, shape, cache_type_k=CacheType(ctk), cache_type_v=CacheType(ctv), flash_attn=flash,
                       ubatch=n_ubatch, kv_unified=unified, swa_full=a.has("--swa-full"), alignment=alignment,
                       first_layer=first)
    compute = compute_buffer_size(
        arch, shape, n_ubatch=n_ubatch, n_batch=n_batch, flash_attn=flash, cache_type_k=CacheType(ctk),
        cache_type_v=CacheType(ctv), swa_cells=kv.swa_cells, embedding=a.has("--embeddings"), cuda=gpu,
        calibration=CALIBRATION, n_draft=n_draft,
    )
    weights = arch.weights.gpu_bytes(ngl) if gpu else arch.weights.total_bytes
    rs = recurrent_state_bytes(arch, shape.n_seq_max, alignment=alignment, first_layer=first)
    return weights, kv.bytes, compute.bytes, rs


def _settings(layout: str, setting: str, with_extras: bool) -> ServerSettings:
    file, _ = _fixture(layout)
    raw: dict[str, Any] = {"file": file, **SETTINGS[setting]}
    if layouts()[layout].embedding:
        return EmbeddingConfig.model_validate({**raw, "batch": max(raw.get("batch", 2048), raw["ubatch"])})
    raw["swa_full"] = setting == "unified-q8"
    if with_extras:
        raw["draft"] = {"file": _fixture(DRAFT_LAYOUT)[0], "n_max": 5, "n_gpu_layers": 1, "cache_type_k": "q8_0"}
        raw["mmproj"] = {"file": "mmproj.gguf", "weights_mib": MMPROJ_BYTES / MIB}
    return ModelConfig.model_validate(raw)


def _render_and_size(settings: ServerSettings, arch: ModelArch, gpu: GpuConfig) -> tuple[Parsed, ProcessSize]:
    if isinstance(settings, EmbeddingConfig):
        argv = embedding_argv(settings, CONTAINER_PATHS, cpu_only=gpu.cpu_only)
    else:
        assert isinstance(settings, ModelConfig)
        argv = model_argv("m", settings, CONTAINER_PATHS, cpu_only=gpu.cpu_only)
    has_draft = isinstance(settings, ModelConfig) and settings.draft is not None
    extras = Extras(_fixture(DRAFT_LAYOUT)[1] if has_draft else None, MMPROJ_BYTES)
    return Parsed(_parse(argv)), size_process("m", "models.m", settings, arch, gpu, CALIBRATION, extras=extras)


CASES = [
    pytest.param(layout, setting, profile, extras, id=f"{layout}-{setting}-{profile}{'-draft' if extras else ''}")
    for layout in LAYOUTS
    for setting in SETTINGS
    for profile in PROFILES
    for extras in ((False,) if layouts()[layout].embedding else (False, True))
]


@pytest.mark.parametrize(("layout", "setting", "profile", "with_extras"), CASES)
def test_argv_and_sizing_agree(layout: str, setting: str, profile: str, with_extras: bool) -> None:
    gpu = GpuConfig(profile=profile)
    _, arch = _fixture(layout)
    settings = _settings(layout, setting, with_extras)
    a, size = _render_and_size(settings, arch, gpu)
    on_gpu = not gpu.cpu_only

    # the sizing's own record of what it sized is what the argv says
    p = size.process
    assert a.value("-m") == CONTAINER_PATHS.model_path(p.file)
    assert (a.int("-c"), a.int("-np"), a.has("-kvu")) == (p.ctx_size, p.parallel, p.kv_unified)
    assert (a.int("-ub"), a.int("-b"), a.value("-fa")) == (p.ubatch, p.batch, "on" if p.flash_attn else "off")
    assert (a.value("-ctk"), a.value("-ctv")) == (p.cache_type_k.value, p.cache_type_v.value)
    assert a.int("-ngl") == p.n_gpu_layers == (settings.n_gpu_layers if on_gpu else 0)
    assert a.has("--swa-full") is p.swa_full
    assert a.has("--embeddings") is (p.role is Role.EMBEDDING)
    assert size.shape == context_shape(a.int("-c"), a.int("-np"), a.has("-kvu"))

    n_draft = a.int("--spec-draft-n-max") if a.has("--spec-draft-model") else 0
    weights, kv, compute, rs = _expected_model(
        a, arch, gpu=on_gpu, ngl=a.int("-ngl"), ctk=a.value("-ctk"), ctv=a.value("-ctv"), n_draft=n_draft
    )
    assert (size.weights_bytes, size.kv_bytes, size.compute_bytes, size.recurrent_bytes) == (weights, kv, compute, rs)
    assert size.overhead_bytes == (gpu.resolved_overhead_mib * MIB if on_gpu else 0)

    assert a.has("--spec-draft-model") is with_extras
    if with_extras:
        assert p.draft is not None
        assert a.value("--spec-draft-model") == CONTAINER_PATHS.model_path(p.draft.file)
        assert a.int("-ngld") == p.draft.n_gpu_layers == (1 if on_gpu else 0)
        assert (a.value("-ctkd"), a.value("-ctvd")) == (p.draft.cache_type_k.value, p.draft.cache_type_v.value)
        draft = _expected_model(a, _fixture(DRAFT_LAYOUT)[1], gpu=on_gpu, ngl=a.int("-ngld"), ctk=a.value("-ctkd"),
                                ctv=a.value("-ctvd"), n_draft=n_draft)
        assert size.draft_bytes == sum(draft) > 0
        # the projector counts where it lives: VRAM when offloaded, host memory on the cpu profile
        assert a.has("--no-mmproj-offload") is not on_gpu
        assert size.mmproj_bytes == int(MMPROJ_BYTES * (1 + MMPROJ_COMPUTE_FACTOR))
    else:
        assert size.draft_bytes == 0 and not a.has("--mmproj")


def test_a_draft_on_the_cpu_profile_is_sized_like_its_main_model() -> None:
    """The same file as main model and as draft, same cache types: on the cpu profile (-ngl 0, -ngld 0) both are
    host memory, so the draft adds exactly the main model's weights, KV, compute and state (it added 0 before)."""
    file, arch = _fixture(DRAFT_LAYOUT)
    settings = ModelConfig.model_validate({"file": file, "ctx_size": 4096, "parallel": 2, "n_gpu_layers": 5,
                                           "draft": {"file": file, "n_max": 4, "n_gpu_layers": 5}})
    size = size_process("m", "models.m", settings, arch, GpuConfig(profile="cpu"), CALIBRATION,
                        extras=Extras(draft_arch=arch))
    main = size.weights_bytes + size.kv_bytes + size.compute_bytes + size.recurrent_bytes
    assert size.weights_bytes == arch.weights.total_bytes
    assert size.draft_bytes == main > 0
    assert size.total_bytes == 2 * main


def test_one_resolution_for_argv_and_sizing() -> None:
    """The cpu profile is applied once, to the main model, the draft and the projector alike."""
    file, _ = _fixture(DRAFT_LAYOUT)
    settings = ModelConfig.model_validate({"file": file, "ctx_size": 300, "ubatch": 512, "batch": 512,
                                           "draft": {"file": file}, "mmproj": {"file": "p.gguf", "weights_mib": 1.0}})
    cpu, gpu = resolve_process(settings, cpu_only=True), resolve_process(settings, cpu_only=False)
    assert cpu.draft is not None and gpu.draft is not None
    assert cpu.projector is not None and gpu.projector is not None
    assert (cpu.n_gpu_layers, cpu.draft.n_gpu_layers, cpu.projector.offload) == (0, 0, False)
    assert (gpu.n_gpu_layers, gpu.draft.n_gpu_layers, gpu.projector.offload) == (999, 999, True)
    # llama-context.cpp caps n_batch by -c before padding n_ctx to 512: 300 tokens per ubatch, not 512
    assert cpu.shape.n_ctx == 512 and cpu.n_ubatch(causal=True) == cpu.draft.n_ubatch(causal=True) == 300
    assert cpu.n_ubatch(causal=False) == 512


def test_ubatch_is_clamped_by_ctx_and_batch() -> None:
    assert effective_ubatch(256, 512, 2048) == 256
    assert effective_ubatch(8192, 4096, 2048) == 2048
    assert effective_ubatch(256, 512, 2048, causal=False) == 512
