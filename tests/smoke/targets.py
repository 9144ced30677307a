"""What the smoke suite checks, read from `pulumi stack output --json` (or the loopback harness's file).

Keys (written by `stack.targets.pulumi.program.main`): `endpoints` (service → URL as seen from the Docker host),
`container_names` (service → container), `models` (llama-swap ids with aliases and tool support, the embedding
server's names, vector size and the ids llama-swap lists for them, LiteLLM's public names), `auth_required`
(service → key required) and `sizing` (its `scenarios` say which models may be loaded together, its `matrix`
the llama-swap matrix sets, if any). The loopback harness may add `smoke.tool_call_logit_bias`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

LLAMA_SWAP, EMBEDDINGS, LITELLM = "llama-swap", "embeddings", "litellm"
"""The service keys of `endpoints`, `container_names` and `auth_required` (stack.render.containers)."""


class TargetsError(ValueError):
    """The targets file is missing a key the suite needs; the message says which and how to get it."""


@dataclass(frozen=True)
class SwapModel:
    id: str
    aliases: tuple[str, ...]
    tools: bool


@dataclass(frozen=True)
class Embedding:
    name: str
    aliases: tuple[str, ...]
    dimension: int | None
    llama_swap_ids: tuple[str, ...] = ()
    """What llama-swap's `/v1/models` lists for the names above (`embeddings/<name>`); it routes both forms."""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Matrix:
    """llama-swap's matrix router as the sizing chose it: named sets of models, and eviction costs."""

    sets: dict[str, frozenset[str]]
    evict_costs: dict[str, int]

    def after_request(self, running: frozenset[str], target: str) -> set[frozenset[str]]:
        """What may stay loaded after a request to `target` (llama-swap v250 `internal/matrix` `Program.Solve`).

        Of the sets holding `target`, the one whose eviction cost (per loaded model outside it: its `evict_costs`,
        else 1) is lowest wins; the models outside it are evicted. A model in no set runs alone. On a tie llama-swap
        takes the set written first, an order the stack outputs do not keep (JSON objects), so every tied set's
        outcome is returned: one outcome whenever the sets do not tie.
        """
        if target in running:
            return {running}
        costs = {
            name: sum(self.evict_costs.get(m, 1) for m in running - members)
            for name, members in self.sets.items()
            if target in members
        }
        if not costs:
            return {frozenset({target})}
        best = min(costs.values())
        return {(running & self.sets[name]) | {target} for name, cost in costs.items() if cost == best}


@dataclass(frozen=True)
class LiteLLMNames:
    chat: tuple[str, ...]
    embedding: tuple[str, ...]
    cloud: tuple[str, ...]


@dataclass(frozen=True)
class Targets:
    endpoints: dict[str, str]
    container_names: dict[str, str]
    models: dict[str, SwapModel]
    embedding: Embedding | None
    litellm: LiteLLMNames | None
    auth_required: dict[str, bool]
    scenarios: tuple[frozenset[str], ...]
    matrix: Matrix | None = None
    tool_call_logit_bias: dict[str, dict[str, float]] = field(default_factory=dict)

    def published(self, service: str) -> tuple[str, int]:
        """(bind address, port) a service's port is published on, from its endpoint URL."""
        parts = urlsplit(self.endpoints[service])
        if parts.hostname is None or parts.port is None:
            raise TargetsError(f"endpoints.{service}: {self.endpoints[service]!r} has no host and port")
        return parts.hostname, parts.port

    def may_coexist(self, a: str, b: str) -> bool:
        """Whether the sizing let models `a` and `b` be loaded together (a scenario holds both)."""
        return any(a in s and b in s for s in self.scenarios)

    def model_of(self, public_name: str) -> str | None:
        """The llama-swap model id a LiteLLM public name or llama-swap alias resolves to."""
        for m in self.models.values():
            if public_name == m.id or public_name in m.aliases:
                return m.id
        return None


def _need(doc: Mapping[str, Any], key: str) -> Any:
    if key not in doc:
        raise TargetsError(
            f"targets lack {key!r}: write them with `pulumi stack output --json > outputs.json` after `pulumi up` "
            "with this version of the stack (older deployments did not export it)"
        )
    return doc[key]


def rewrite_host(url: str, host: str | None) -> str:
    """`url` with its host replaced (for `--endpoint-host`: ports bound to 0.0.0.0, or a tunnel's address)."""
    if not host:
        return url
    parts = urlsplit(url)
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def parse_targets(doc: Mapping[str, Any]) -> Targets:
    endpoints = {str(k): str(v).rstrip("/") for k, v in _need(doc, "endpoints").items()}
    models_doc = _need(doc, "models")
    models = {
        mid: SwapModel(mid, tuple(m.get("aliases", ())), bool(m.get("tools", False)))
        for mid, m in sorted(models_doc.get("llama_swap", {}).items())
    }
    emb_doc = models_doc.get("embedding")
    embedding = (
        Embedding(emb_doc["name"], tuple(emb_doc.get("aliases", ())), emb_doc.get("dimension"),
                  tuple(emb_doc.get("llama_swap_ids", ())))
        if emb_doc
        else None
    )
    if LLAMA_SWAP in endpoints and embedding is not None and not embedding.llama_swap_ids:
        _need(emb_doc, "llama_swap_ids")
    lite_doc = models_doc.get("litellm")
    litellm = (
        LiteLLMNames(tuple(lite_doc["chat"]), tuple(lite_doc["embedding"]), tuple(lite_doc.get("cloud", ())))
        if lite_doc
        else None
    )
    if LITELLM in endpoints and litellm is None:
        raise TargetsError("targets have a litellm endpoint but models.litellm is empty")
    if EMBEDDINGS in endpoints and embedding is None:
        raise TargetsError("targets have an embeddings endpoint but models.embedding is empty")
    sizing = doc.get("sizing") or {}
    scenarios = tuple(frozenset(s["members"]) for s in sizing.get("scenarios", ()))
    matrix_doc = sizing.get("matrix")
    matrix = (
        Matrix({str(k): frozenset(v) for k, v in matrix_doc["sets"].items()},
               {str(k): int(v) for k, v in (matrix_doc.get("evict_costs") or {}).items()})
        if matrix_doc
        else None
    )
    names = doc.get("container_names") or {}
    bias = (doc.get("smoke") or {}).get("tool_call_logit_bias") or {}
    return Targets(
        endpoints=endpoints,
        container_names={str(k): str(v) for k, v in names.items()},
        models=models,
        embedding=embedding,
        litellm=litellm,
        auth_required={str(k): bool(v) for k, v in _need(doc, "auth_required").items()},
        scenarios=scenarios,
        matrix=matrix,
        tool_call_logit_bias={str(m): {str(t): float(b) for t, b in v.items()} for m, v in bias.items()},
    )


def load_targets(path: str | Path) -> Targets:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetsError(f"cannot read --targets {p}: {exc.strerror}") from None
    except ValueError as exc:
        raise TargetsError(f"--targets {p} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise TargetsError(f"--targets {p}: expected the JSON object `pulumi stack output --json` prints")
    return parse_targets(doc)
