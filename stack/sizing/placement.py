"""Which GPU pool runs what, on the kubernetes target; and the one-pool view of a stack that sizing and rendering use.

The `kubernetes.placement` keys are group names (a group's members move together: llama-swap swaps within one
process), ids of models in no group, `embeddings` and `litellm`. Whatever is not placed goes to the first pool.

`groups: auto` spreads sets across pools this way: models are placed first (by id, unplaced ones on the first pool),
then the auto grouping runs per pool over the models placed there, against that pool's GPU budget. So a model
too big to share a 16 GB GPU can be placed on a 24 GB pool and the sizing finds what may sit beside it there.
Placement itself never moves a model to find room: a placement that does not fit is refused with the gate's fixes,
so what runs where is always what the stack file says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.config import KubernetesConfig, MatrixConfig, StackConfig


@dataclass(frozen=True)
class Placement:
    """Model id -> pool, and the pools of the embedding server and LiteLLM (None when not deployed)."""

    pools: tuple[str, ...]
    """Every configured pool, in the stack file's order."""
    models: Mapping[str, str]
    embeddings: str | None
    litellm: str | None

    def models_on(self, pool: str) -> tuple[str, ...]:
        return tuple(sorted(m for m, p in self.models.items() if p == pool))

    def gpu_pools(self) -> tuple[str, ...]:
        """Pools that run a llama-swap or the embedding server, i.e. that need a GPU, in config order."""
        return tuple(p for p in self.pools if self.models_on(p) or self.embeddings == p)


def kubernetes_block(cfg: StackConfig) -> KubernetesConfig:
    if cfg.target != "kubernetes" or cfg.kubernetes is None:
        raise ValueError("placement applies to target: kubernetes with a kubernetes block")
    return cfg.kubernetes


def place(cfg: StackConfig) -> Placement:
    """The placement the stack file asks for (validated in models/config.py: every key and pool exists)."""
    k8s = kubernetes_block(cfg)
    asked = k8s.placement
    first = k8s.first_pool
    group_of = {m: gid for gid, g in cfg.explicit_groups.items() for m in g.members}
    models = {mid: asked.get(group_of.get(mid, mid), first) for mid in sorted(cfg.models)}
    return Placement(
        pools=tuple(k8s.pools),
        models=models,
        embeddings=asked.get("embeddings", first) if cfg.embedding is not None else None,
        litellm=asked.get("litellm", first) if cfg.litellm.enabled else None,
    )


def _matrix_on(matrix: MatrixConfig | None, members: set[str]) -> MatrixConfig | None:
    """The matrix restricted to one pool's models; sets that lose every member go (their models run alone)."""
    if matrix is None:
        return None
    sets = {sid: [m for m in s if m in members] for sid, s in matrix.sets.items()}
    kept = {sid: s for sid, s in sets.items() if s}
    if not kept:
        return None
    costs = {m: c for m, c in matrix.evict_costs.items() if m in members}
    return matrix.model_copy(update={"sets": kept, "evict_costs": costs})


def pool_view(cfg: StackConfig, placement: Placement, pool: str, *, with_embedding: bool) -> StackConfig:
    """The stack as one pool's GPU sees it: that pool's models, groups and matrix sets, and its `gpu`.

    `with_embedding`: keep the embedding server in the view. The sizing keeps it only on its own pool (its VRAM
    is spent there); a llama-swap config keeps it everywhere, as the peer it forwards embedding requests to.
    """
    k8s = kubernetes_block(cfg)
    members = set(placement.models_on(pool))
    groups = cfg.groups if cfg.groups == "auto" else {
        gid: g for gid, g in cfg.groups.items() if set(g.members) <= members
    }
    update: dict[str, object] = {
        "gpu": k8s.pools[pool].gpu,
        "models": {mid: m for mid, m in cfg.models.items() if mid in members},
        "groups": groups,
        "matrix": _matrix_on(cfg.matrix, members),
    }
    if not with_embedding and placement.embeddings != pool:
        update["embeddings"] = None
    return cfg.model_copy(update=update)
