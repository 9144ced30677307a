"""Sample stack configs for the rendering, spec and Pulumi tests (sizable from the catalog, no GGUF needed)."""

from __future__ import annotations

import copy
from typing import Any

from models import StackConfig, parse_stack_config
from stack.deployment import Deployment, build_deployment
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.sizing.plan import build_plan

ALL_SECRETS = frozenset({"api_key", "litellm_master_key", "openai_api_key"})

BASE: dict[str, Any] = {
    "models_dir": "/srv/models",
    "models": {
        "small": {
            "file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf",
            "ctx_size": 2048,
            "parallel": 4,
            "ttl": 600,
            "aliases": ["classify", "tiny"],
            "description": "Short prompts",
        },
        "chat": {
            "file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf",
            "ctx_size": 8192,
            "parallel": 2,
            "cache_type_k": "q8_0",
            "cache_type_v": "q8_0",
            "jinja": True,
            "kv_unified": True,
            "ttl": 1800,
            "aliases": ["chatbot"],
            "extra_args": ["--temp", "0.7"],
        },
    },
    "groups": {"main": {"members": ["small", "chat"]}},
    "embeddings": {
        "name": "embed",
        "aliases": ["text-embedding"],
        "file": "nomic-embed-text-v1.5.Q8_0.gguf",
        "pooling": "mean",
    },
    "litellm": {
        "enabled": True,
        "fallbacks": [
            {
                "name": "cloud-chat",
                "model": "openai/gpt-4o-mini",
                "api_key_secret": "openai_api_key",
                "fallback_for": ["chat"],
            }
        ],
    },
}


def raw(**overrides: Any) -> dict[str, Any]:
    """A fresh copy of BASE with top-level keys replaced (None removes the key)."""
    out = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def config(doc: dict[str, Any] | None = None, **overrides: Any) -> StackConfig:
    """Validated like `pulumi up` does, with every secret the document names configured."""
    doc = doc if doc is not None else raw(**overrides)
    cloud = {fb["api_key_secret"] for fb in doc.get("litellm", {}).get("fallbacks", [])}
    return parse_stack_config(doc, ALL_SECRETS | cloud)


def deployment(
    cfg: StackConfig | None = None,
    *,
    secret_keys: frozenset[str] = ALL_SECRETS,
    paths: RenderPaths = CONTAINER_PATHS,
    **overrides: Any,
) -> Deployment:
    """What `pulumi up` would deploy for `cfg` (else `config(**overrides)`), sized from the catalog; without
    `api_key` in `secret_keys` llama-swap and the embedding server take no key."""
    if cfg is None:
        cfg = config(**overrides)
    elif overrides:
        raise TypeError("give either a config or overrides of the sample, not both")
    return build_deployment(build_plan(cfg), secret_keys, paths)
