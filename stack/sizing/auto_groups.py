"""`groups: auto`: let the sizing decide which models may stay loaded together.

llama-swap does no VRAM accounting (its issues #158, #319, #1004 ask for it). We emit its matrix
router instead of groups: every maximal set of models whose processes fit the budget beside the
always-on embedder becomes a matrix set. A request then loads its model and evicts only what lies
outside the cheapest set containing it, so small models stay resident next to whatever else fits,
and a model too large to share takes the GPU alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from models.config import MatrixConfig, StackConfig
from stack.sizing.process_size import ProcessSize
from stack.units import MIB

MAX_AUTO_MODELS = 16


@dataclass(frozen=True)
class AutoGrouping:
    matrix: MatrixConfig
    explanation: tuple[str, ...]


def fitting_sets(sizes: dict[str, int], budget: int) -> list[tuple[str, ...]]:
    """Maximal subsets (by inclusion) whose total fits `budget`; largest sets first."""
    ids = sorted(sizes)
    fitting = [
        frozenset(c)
        for r in range(1, len(ids) + 1)
        for c in combinations(ids, r)
        if sum(sizes[m] for m in c) <= budget
    ]
    maximal = [s for s in fitting if not any(s < other for other in fitting)]
    return sorted((tuple(sorted(s)) for s in maximal), key=lambda s: (-len(s), -sum(sizes[m] for m in s), s))


def auto_group(cfg: StackConfig, processes: dict[str, ProcessSize], budget: int, first_set: int = 1) -> AutoGrouping:
    """`first_set`: the number of the first set's name (`s1`), so that several pools' sets get distinct names."""
    if len(cfg.models) > MAX_AUTO_MODELS:
        raise ValueError(f"groups: auto handles up to {MAX_AUTO_MODELS} models; give explicit groups")
    always_on = processes[cfg.embedding.name].total_bytes if cfg.embedding is not None else 0
    room = budget - always_on if budget > 0 else 0
    sizes = {m: processes[m].total_bytes for m in cfg.models}
    sets = fitting_sets(sizes, room) if budget > 0 else [tuple(sorted(cfg.models))]
    named = {f"s{i + first_set}": list(s) for i, s in enumerate(sets) if s}
    if not named:
        named = {f"s{first_set}": [min(sizes, key=lambda m: sizes[m])]}
    lines = [f"groups: auto: {room / MIB:,.0f} MiB for llama-swap models beside the always-on processes"]
    for sid, members in named.items():
        total = sum(sizes[m] for m in members)
        lines.append(f"  set {sid}: {' + '.join(members)} ({total / MIB:,.0f} MiB)")
    resident = [m for m in sorted(cfg.models) if all(m in s for s in named.values())]
    if resident and len(named) > 1:
        lines.append(f"  always loaded once requested: {', '.join(resident)} (in every set)")
    for m in sorted(cfg.models):
        partners = sorted({p for s in named.values() if m in s for p in s} - {m})
        if not partners:
            lines.append(f"  {m} ({sizes[m] / MIB:,.0f} MiB) shares the GPU with no other llama-swap model")
    return AutoGrouping(MatrixConfig(sets=named), tuple(lines))
