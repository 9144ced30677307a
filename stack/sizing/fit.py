"""Concrete fixes for a co-resident set that does not fit: the largest context, a smaller cache, fewer slots.

Each fix changes one model and keeps every other member as configured, so it can be applied as
written; the figures come from the same sizing code as the gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.config import CacheType, ServerSettings, StackConfig
from stack.sizing.compute_buffer import Calibration
from stack.sizing.kv_cache import CTX_PAD, CacheRowError
from stack.sizing.process_size import ProcessSize, size_process
from stack.units import MIB

SMALLER_CACHE = CacheType.q8_0


@dataclass(frozen=True)
class Suggestion:
    model: str
    key: str
    change: dict[str, Any]
    total_mib: float
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "key": self.key, "change": self.change, "total_mib": self.total_mib,
                "text": self.text}


def largest_fitting(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """Largest n in [lo, hi] with fits(n), for a monotone predicate; None when even lo fails."""
    if lo > hi or not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class _Resizer:
    """Re-sizes one process under changed settings, against the VRAM the rest of its set leaves."""

    cfg: StackConfig
    size: ProcessSize
    calibration: Calibration
    allowed: int

    @property
    def settings(self) -> ServerSettings:
        if self.size.role == "embedding" and self.cfg.embedding is not None:
            return self.cfg.embedding
        return self.cfg.models[self.size.id]

    def total(self, s: ServerSettings) -> int:
        return size_process(
            self.size.id, self.size.key, s, self.size.arch, self.cfg.gpu, self.calibration, extras=self.size.extras
        ).total_bytes

    def fits(self, s: ServerSettings) -> bool:
        """A setting llama.cpp would refuse (a quantized cache this model's rows cannot hold) never fits."""
        try:
            return self.total(s) <= self.allowed
        except CacheRowError:
            return False

    def largest_ctx(self, s: ServerSettings) -> int | None:
        """Largest ctx_size (a multiple of 256, at least 256 per slot unless unified) that fits."""
        lo = 1 if s.kv_unified else s.parallel
        k = largest_fitting(lo, s.ctx_size // CTX_PAD,
                            lambda k: self.fits(s.model_copy(update={"ctx_size": k * CTX_PAD})))
        return None if k is None else k * CTX_PAD

    def suggestion(self, change: dict[str, Any], text: str) -> Suggestion:
        total = self.total(self.settings.model_copy(update=change))
        return Suggestion(self.size.id, f"{self.size.key}.{next(iter(change))}", change, round(total / MIB, 2), text)

    def fixes(self) -> list[Suggestion]:
        base, key = self.settings, self.size.key
        out: list[Suggestion] = []
        ctx = self.largest_ctx(base)
        if ctx is not None and ctx < base.ctx_size:
            out.append(self.suggestion({"ctx_size": ctx},
                                       f"set {key}.ctx_size: {ctx} (largest multiple of {CTX_PAD} that fits)"))
        if not (base.cache_type_k.quantized and base.cache_type_v.quantized):
            q8: dict[str, Any] = {"cache_type_k": SMALLER_CACHE, "cache_type_v": SMALLER_CACHE, "flash_attn": "on"}
            ctx_q8 = self.largest_ctx(base.model_copy(update=q8))
            if ctx_q8 is not None:
                text = f"set {key}.cache_type_k and cache_type_v: q8_0 (flash_attn: on)"
                if ctx_q8 < base.ctx_size:
                    q8["ctx_size"] = ctx_q8
                    text += f" and ctx_size: {ctx_q8}"
                out.append(self.suggestion(q8, text))
        if base.parallel > 1:
            slots = largest_fitting(1, base.parallel - 1, lambda p: self.fits(base.model_copy(update={"parallel": p})))
            if slots is not None:
                out.append(self.suggestion({"parallel": slots}, f"set {key}.parallel: {slots}"))
        return out


def suggest_fixes(
    cfg: StackConfig,
    resident: tuple[str, ...],
    sizes: dict[str, ProcessSize],
    budget: int,
    calibration: Calibration,
) -> list[Suggestion]:
    """Fixes for each member of a set, largest member first."""
    total = sum(sizes[m].total_bytes for m in resident)
    out: list[Suggestion] = []
    for mid in sorted(resident, key=lambda m: -sizes[m].total_bytes):
        allowed = budget - (total - sizes[mid].total_bytes)
        out.extend(_Resizer(cfg, sizes[mid], calibration, allowed).fixes())
    return out
