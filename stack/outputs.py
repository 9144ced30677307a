"""The stack outputs that tell a smoke test what a deployment must serve, without Pulumi types.

`pulumi stack output --json` is the smoke suite's input (`tests/smoke`), and the loopback test harness writes
the same shape; both build these parts with the functions here, so the suite's expectations come from the
same config that rendered the files. No secret value appears: only whether a key is required.
"""

from __future__ import annotations

from typing import Any

from models.config import StackConfig
from stack.container_specs import EMBEDDINGS, LITELLM, LLAMA_SWAP
from stack.litellm_config import embedding_names, llama_swap_names
from stack.llama_swap_config import EMBEDDING_PEER
from stack.plan import Plan


def embedding_dimension(plan: Plan) -> int | None:
    """Length of the vectors the embedding server returns: the model's `n_embd` (pooled hidden state).

    None for `pooling: rank` (a reranker answers with scores, not vectors) or without an embedding server.
    """
    emb = plan.config.embedding
    if emb is None or emb.pooling == "rank" or emb.name not in plan.processes:
        return None
    return plan.processes[emb.name].arch.n_embd


def peer_model_ids(names: list[str]) -> list[str]:
    """How llama-swap v250 lists the embedding names it forwards to its peer: `<peer id>/<name>`
    (`config.PeerModelFQN`). It routes that name and, because only one peer offers it, the plain name too
    (`config.ResolvePeerModel`); clients use the plain name, as they do directly and through LiteLLM."""
    return sorted(f"{EMBEDDING_PEER}/{name}" for name in names)


def model_outputs(cfg: StackConfig, dimension: int | None) -> dict[str, Any]:
    """Every name each service answers to: llama-swap ids with aliases (and whether tool calls work,
    i.e. `jinja`), the embedding server's name, aliases and vector size, the ids llama-swap lists for the
    embedding names (`llama_swap_ids`), and LiteLLM's public names."""
    out: dict[str, Any] = {
        "llama_swap": {
            mid: {"aliases": sorted(m.aliases), "tools": m.jinja} for mid, m in sorted(cfg.models.items())
        },
        "embedding": None,
        "litellm": None,
    }
    emb = cfg.embedding
    if emb is not None:
        out["embedding"] = {
            "name": emb.name,
            "aliases": sorted(emb.aliases),
            "dimension": dimension,
            "llama_swap_ids": peer_model_ids(embedding_names(cfg)),
        }
    if cfg.litellm.enabled:
        out["litellm"] = {
            "chat": sorted(llama_swap_names(cfg)),
            "embedding": embedding_names(cfg),
            "cloud": sorted(fb.name for fb in cfg.litellm.fallbacks),
        }
    return out


def auth_outputs(cfg: StackConfig, *, api_key_enabled: bool) -> dict[str, bool]:
    """Service key → whether requests without a key must be refused.

    The `api_key` secret guards llama-swap (`apiKeys`) and the embedding server (`LLAMA_API_KEY`);
    LiteLLM always has a master key.
    """
    out = {LLAMA_SWAP: api_key_enabled}
    if cfg.embedding is not None:
        out[EMBEDDINGS] = api_key_enabled
    if cfg.litellm.enabled:
        out[LITELLM] = True
    return out
