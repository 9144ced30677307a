"""Co-residency from llama-swap's group rules (v250 internal/router/group.go)."""

from __future__ import annotations

import random
from typing import Any

from stack.sizing.residency import DEFAULT_GROUP, SwapGroup, co_resident_sets, maximal_states, swap_groups
from tests.unit.helpers import stack

M = "Qwen2.5-3B-Instruct-Q4_K_M.gguf"


def _models(*ids: str) -> dict[str, Any]:
    return {i: {"file": M, "ctx_size": 2048} for i in ids}


def test_ungrouped_models_swap_one_at_a_time() -> None:
    cfg = stack(models=_models("a", "b", "c"))
    assert [g.id for g in swap_groups(cfg)] == [DEFAULT_GROUP]
    assert co_resident_sets(cfg) == [("a",), ("b",), ("c",)]


def test_non_swap_group_keeps_all_members() -> None:
    cfg = stack(models=_models("a", "b", "c"), groups={"g": {"swap": False, "members": ["a", "b"]}})
    # Loading c (default group, exclusive) evicts the non-persistent group g.
    assert co_resident_sets(cfg) == [("a", "b"), ("c",)]


def test_persistent_group_survives_exclusive_loads() -> None:
    cfg = stack(
        models=_models("small", "big", "chat"),
        groups={
            "resident": {"swap": False, "exclusive": False, "persistent": True, "members": ["small"]},
            "main": {"members": ["big", "chat"]},
        },
    )
    assert co_resident_sets(cfg) == [("big", "small"), ("chat", "small")]


def test_non_exclusive_group_does_not_evict_others() -> None:
    """The #315 gotcha: a non-exclusive group's load leaves other groups running."""
    cfg = stack(
        models=_models("a", "b", "x"),
        groups={"one": {"members": ["a", "b"]}, "two": {"exclusive": False, "members": ["x"]}},
    )
    sets = co_resident_sets(cfg)
    assert ("a", "x") in sets and ("b", "x") in sets
    assert ("a", "b") not in sets


def _walk_every_request_order(groups: list[SwapGroup]) -> set[frozenset[str]]:
    """The oracle: apply llama-swap v250's eviction rule (internal/router/group.go) to every state reachable by
    any sequence of requests and keep the maximal ones."""
    group_of = {m: g for g in groups for m in g.members}

    def evicted(target: str, running: frozenset[str]) -> set[str]:
        tg = group_of[target]
        return {m for m in running if m != target and (
            (group_of[m].id == tg.id and tg.swap) or (group_of[m].id != tg.id and tg.exclusive
                                                      and not group_of[m].persistent))}

    seen: set[frozenset[str]] = {frozenset()}
    todo = [frozenset[str]()]
    while todo:
        state = todo.pop()
        for target in group_of:
            nxt = (state - evicted(target, state)) | {target}
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return {s for s in seen if s and not any(s < o for o in seen)}


def test_maximal_sets_equal_an_exhaustive_walk_over_random_groupings() -> None:
    rng = random.Random(20261129)
    for _ in range(400):
        names = [f"m{i}" for i in range(rng.randint(1, 7))]
        rng.shuffle(names)
        groups: list[SwapGroup] = []
        i = 0
        while i < len(names):
            size = rng.randint(1, len(names) - i)
            groups.append(SwapGroup(f"g{len(groups)}", rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5,
                                    tuple(names[i:i + size])))
            i += size
        assert maximal_states(groups) == _walk_every_request_order(groups), groups


def test_a_large_group_that_never_swaps_is_one_set_at_once() -> None:
    """20 members that never swap: one set, found without walking 2^20 states."""
    ids = [f"m{i:02d}" for i in range(20)]
    cfg = stack(models=_models(*ids), groups={"all": {"swap": False, "members": ids}})
    assert co_resident_sets(cfg) == [tuple(ids)]
