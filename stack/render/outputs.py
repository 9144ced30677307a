"""What each service answers to: the per-service parts of the `models` stack output, without Pulumi types.

`stack.deployment.Deployment.outputs` puts them together; `pulumi stack output --json`, compose's outputs file and
the loopback harness's targets are that one dict, the smoke suite's input (`tests/smoke`), so its expectations
come from the same config that rendered the files.
"""

from __future__ import annotations

from typing import Any

from models.config import StackConfig
from stack.render.litellm import embedding_names, llama_swap_names
from stack.render.llama_swap import EMBEDDING_PEER
from stack.sizing.plan import Plan


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


def llama_swap_answers(cfg: StackConfig) -> dict[str, Any]:
    """Every llama-swap model id with its aliases, and whether tool calls work (`jinja`)."""
    return {mid: {"aliases": sorted(m.aliases), "tools": m.jinja} for mid, m in sorted(cfg.models.items())}


def embedding_answers(cfg: StackConfig, dimension: int | None) -> dict[str, Any]:
    """The embedding server's name, aliases and vector size, and the ids llama-swap lists for the embedding names
    (`llama_swap_ids`)."""
    emb = cfg.embedding
    if emb is None:
        raise ValueError("embedding_answers needs an enabled embeddings block")
    return {
        "name": emb.name,
        "aliases": sorted(emb.aliases),
        "dimension": dimension,
        "llama_swap_ids": peer_model_ids(embedding_names(cfg)),
    }


def litellm_answers(cfg: StackConfig) -> dict[str, Any]:
    """LiteLLM's public names: local chat names, embedding names and cloud fallbacks."""
    return {
        "chat": sorted(llama_swap_names(cfg)),
        "embedding": embedding_names(cfg),
        "cloud": sorted(fb.name for fb in cfg.litellm.fallbacks),
    }
