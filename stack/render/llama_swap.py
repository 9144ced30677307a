"""llama-swap `config.yaml` (v250 schema) rendered from the stack config.

llama-swap ignores unknown keys, so only keys this module knows are emitted, from validated config.
The API key is referenced as `${env.LLAMA_SWAP_API_KEY}`, which llama-swap expands when it loads the file:
the secret reaches the container as an environment variable and never appears in the rendered bytes.
"""

from __future__ import annotations

from typing import Any

from models.config import EmbeddingConfig, MatrixConfig, ModelConfig, StackConfig
from models.values import control_chars
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.render.server_args import PORT_MACRO, join_cmd, model_argv
from stack.render.yaml_text import GENERATED_HEADER, DoubleQuoted, dump_yaml

LLAMA_SWAP_API_KEY_ENV = "LLAMA_SWAP_API_KEY"
API_KEY_REF = f"${{env.{LLAMA_SWAP_API_KEY_ENV}}}"
EMBEDDING_PEER = "embeddings"
"""Peer id under which llama-swap forwards embedding requests to the embedding container."""



def llama_swap_argv(paths: RenderPaths) -> list[str]:
    """How llama-swap is started; no `-watch-config`, because a changed config replaces the container."""
    listen = f"{paths.llama_swap_listen_host}:{paths.llama_swap_port}"
    return [paths.llama_swap_bin, "-config", paths.llama_swap_config, "-listen", listen]


def _model(model_id: str, model: ModelConfig, paths: RenderPaths, cpu_only: bool) -> dict[str, Any]:
    cmd = join_cmd(model_argv(model_id, model, paths, cpu_only=cpu_only))
    if control_chars(cmd):
        # llama-swap reads a `cmd` line by line (comments, `\` continuations); the config checks keep these out.
        raise ValueError(f"models.{model_id}: a control character reached the llama-swap cmd line")
    entry: dict[str, Any] = {
        "cmd": cmd,
        "proxy": f"http://{paths.model_host}:{PORT_MACRO}",
        "checkEndpoint": "/health",
        "ttl": model.ttl,
        "concurrencyLimit": model.concurrency_limit,
    }
    if model.aliases:
        entry["aliases"] = sorted(model.aliases)
    if model.description:
        entry["description"] = model.description
    return entry


def _matrix(matrix: MatrixConfig) -> dict[str, Any]:
    """Each set as an AND of model ids (valid DSL identifiers); set order is llama-swap's tie-break, so it is kept."""
    out: dict[str, Any] = {"sets": {sid: " & ".join(sorted(members)) for sid, members in matrix.sets.items()}}
    if matrix.evict_costs:
        out["evict_costs"] = dict(sorted(matrix.evict_costs.items()))
    return out


def _peer(embedding: EmbeddingConfig, paths: RenderPaths, api_key_enabled: bool) -> dict[str, Any]:
    """Lets clients of llama-swap reach the always-on embedding server without a swap or a second URL."""
    peer: dict[str, Any] = {"proxy": paths.embedding_url}
    if api_key_enabled:
        peer["apiKey"] = DoubleQuoted(API_KEY_REF)
    peer["models"] = sorted([embedding.name, *embedding.aliases])
    return peer


def render_llama_swap_config(
    cfg: StackConfig, paths: RenderPaths = CONTAINER_PATHS, *, api_key_enabled: bool
) -> str:
    """The whole file; `api_key_enabled` says whether the `api_key` secret is configured (its value is not needed).

    Groups go under the legacy top-level `groups:` key and a matrix under `matrix:` (v250 reads both forms);
    ungrouped models fall into llama-swap's implicit default group, which runs one of them at a time.
    """
    if cfg.groups == "auto":
        raise ValueError("groups: auto must be resolved by stack.sizing.plan.build_plan first; render plan.config")
    ls = cfg.llama_swap
    doc: dict[str, Any] = {
        "healthCheckTimeout": ls.health_check_timeout,
        "logLevel": ls.log_level,
        "startPort": ls.start_port,
        "sendLoadingState": False,
    }
    if api_key_enabled:
        doc["apiKeys"] = [DoubleQuoted(API_KEY_REF)]
    doc["models"] = {mid: _model(mid, cfg.models[mid], paths, cfg.gpu.cpu_only) for mid in sorted(cfg.models)}
    if cfg.explicit_groups:
        doc["groups"] = {
            gid: {
                "swap": group.swap,
                "exclusive": group.exclusive,
                "persistent": group.persistent,
                "members": sorted(group.members),
            }
            for gid, group in sorted(cfg.explicit_groups.items())
        }
    if cfg.matrix is not None:
        doc["matrix"] = _matrix(cfg.matrix)
    if cfg.embedding is not None:
        doc["peers"] = {EMBEDDING_PEER: _peer(cfg.embedding, paths, api_key_enabled)}
    return dump_yaml(doc, GENERATED_HEADER)
