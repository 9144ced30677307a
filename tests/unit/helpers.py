"""Small builders shared by the unit tests: stack configs, stack files, synthetic GGUF headers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models import StackConfig, parse_stack_config
from models.config import CacheType
from stack.arch.gguf_rules import arch_from_header
from stack.arch.model import ModelArch
from stack.gguf.header import GgufHeader, TensorInfo
from stack.sizing.kv_cache import KvSize, context_shape, kv_cache_size

REPO = Path(__file__).resolve().parents[2]


NOMIC_EMBED = {"name": "embed", "file": "nomic-embed-text-v1.5.Q8_0.gguf"}
"""The `embeddings` block of a stack: the catalog's nomic-embed-text-v1.5."""


def qwen14b(ctx: int, cache: str = "q8_0", parallel: int = 1) -> dict[str, Any]:
    """A `models` entry for the catalog's Qwen2.5-14B: the model that pushes a 16 GB card to its limit."""
    return {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": ctx, "parallel": parallel,
            "cache_type_k": cache, "cache_type_v": cache}


def stack(**overrides: Any) -> StackConfig:
    """A valid one-model stack, with top-level keys replaced by `overrides`."""
    raw: dict[str, Any] = {
        "models_dir": "/srv/models",
        "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 8192}},
    }
    raw.update(overrides)
    return parse_stack_config(raw)


def synthetic_header(arch: str, tensors: tuple[TensorInfo, ...] = (), **keys: Any) -> GgufHeader:
    """A GGUF header with no file behind it; `keys` are `{arch}.`-relative (dots spelt as `__`):
    `attention__head_count=8`."""
    meta: dict[str, Any] = {"general.architecture": arch}
    meta.update({f"{arch}.{k.replace('__', '.')}": v for k, v in keys.items()})
    meta.setdefault(f"{arch}.embedding_length", 256)
    meta.setdefault(f"{arch}.context_length", 8192)
    meta.setdefault(f"{arch}.vocab_size", 1000)
    return GgufHeader(3, meta, tensors, 0)


def arch_of(arch: str, **keys: Any) -> ModelArch:
    return arch_from_header(synthetic_header(arch, **keys), "test")


def f16_kv(a: ModelArch, ctx: int = 8192, np: int = 1, unified: bool = False, ub: int = 512, fa: bool = True) -> KvSize:
    """The f16 KV cache of `a` under llama-server's -c, -np, -kvu, -ub and -fa."""
    return kv_cache_size(a, context_shape(ctx, np, unified), cache_type_k=CacheType.f16, cache_type_v=CacheType.f16,
                         flash_attn=fa, ubatch=ub, kv_unified=unified)
