"""LiteLLM proxy `config.yaml` rendered from the stack config.

Pitfalls this file is shaped around (../shared/reference/litellm-and-llama-server.md §1, §8):
every local deployment carries an explicit `api_key` (else LiteLLM sends `OPENAI_API_KEY` to llama-swap);
local timeouts outlast a model swap (else LiteLLM falls back to the paid cloud model while a model loads);
the master key sits under `general_settings`; secrets appear only as `os.environ/NAME` references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.config import CloudFallback, StackConfig
from stack.render.llama_swap import LLAMA_SWAP_API_KEY_ENV
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.render.yaml_text import GENERATED_HEADER, dump_yaml

LITELLM_MASTER_KEY_ENV = "LITELLM_MASTER_KEY"
NO_KEY = "no-key-required"
"""Sent to llama-swap when it has no `apiKeys`: the OpenAI client refuses to run without some key."""

SWAP_MARGIN_S = 60
"""Time for the first token after llama-swap's health check passes, on top of `healthCheckTimeout`."""



def litellm_args(paths: RenderPaths) -> list[str]:
    """Arguments to the image's `litellm` entrypoint (or to the `litellm` CLI when run locally)."""
    return ["--config", paths.litellm_config, "--host", paths.litellm_host, "--port", str(paths.litellm_port)]


def env_ref(name: str) -> str:
    return f"os.environ/{name}"


def cloud_key_env(secret_name: str) -> str:
    """The environment variable a cloud key secret is exposed as, e.g. `openai_api_key` → `OPENAI_API_KEY`."""
    return secret_name.upper()


def local_timeout_s(cfg: StackConfig) -> int:
    """Never shorter than a worst-case model swap, whatever `litellm.timeout_s` says."""
    return max(cfg.litellm.timeout_s, cfg.llama_swap.health_check_timeout + SWAP_MARGIN_S)


def local_stream_timeout_s(cfg: StackConfig) -> int:
    return max(cfg.litellm.stream_timeout_s, cfg.llama_swap.health_check_timeout + SWAP_MARGIN_S)


def llama_swap_names(cfg: StackConfig) -> dict[str, str]:
    """Every public name LiteLLM serves from llama-swap (model ids and aliases) → llama-swap model id."""
    names: dict[str, str] = {}
    for mid, model in cfg.models.items():
        names[mid] = mid
        for alias in model.aliases:
            names[alias] = mid
    return dict(sorted(names.items()))


def embedding_names(cfg: StackConfig) -> list[str]:
    emb = cfg.embedding
    return sorted([emb.name, *emb.aliases]) if emb is not None else []


def _local(name: str, upstream: str, api_base: str, api_key: str, mode: str, cfg: StackConfig) -> dict[str, Any]:
    return {
        "model_name": name,
        "litellm_params": {
            "model": f"openai/{upstream}",
            "api_base": f"{api_base}/v1",
            "api_key": api_key,
            "timeout": local_timeout_s(cfg),
            "stream_timeout": local_stream_timeout_s(cfg),
            "max_retries": 0,
        },
        "model_info": {"mode": mode, "disable_background_health_check": True},
    }


def _cloud(fb: CloudFallback, cfg: StackConfig) -> dict[str, Any]:
    params: dict[str, Any] = {"model": fb.model, "api_key": env_ref(cloud_key_env(fb.api_key_secret))}
    if fb.api_base is not None:
        params["api_base"] = fb.api_base
    params |= {"timeout": cfg.litellm.timeout_s, "stream_timeout": cfg.litellm.stream_timeout_s, "max_retries": 0}
    embed = set(embedding_names(cfg))
    mode = "embedding" if fb.fallback_for and all(t in embed for t in fb.fallback_for) else "chat"
    return {"model_name": fb.name, "litellm_params": params, "model_info": {"mode": mode}}


def _fallbacks(cfg: StackConfig) -> list[dict[str, list[str]]]:
    """Each public name of a local model → its cloud fallbacks, in the order they are configured."""
    emb = cfg.embedding
    public: dict[str, list[str]] = {mid: [mid, *m.aliases] for mid, m in cfg.models.items()}
    if emb is not None:
        public[emb.name] = [emb.name, *emb.aliases]
    targets: dict[str, list[str]] = {}
    for fb in cfg.litellm.fallbacks:
        for local in fb.fallback_for:
            for name in public[local]:
                targets.setdefault(name, []).append(fb.name)
    return [{name: targets[name]} for name in sorted(targets)]


def render_litellm_config(
    cfg: StackConfig, paths: RenderPaths = CONTAINER_PATHS, *, api_key_enabled: bool,
    llama_swap_urls: Mapping[str, str] | None = None,
) -> str:
    """The whole file; `api_key_enabled` says whether llama-swap and the embedding server require `api_key`.
    `llama_swap_urls`: model id -> the llama-swap that serves it, where there are several (one per kubernetes
    pool); otherwise every model is at `paths.llama_swap_url`."""
    local_key = env_ref(LLAMA_SWAP_API_KEY_ENV) if api_key_enabled else NO_KEY
    urls = llama_swap_urls or {}
    model_list = [
        _local(name, mid, urls.get(mid, paths.llama_swap_url), local_key, "chat", cfg)
        for name, mid in llama_swap_names(cfg).items()
    ]
    if cfg.embedding is not None:
        model_list += [
            _local(name, cfg.embedding.name, paths.embedding_url, local_key, "embedding", cfg)
            for name in embedding_names(cfg)
        ]
    model_list += [_cloud(fb, cfg) for fb in cfg.litellm.fallbacks]
    router: dict[str, Any] = {
        "routing_strategy": "simple-shuffle",
        "num_retries": cfg.litellm.num_retries,
        "timeout": local_timeout_s(cfg),
        "stream_timeout": local_stream_timeout_s(cfg),
    }
    fallbacks = _fallbacks(cfg)
    if fallbacks:
        router["fallbacks"] = fallbacks
    doc: dict[str, Any] = {
        "model_list": model_list,
        "router_settings": router,
        "litellm_settings": {"drop_params": True},
        "general_settings": {
            "master_key": env_ref(LITELLM_MASTER_KEY_ENV),
            "background_health_checks": False,
        },
    }
    return dump_yaml(doc, GENERATED_HEADER)
