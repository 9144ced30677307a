"""The sizing gate for a whole stack: every process sized, every co-resident set checked.

`build_plan` is pure apart from reading GGUF headers through the given header source.
Both `pulumi up` and `python -m stack plan` call it; nothing is deployed unless `Plan.fits`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from models.config import GpuConfig, MatrixConfig, ModelConfig, ServerSettings, StackConfig
from models.errors import ConfigError
from stack.arch.resolve import ArchUnavailable, read_model_header, resolve_arch
from stack.gguf.sources import HeaderSource
from stack.sizing.auto_groups import MAX_AUTO_MODELS, auto_group
from stack.sizing.compute_buffer import Calibration, calibration_for
from stack.sizing.fit import Suggestion, suggest_fixes
from stack.sizing.kv_cache import CacheRowError
from stack.sizing.placement import Placement, place, pool_view
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
    pool: str | None = None
    """The kubernetes pool whose GPU holds this set; None on the docker target (one GPU)."""

    @property
    def fits(self) -> bool:
        return self.budget_bytes <= 0 or self.total_bytes <= self.budget_bytes

    @property
    def headroom_bytes(self) -> int:
        return self.budget_bytes - self.total_bytes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.pool is None else {"pool": self.pool}
        return out | {
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
    placement: Placement | None = None
    """What runs on which pool (kubernetes target); None on docker."""

    @property
    def budget_bytes(self) -> int:
        """The one GPU's budget on docker; on kubernetes each pool has its own (`pool_budget_bytes`), so 0."""
        if self.placement is not None or self.config.gpu.cpu_only:
            return 0
        return self.config.gpu.budget_mib * MIB

    def pool_budget_bytes(self, pool: str) -> int:
        k8s = self.config.kubernetes
        assert k8s is not None
        return k8s.pools[pool].gpu.budget_mib * MIB

    def pool_scenarios(self, pool: str) -> tuple[Scenario, ...]:
        return tuple(s for s in self.scenarios if s.pool == pool)

    def placement_json(self) -> dict[str, Any]:
        """Pool -> its GPU, what it runs, and the headroom of its fullest co-resident set."""
        k8s, placement = self.config.kubernetes, self.placement
        assert k8s is not None and placement is not None
        out: dict[str, Any] = {}
        for pool in placement.pools:
            gpu = k8s.pools[pool].gpu
            worst = min((s.headroom_bytes for s in self.pool_scenarios(pool)), default=None)
            out[pool] = {
                "gpu": _gpu_json(gpu),
                "gpus_per_node": k8s.pools[pool].gpus_per_node,
                "budget_mib": gpu.budget_mib,
                "models": list(placement.models_on(pool)),
                "embeddings": self.config.embedding.name
                if self.config.embedding is not None and placement.embeddings == pool else None,
                "litellm": placement.litellm == pool,
                "headroom_mib": round(worst / MIB, 2) if worst is not None else None,
                "fits": all(s.fits for s in self.pool_scenarios(pool)),
            }
        return out

    @property
    def fits(self) -> bool:
        return all(s.fits for s in self.scenarios)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fits": self.fits,
            "budget_mib": self.budget_bytes // MIB if self.budget_bytes > 0 else None,
            "gpu": _gpu_json(self.config.gpu) if self.placement is None else None,
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
        if self.placement is not None:
            out["placement"] = self.placement_json()
        return out


