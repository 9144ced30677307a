"""`stack.sizing.fit`: the concrete fixes a co-resident set that does not fit gets, each one checked by sizing again."""

from __future__ import annotations

from stack.sizing.fit import largest_fitting
from stack.sizing.plan import build_plan
from tests.unit.helpers import NOMIC_EMBED, qwen14b, stack


def test_over_budget_set_gets_concrete_fixes() -> None:
    cfg = stack(models={"gen": qwen14b(131072, cache="f16", parallel=2)}, embeddings=NOMIC_EMBED)
    plan = build_plan(cfg)
    assert not plan.fits
    (scenario,) = plan.scenarios
    fixes = {f.key: f for f in scenario.suggestions if f.model == "gen"}
    ctx_fix = fixes["models.gen.ctx_size"]
    assert ctx_fix.change["ctx_size"] % 256 == 0
    # The suggested ctx fits, and one more step of 256 would not.
    fits = build_plan(stack(models={"gen": {**qwen14b(ctx_fix.change["ctx_size"], "f16", 2)}}, embeddings=NOMIC_EMBED))
    assert fits.fits
    over = build_plan(stack(models={"gen": qwen14b(ctx_fix.change["ctx_size"] + 512, "f16", 2)},
                            embeddings=NOMIC_EMBED))
    assert not over.fits
    assert fixes["models.gen.cache_type_k"].change["cache_type_k"] == "q8_0"


def test_largest_fitting_is_the_last_n_a_monotone_test_accepts() -> None:
    calls: list[int] = []

    def at_most_37(n: int) -> bool:
        calls.append(n)
        return n <= 37

    assert largest_fitting(1, 1000, at_most_37) == 37
    assert len(calls) <= 12, "a bisection, not a walk"
    assert largest_fitting(1, 30, at_most_37) == 30
    assert largest_fitting(38, 1000, at_most_37) is None
    assert largest_fitting(5, 4, at_most_37) is None
