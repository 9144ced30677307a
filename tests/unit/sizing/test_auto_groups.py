"""`groups: auto`: matrix sets chosen by the sizing, each of which must fit."""

from __future__ import annotations

from models.load import load_stack_file
from stack.sizing.auto_groups import fitting_sets
from stack.sizing.plan import build_plan
from stack.sizing.residency import co_resident_sets
from tests.unit.helpers import REPO, stack


def test_fitting_sets_are_maximal_and_fit() -> None:
    sizes = {"a": 3, "b": 5, "c": 6, "d": 10}
    sets = fitting_sets(sizes, 14)
    assert sets == [("a", "b", "c"), ("a", "d")]
    for s in sets:
        assert sum(sizes[m] for m in s) <= 14
        assert all(sum(sizes[m] for m in s) + sizes[x] > 14 for x in sizes if x not in s)


def test_reference_box_keeps_the_classifier_beside_the_7b_models_and_the_14b_alone_with_it() -> None:
    plan = build_plan(load_stack_file(REPO / "Pulumi.auto.yaml").config)
    assert plan.fits
    matrix = plan.config.matrix
    assert matrix is not None
    assert sorted(sorted(s) for s in matrix.sets.values()) == [
        ["agent", "chat", "classifier"],
        ["classifier", "generator"],
    ]
    assert {s.members for s in plan.scenarios} == {
        ("agent", "chat", "classifier", "nomic-embed-text"),
        ("classifier", "generator", "nomic-embed-text"),
    }
    assert any("classifier" in line and "every set" in line for line in plan.grouping)


def test_matrix_residency_lets_unlisted_models_run_alone() -> None:
    m = {"file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf", "ctx_size": 2048}
    cfg = stack(models={"a": m, "b": m, "c": m}, matrix={"sets": {"s1": ["a", "b"]}})
    assert co_resident_sets(cfg) == [("a", "b"), ("c",)]


def test_auto_is_refused_for_a_model_that_cannot_fit_alone() -> None:
    big = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 131072}
    small = {"file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf", "ctx_size": 2048}
    plan = build_plan(stack(models={"big": big, "small": small}, groups="auto"))
    assert not plan.fits
    refused = [s for s in plan.scenarios if not s.fits]
    assert [s.members for s in refused] == [("big",)]
    assert refused[0].suggestions