def _gpu_json(gpu: GpuConfig) -> dict[str, Any]:
    return {
        "profile": gpu.profile,
        "name": gpu.resolved_name,
        "vram_mib": gpu.resolved_vram_mib,
        "reserve_mib": gpu.resolved_reserve_mib,
        "overhead_mib": gpu.resolved_overhead_mib,
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
    if cfg.target == "kubernetes":
        return _build_pool_plan(cfg, headers, calibration)
    sizes = size_all(cfg, headers, calibration)
    always_on = (cfg.embedding.name,) if cfg.embedding is not None else ()
    budget = 0 if cfg.gpu.cpu_only else cfg.gpu.budget_mib * MIB
    grouping: tuple[str, ...] = ()
    if cfg.groups == "auto":
        auto = auto_group(cfg, sizes, budget)
        cfg = cfg.model_copy(update={"groups": {}, "matrix": auto.matrix})
        grouping = auto.explanation
    scenarios = _scenarios(cfg, sizes, always_on, budget, calibration)
    return Plan(cfg, calibration, sizes, tuple(scenarios), always_on, grouping, tuple(missing_files(cfg, headers)))


def _scenarios(cfg: StackConfig, sizes: dict[str, ProcessSize], always_on: tuple[str, ...], budget: int,
               calibration: Calibration, pool: str | None = None) -> list[Scenario]:
    """Every co-resident set of `cfg`'s llama-swap models beside the always-on processes, against `budget`;
    the always-on processes alone when no model shares their GPU."""
    scenarios = []
    for members in co_resident_sets(cfg) if cfg.models else [()]:
        resident = members + always_on
        if not resident:
            continue
        total = sum(sizes[m].total_bytes for m in resident)
        scenario = Scenario(resident, total, budget, pool=pool)
        if not scenario.fits:
            fixes = suggest_fixes(cfg, resident, sizes, budget, calibration)
            scenario = Scenario(resident, total, budget, tuple(fixes), pool)
        scenarios.append(scenario)
    return scenarios


def _build_pool_plan(cfg: StackConfig, headers: HeaderSource | None, calibration: Calibration) -> Plan:
    """The kubernetes gate: each pool's GPU holds the sets of the models placed there (plus the embedding server
    when it is placed there too), sized with that pool's GPU profile and checked against its budget.

    With `groups: auto` each pool is grouped on its own; the plan's config carries the union of the pools' matrix
    sets (each set lies within one pool, so a pool's view of it is that pool's grouping)."""
    placement = place(cfg)
    sizes: dict[str, ProcessSize] = {}
    problems: list[tuple[str, str]] = []
    views: dict[str, StackConfig] = {}
    for pool in placement.gpu_pools():
        views[pool] = pool_view(cfg, placement, pool, with_embedding=False)
        try:
            sizes.update(size_all(views[pool], headers, calibration))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    always_on = (cfg.embedding.name,) if cfg.embedding is not None else ()
    grouping: list[str] = []
    sets: dict[str, list[str]] = {}
    scenarios: list[Scenario] = []
    for pool, view in views.items():
        budget = view.gpu.budget_mib * MIB
        if cfg.groups == "auto" and view.models:
            auto = auto_group(view, sizes, budget, first_set=len(sets) + 1)
            sets |= auto.matrix.sets
            view = view.model_copy(update={"groups": {}, "matrix": auto.matrix})
            grouping += [f"pool {pool}: {auto.explanation[0]}", *auto.explanation[1:]]
        on_pool = tuple(p for p in always_on if placement.embeddings == pool)
        scenarios += _scenarios(view, sizes, on_pool, budget, calibration, pool)
    if cfg.groups != "auto":
        scenarios = [s if s.fits else replace(s, suggestions=s.suggestions + tuple(
            _placement_fixes(cfg, placement, sizes, calibration, s))) for s in scenarios]
    if cfg.groups == "auto":
        cfg = cfg.model_copy(update={"groups": {}, "matrix": MatrixConfig(sets=sets) if sets else None})
    return Plan(cfg, calibration, sizes, tuple(scenarios), always_on, tuple(grouping),
                tuple(missing_files(cfg, headers)), placement)


def _placement_fixes(cfg: StackConfig, placement: Placement, sizes: dict[str, ProcessSize], calibration: Calibration,
                     refused: Scenario) -> list[Suggestion]:
    """Kubernetes: each placement key of a refused set (its group, model or the embedder) moved to another pool
    where every co-resident set, the moved models resized for that pool's GPU, then fits. Moving never refuses a
    set on the pool it leaves (those sets only lose members)."""
    group_of = {m: gid for gid, g in cfg.explicit_groups.items() for m in g.members}
    emb = cfg.embedding.name if cfg.embedding is not None else None
    keys = sorted({"embeddings" if m == emb else group_of.get(m, m) for m in refused.members})
    out: list[Suggestion] = []
    for key in keys:
        for pool in placement.pools:
            if pool == refused.pool:
                continue
            moved = Placement(
                placement.pools,
                {m: pool if key != "embeddings" and group_of.get(m, m) == key else p
                 for m, p in placement.models.items()},
                pool if key == "embeddings" else placement.embeddings,
                placement.litellm,
            )
            worst = _fullest_fitting_set(cfg, moved, pool, sizes, calibration)
            if worst is not None:
                out.append(Suggestion(key, f"kubernetes.placement.{key}", {"pool": pool}, round(worst / MIB, 2),
                                      f"set kubernetes.placement.{key}: {pool}"))
    return out


def _fullest_fitting_set(cfg: StackConfig, placement: Placement, pool: str, sizes: dict[str, ProcessSize],
                         calibration: Calibration) -> int | None:
    """The largest co-resident set's bytes on `pool` under `placement`, or None when some set does not fit."""
    view = pool_view(cfg, placement, pool, with_embedding=False)
    always = (view.embedding.name,) if view.embedding is not None else ()
    try:
        on_pool = {
            pid: size_process(pid, sizes[pid].key, view.embedding if pid in always and view.embedding is not None
                              else view.models[pid], sizes[pid].arch, view.gpu, calibration,
                              extras=sizes[pid].extras).total_bytes
            for pid in [*view.models, *always]
        }
    except CacheRowError:
        return None
    budget = view.gpu.budget_mib * MIB
    worst = 0
    for members in co_resident_sets(view) if view.models else [()]:
        total = sum(on_pool[m] for m in members + always)
        if total > budget:
            return None
        worst = max(worst, total)
    return worst
