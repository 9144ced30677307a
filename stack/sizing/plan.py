"""The sizing gate for a whole stack: every process sized, every co-resident set checked.

`build_plan` is pure apart from reading GGUF headers through the given header source.
Both `pulumi up` and `python -m stack plan` call it; nothing is deployed unless `Plan.fits`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from models.config import ModelConfig, ServerSettings, StackConfig
from models.errors import ConfigError
from stack.arch.resolve import ArchUnavailable, read_model_header, resolve_arch
from stack.gguf.sources import HeaderSource
from stack.sizing.auto_groups import MAX_AUTO_MODELS, auto_group
from stack.sizing.compute_buffer import Calibration, calibration_for
from stack.sizing.fit import Suggestion, suggest_fixes
from stack.sizing.kv_cache import CacheRowError
from stack.sizing.process_size import Extras, ProcessSize, size_process
from stack.sizing.residency import MAX_MODELS, co_resident_sets
from stack.units import MIB

_BUILD_RE = re.compile(r"-b(\d{3,6})(?:$|[^0-9])")


def llama_cpp_build(image: str) -> int | None:
    """The llama.cpp build number in an image tag such as `server-cuda-b11434`."""
    m = _BUILD_RE.search(image.split("@", 1)[0].rpartition(":")[2])
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class Scenario:
    members: tuple[str, ...]
    total_bytes: int
    budget_bytes: int
    suggestions: tuple[Suggestion, ...] = ()

    @property
    def fits(self) -> bool:
        return self.budget_bytes <= 0 or self.total_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.budget_bytes - self.total_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "members": list(self.members),
            "total_mib": round(self.total_bytes / MIB, 2),
            "fits": self.fits,
            "headroom_mib": round(self.headroom_bytes / MIB, 2) if self.budget_bytes > 0 else None,
            "suggestions": [s.to_json() for s in self.suggestions],
        }


@dataclass(frozen=True)
class Plan:
    config: StackConfig
    calibration: Calibration
    processes: dict[str, ProcessSize]
    scenarios: tuple[Scenario, ...]
    always_on: tuple[str, ...] = field(default=())
    grouping: tuple[str, ...] = field(default=())
    """How `groups: auto` was resolved; `config` then holds the resulting matrix."""
    warnings: tuple[str, ...] = field(default=())
    """`key: problem` lines that do not stop a deploy, e.g. a model file missing from a models_dir that exists."""

    @property
    def budget_bytes(self) -> int:
        return 0 if self.config.gpu.cpu_only else self.config.gpu.budget_mib * MIB

    @property
    def fits(self) -> bool:
        return all(s.fits for s in self.scenarios)

    def to_json(self) -> dict[str, Any]:
        gpu = self.config.gpu
        return {
            "fits": self.fits,
            "budget_mib": self.budget_bytes // MIB if self.budget_bytes > 0 else None,
            "gpu": {
                "profile": gpu.profile,
                "name": gpu.resolved_name,
                "vram_mib": gpu.resolved_vram_mib,
                "reserve_mib": gpu.resolved_reserve_mib,
                "overhead_mib": gpu.resolved_overhead_mib,
            },
            "llama_cpp_build": self.calibration.build,
            "calibration": self.calibration.note,
            "calibration_measured": self.calibration.measured,
            "always_on": list(self.always_on),
            "grouping": list(self.grouping),
            "matrix": self.config.matrix.model_dump() if self.config.matrix is not None else None,
            "models": {pid: p.to_json() for pid, p in self.processes.items()},
            "scenarios": [s.to_json() for s in self.scenarios],
            "warnings": list(self.warnings),
        }


def _servers(cfg: StackConfig) -> list[tuple[str, str, ServerSettings]]:
    out: list[tuple[str, str, ServerSettings]] = [
        (mid, f"models.{mid}", m) for mid, m in cfg.models.items()
    ]
    if cfg.embedding is not None:
        out.append((cfg.embedding.name, "embeddings", cfg.embedding))
    return out


def _extras(settings: ServerSettings, key: str, headers: HeaderSource | None) -> Extras:
    """Draft model and projector of a llama-swap model; raises ArchUnavailable naming the key to add."""
    if not isinstance(settings, ModelConfig):
        return Extras()
    draft_arch = resolve_arch(settings.draft, f"{key}.draft", headers) if settings.draft is not None else None
    mmproj_bytes = 0
    if settings.mmproj is not None:
        header = None
        if headers is not None:
            header = read_model_header(headers, settings.mmproj.file, f"{key}.mmproj.file")
        if header is not None:
            mmproj_bytes = sum(t.n_bytes for t in header.tensors)
        elif settings.mmproj.weights_mib is not None:
            mmproj_bytes = int(settings.mmproj.weights_mib * MIB)
        else:
            raise ArchUnavailable(
                f"{key}.mmproj.weights_mib",
                f"{settings.mmproj.file!r} is not readable here; give its tensor size in MiB (about its file size)",
            )
    return Extras(draft_arch, mmproj_bytes)


def missing_files(cfg: StackConfig, headers: HeaderSource | None) -> list[str]:
    """Every model file (drafts and projectors too) that the header source cannot find, as `key: problem`.

    A header source exists only when models_dir is readable where the plan runs (locally or over ssh), so a file
    it cannot find will be missing inside the containers too: llama-server fails to load it. The sizing still
    goes on from the config's `arch` block or the catalog, so the message says so; `size_all` refuses models that
    neither can describe.
    """
    if headers is None:
        return []
    out: list[str] = []
    for _, key, settings in _servers(cfg):
        files = [(f"{key}.file", settings.file)]
        if isinstance(settings, ModelConfig):
            if settings.draft is not None:
                files.append((f"{key}.draft.file", settings.draft.file))
            if settings.mmproj is not None:
                files.append((f"{key}.mmproj.file", settings.mmproj.file))
        for file_key, file in files:
            if not headers.exists(file):
                out.append(
                    f"{file_key}: {headers.describe(file)} does not exist; sized from the config's arch block or the "
                    "catalog instead, and llama-server will fail to load it until the file is there"
                )
    return out


def size_all(cfg: StackConfig, headers: HeaderSource | None, calibration: Calibration) -> dict[str, ProcessSize]:
    sizes: dict[str, ProcessSize] = {}
    problems: list[tuple[str, str]] = []
    for pid, key, settings in _servers(cfg):
        try:
            arch = resolve_arch(settings, key, headers)
            extras = _extras(settings, key, headers)
        except ConfigError as exc:
            problems += exc.problems
            continue
        try:
            sizes[pid] = size_process(pid, key, settings, arch, cfg.gpu, calibration, extras=extras)
        except CacheRowError as exc:
            problems += exc.under(key).problems
    if problems:
        raise ConfigError(problems)
    return sizes


def build_plan(cfg: StackConfig, headers: HeaderSource | None = None) -> Plan:
    """Size every process and check every set that can share the GPU. Raises ConfigError if unsizable.

    With `groups: auto` the returned plan's `config` carries the generated matrix: deploy that one.
    """
    limit = MAX_AUTO_MODELS if cfg.groups == "auto" else MAX_MODELS
    if len(cfg.models) > limit:
        key, fix = ("groups", "give explicit groups") if cfg.groups == "auto" else ("models", "split the stack")
        raise ConfigError([(key, f"{len(cfg.models)} models is more than the {limit} whose co-residency the sizing "
                                 f"explores in bounded time; {fix}")])
    calibration = calibration_for(llama_cpp_build(cfg.images.llama_server))
    sizes = size_all(cfg, headers, calibration)
    always_on = (cfg.embedding.name,) if cfg.embedding is not None else ()
    budget = 0 if cfg.gpu.cpu_only else cfg.gpu.budget_mib * MIB
    grouping: tuple[str, ...] = ()
    if cfg.groups == "auto":
        auto = auto_group(cfg, sizes, budget)
        cfg = cfg.model_copy(update={"groups": {}, "matrix": auto.matrix})
        grouping = auto.explanation
    scenarios = []
    for members in co_resident_sets(cfg):
        resident = members + always_on
        total = sum(sizes[m].total_bytes for m in resident)
        scenario = Scenario(resident, total, budget)
        if not scenario.fits:
            fixes = suggest_fixes(cfg, resident, sizes, budget, calibration)
            scenario = Scenario(resident, total, budget, tuple(fixes))
        scenarios.append(scenario)
    return Plan(cfg, calibration, sizes, tuple(scenarios), always_on, grouping, tuple(missing_files(cfg, headers)))
