"""Which llama-swap models can be loaded at the same time, from llama-swap's group or matrix rules.

llama-swap v250 (internal/router/group.go): loading target t evicts a running model m when m is
in t's group and that group swaps, or when m is in another group, t's group is exclusive and m's
group is not persistent. Ungrouped models form the implicit "(default)" group (swap, exclusive).
Evictions finish before t starts, so only the states between requests matter.

The maximal co-resident sets follow from those rules directly, without walking every state (a group of
20 members that never swaps has 2^20): a set S is reachable iff its members can be loaded in an order
where no load evicts an earlier one. A swapping group contributes at most one member. Loads of an
exclusive group G must come before those of every non-persistent group H in S (G's loads evict H), so
two groups that are both exclusive and non-persistent can never be resident together, and any other
combination can (the "must come before" relation has no cycle). So a maximal set is: every member of
every non-swapping group and one member of every swapping group, over all groups that are persistent or
not exclusive, plus at most one exclusive non-persistent group. tests/unit/sizing/test_residency.py checks this
against an exhaustive walk of every request order.
"""

from __future__ import annotations

import itertools
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
        raise ValueError("groups: auto must be resolved by the sizing (stack.sizing.auto_groups) before residency")
    groups = [
        SwapGroup(gid, g.swap, g.exclusive, g.persistent, tuple(g.members)) for gid, g in sorted(cfg.groups.items())
    ]
    grouped = {m for g in groups for m in g.members}
    ungrouped = tuple(sorted(m for m in cfg.models if m not in grouped))
    if ungrouped:
        groups.append(SwapGroup(DEFAULT_GROUP, True, True, False, ungrouped))
    return groups


def _choices(group: SwapGroup) -> list[frozenset[str]]:
    """The largest parts of one group that can be resident: all members, or one when the group swaps."""
    if group.swap:
        return [frozenset({m}) for m in group.members]
    return [frozenset(group.members)]


def maximal_states(groups: list[SwapGroup]) -> set[frozenset[str]]:
    """Every maximal set of models llama-swap can hold at once under these groups (see the module docstring)."""
    models = [m for g in groups for m in g.members]
    if len(models) > MAX_MODELS:
        raise ValueError(f"models: {len(models)} models is more than the {MAX_MODELS} the residency check explores")
    always = [g for g in groups if g.persistent or not g.exclusive]
    rivals = [g for g in groups if g.exclusive and not g.persistent]
    out: set[frozenset[str]] = set()
    for chosen in [[*always, rival] for rival in rivals] or [always]:
        for parts in itertools.product(*(_choices(g) for g in chosen)):
            out.add(frozenset().union(*parts))
    return {s for s in out if s}


def matrix_states(cfg: StackConfig) -> set[frozenset[str]]:
    """Matrix router (internal/router/matrix_solver.go): a set permits any subset; others run alone."""
    assert cfg.matrix is not None
    sets = {frozenset(members) for members in cfg.matrix.sets.values()}
    listed = {m for s in sets for m in s}
    return sets | {frozenset({m}) for m in cfg.models if m not in listed}


def co_resident_sets(cfg: StackConfig) -> list[tuple[str, ...]]:
    """Maximal sets of llama-swap models that can be loaded together, sorted for stable output."""
    states = matrix_states(cfg) if cfg.matrix is not None else maximal_states(swap_groups(cfg))
    maximal = [s for s in states if s and not any(s < other for other in states)]
    return sorted((tuple(sorted(s)) for s in maximal), key=lambda s: (-len(s), s))
