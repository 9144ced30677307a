"""What one llama-server process runs with: the typed settings after every rule that changes them, resolved once.

`stack.render.server_args` renders the argv from a `ServerProcess` and `stack.sizing.process_size` sizes the same value,
so the command line and the memory the gate proved cannot drift apart. The rules live here and nowhere else:

* cpu profile: nothing is offloaded (`-ngl 0`, `--spec-draft-ngl 0`, no projector offload);
* batch sizes: llama-context.cpp caps a causal model's batch by the context before padding it (`n_ubatch`);
* offload: `-ngl n` puts layers `first_offloaded_layer(n_layer, n)..` on the GPU (`stack.arch.model`);
* draft: a draft model is resolved by the same function, with the main model's context, slots and batches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from models.config import CacheType, DraftConfig, EmbeddingConfig, ModelConfig, ServerSettings
from stack.arch.model import first_offloaded_layer
from stack.sizing.kv_cache import ContextShape, context_shape


class Role(StrEnum):
    MODEL = "model"
    """A llama-swap model, started on demand."""
    EMBEDDING = "embedding"
    """The always-on embedding server (`--embeddings`)."""
    DRAFT = "draft"
    """A draft model inside a model's process (`--spec-draft-model`): its own weights, KV and compute buffer."""


def effective_ubatch(ctx_size: int, ubatch: int, batch: int, causal: bool = True) -> int:
    """llama-context.cpp: n_batch = min(n_ctx, -b) for causal models (n_ctx before its 256 padding), then
    n_ubatch = min(n_batch, -ub)."""
    return min(effective_batch(ctx_size, batch, causal), ubatch)


def effective_batch(ctx_size: int, batch: int, causal: bool = True) -> int:
    return min(ctx_size, batch) if causal else batch


@dataclass(frozen=True)
class Projector:
    file: str
    offload: bool
    """On the GPU: asked for, and not on the cpu profile."""


@dataclass(frozen=True)
class ServerProcess:
    """Every value one llama-server model runs with, as its argv passes it and its sizing reads it."""

    role: Role
    file: str
    on_gpu: bool
    """False on the cpu profile: nothing is offloaded and the process is sized in host memory instead of VRAM."""
    n_gpu_layers: int
    """`-ngl` (a draft's `--spec-draft-ngl`)."""
    ctx_size: int
    parallel: int
    kv_unified: bool
    ubatch: int
    """`-ub` as passed; `n_ubatch` is what llama.cpp makes of it."""
    batch: int
    flash_attn: bool
    cache_type_k: CacheType
    cache_type_v: CacheType
    swa_full: bool
    n_draft: int
    """Tokens drafted per step (`--spec-draft-n-max`): each slot reserves 1 + n_draft outputs; 0 without a draft."""
    draft: ServerProcess | None = None
    projector: Projector | None = None
    jinja: bool = False
    pooling: str | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def shape(self) -> ContextShape:
        return context_shape(self.ctx_size, self.parallel, self.kv_unified)

    def n_batch(self, causal: bool) -> int:
        return effective_batch(self.ctx_size, self.batch, causal)

    def n_ubatch(self, causal: bool) -> int:
        return effective_ubatch(self.ctx_size, self.ubatch, self.batch, causal)

    def first_sized_layer(self, n_layer: int) -> int:
        """The first layer whose weights, KV and state count against the sized memory: the offloaded ones on a
        GPU; on the cpu profile every layer, since the sized memory is then host memory."""
        return first_offloaded_layer(n_layer, self.n_gpu_layers) if self.on_gpu else 0


def _draft(draft: DraftConfig, main: ServerProcess) -> ServerProcess:
    """The draft shares the main model's context, slots and batches; b11434 has no draft -c/-np/-ub."""
    return ServerProcess(
        role=Role.DRAFT,
        file=draft.file,
        on_gpu=main.on_gpu,
        n_gpu_layers=draft.n_gpu_layers if main.on_gpu else 0,
        ctx_size=main.ctx_size,
        parallel=main.parallel,
        kv_unified=main.kv_unified,
        ubatch=main.ubatch,
        batch=main.batch,
        flash_attn=main.flash_attn,
        cache_type_k=draft.cache_type_k,
        cache_type_v=draft.cache_type_v,
        swa_full=main.swa_full,
        n_draft=main.n_draft,
    )


def resolve_process(settings: ServerSettings, *, cpu_only: bool) -> ServerProcess:
    """The process a model's (or the embedding server's) settings start on a GPU, or on the cpu profile."""
    model = settings if isinstance(settings, ModelConfig) else None
    draft = model.draft if model is not None else None
    mmproj = model.mmproj if model is not None else None
    main = ServerProcess(
        role=Role.EMBEDDING if isinstance(settings, EmbeddingConfig) else Role.MODEL,
        file=settings.file,
        on_gpu=not cpu_only,
        n_gpu_layers=0 if cpu_only else settings.n_gpu_layers,
        ctx_size=settings.ctx_size,
        parallel=settings.parallel,
        kv_unified=settings.kv_unified,
        ubatch=settings.ubatch,
        batch=settings.batch,
        flash_attn=settings.flash_attn == "on",
        cache_type_k=settings.cache_type_k,
        cache_type_v=settings.cache_type_v,
        swa_full=model.swa_full if model is not None else False,
        n_draft=draft.n_max if draft is not None else 0,
        projector=Projector(mmproj.file, mmproj.offload and not cpu_only) if mmproj is not None else None,
        jinja=model.jinja if model is not None else False,
        pooling=settings.pooling if isinstance(settings, EmbeddingConfig) else None,
        extra_args=tuple(settings.extra_args),
    )
    if draft is None:
        return main
    return replace(main, draft=_draft(draft, main))
