"""Co-residency from llama-swap's group rules (v250 internal/router/group.go)."""

from __future__ import annotations

from typing import Any

from stack.residency import DEFAULT_GROUP, co_resident_sets, swap_groups
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
