"""Which llama-swap models can be loaded at the same time, from llama-swap's group or matrix rules.

llama-swap v250 (internal/router/group.go): loading target t evicts a running model m when m is
in t's group and that group swaps, or when m is in another group, t's group is exclusive and m's
group is not persistent. Ungrouped models form the implicit "(default)" group (swap, exclusive).
Evictions finish before t starts, so only the states between requests matter. We explore every
state reachable by any request order, which is exact, not a heuristic.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from models.config import StackConfig

DEFAULT_GROUP = "(default)"
MAX_MODELS = 20


@dataclass(frozen=True)
class SwapGroup:
    id: str
    swap: bool
    exclusive: bool
    persistent: bool
    members: tuple[str, ...]


def swap_groups(cfg: StackConfig) -> list[SwapGroup]:
    if cfg.groups == "auto":
        raise ValueError("groups: auto must be resolved by the sizing (stack.auto_groups) before residency")
    groups = [
        SwapGroup(gid, g.swap, g.exclusive, g.persistent, tuple(g.members)) for gid, g in sorted(cfg.groups.items())
    ]
    grouped = {m for g in groups for m in g.members}
    ungrouped = tuple(sorted(m for m in cfg.models if m not in grouped))
    if ungrouped:
        groups.append(SwapGroup(DEFAULT_GROUP, True, True, False, ungrouped))
    return groups


def evicted_by(target: str, running: frozenset[str], group_of: dict[str, SwapGroup]) -> frozenset[str]:
    tg = group_of[target]
    out = set()
    for m in running:
        if m == target:
            continue
        mg = group_of[m]
        if mg.id == tg.id:
            if tg.swap:
                out.add(m)
        elif tg.exclusive and not mg.persistent:
            out.add(m)
    return frozenset(out)


def reachable_states(groups: list[SwapGroup]) -> set[frozenset[str]]:
    models = sorted(m for g in groups for m in g.members)
    if len(models) > MAX_MODELS:
        raise ValueError(f"models: {len(models)} models is more than the {MAX_MODELS} the residency check explores")
    group_of = {m: g for g in groups for m in g.members}
    seen: set[frozenset[str]] = {frozenset()}
    queue: deque[frozenset[str]] = deque([frozenset()])
    while queue:
        state = queue.popleft()
        for target in models:
            nxt = (state - evicted_by(target, state, group_of)) | {target}
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def matrix_states(cfg: StackConfig) -> set[frozenset[str]]:
    """Matrix router (internal/router/matrix_solver.go): a set permits any subset; others run alone."""
    assert cfg.matrix is not None
    sets = {frozenset(members) for members in cfg.matrix.sets.values()}
    listed = {m for s in sets for m in s}
    return sets | {frozenset({m}) for m in cfg.models if m not in listed}


def co_resident_sets(cfg: StackConfig) -> list[tuple[str, ...]]:
    """Maximal sets of llama-swap models that can be loaded together, sorted for stable output."""
    states = matrix_states(cfg) if cfg.matrix is not None else reachable_states(swap_groups(cfg))
    maximal = [s for s in states if s and not any(s < other for other in states)]
    return sorted((tuple(sorted(s)) for s in maximal), key=lambda s: (-len(s), s))
