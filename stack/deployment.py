"""The Deployment: everything one stack deploys, decided once from its checked plan.

Which services exist, what each runs (its `ContainerSpec`), the order they start in, where each is reachable
and which key guards it, the network, the models volume, the downloads and the stack outputs are all decided
here. Targets (`stack.targets.pulumi`, `stack.targets.compose`, the loopback test harness) only adapt a
Deployment to their engine; none of them decides anything of the above.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.config import StackConfig
from stack.render.containers import (
    API_KEY,
    EMBEDDINGS,
    LITELLM,
    LLAMA_SWAP,
    ContainerSpec,
    NetworkSpec,
    embedding_spec,
    host_url,
    litellm_spec,
    llama_swap_spec,
    network_spec,
)
from stack.render.downloads import DownloadSpec, download_specs
from stack.render.outputs import embedding_answers, embedding_dimension, litellm_answers, llama_swap_answers
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.sizing.placement import Placement, pool_view
from stack.sizing.plan import Plan

POOL_LLAMA_SWAP_PREFIX = f"{LLAMA_SWAP}-"
"""On kubernetes each pool's llama-swap is its own service, `llama-swap-<pool>`."""

DOWNLOAD_TOKEN_KEY = "hf_token"
"""The secret whose value downloads send to Hugging Face as `HF_TOKEN`."""

ANSWERS_OUTPUT = {LLAMA_SWAP: "llama_swap", EMBEDDINGS: "embedding", LITELLM: "litellm"}
"""Service key → its entry in the `models` output (the smoke suite's names); absent services are null there."""


@dataclass(frozen=True)
class Exposure:
    """Where a service is published on the host, and the secret a client must send (None: no key)."""

    address: str
    port: int
    key: str | None

    @property
    def url(self) -> str:
        return host_url(self.address, self.port)

    @property
    def auth_required(self) -> bool:
        return self.key is not None


@dataclass(frozen=True)
class Service:
    """One deployed service: its container, the services that must be healthy before it starts, its exposure,
    and the names it answers to (its part of the `models` output)."""

    key: str
    spec: ContainerSpec
    exposure: Exposure
    answers: Mapping[str, Any]
    after: tuple[str, ...] = ()
    downloads: tuple[DownloadSpec, ...] = ()
    """The declared files with a source that its container loads (of `Deployment.downloads`): on docker the
    download resources it waits for, on kubernetes its pod's init containers."""


@dataclass(frozen=True)
class ModelsVolume:
    """The host's models directory, mounted read-only into every service that loads a model."""

    source: str
    target: str


@dataclass(frozen=True)
class Deployment:
    plan: Plan
    """The checked plan (any cpu profile already applied; with `groups: auto`, its `config` has the matrix)."""
    services: tuple[Service, ...]
    network: NetworkSpec
    models: ModelsVolume
    downloads: tuple[DownloadSpec, ...]
    secret_keys: tuple[str, ...]
    """The secret config keys the containers read, each once."""
    placement: Mapping[str, str] = field(default_factory=dict)
    """Service key -> the kubernetes pool its pods run on; empty on the docker target."""

    @property
    def config(self) -> StackConfig:
        return self.plan.config

    @property
    def specs(self) -> tuple[ContainerSpec, ...]:
        return tuple(s.spec for s in self.services)

    def service(self, key: str) -> Service:
        return next(s for s in self.services if s.key == key)

    def check_secrets(self, available: Collection[str]) -> None:
        """Raises before a target registers anything when a secret the containers read has no value."""
        missing = [key for key in self.secret_keys if key not in available]
        if missing:
            raise ValueError(f"the stack needs the secrets {missing}: pulumi config set --secret <key> <value>")

    @property
    def container_names(self) -> dict[str, str]:
        return {s.key: s.spec.name for s in self.services}

    def outputs(self, container_names: Mapping[str, Any] | None) -> dict[str, Any]:
        """The stack outputs (`pulumi stack output --json`, compose's `<stem>.outputs.json`, the loopback targets):
        what the smoke suite checks. `container_names` is left out when nothing runs in a container (None)."""
        urls = {s.key: s.exposure.url for s in self.services}
        out: dict[str, Any] = {"endpoints": urls, **{f"{k.replace('-', '_')}_url": u for k, u in urls.items()}}
        if container_names is not None:
            out["container_names"] = dict(container_names)
        models: dict[str, Any] = dict.fromkeys(ANSWERS_OUTPUT.values())
        for s in self.services:
            pooled = s.key.startswith(POOL_LLAMA_SWAP_PREFIX)
            name = ANSWERS_OUTPUT[LLAMA_SWAP if pooled else s.key]
            models[name] = dict(sorted({**(models[name] or {}), **s.answers}.items())) if pooled else s.answers
        out["models"] = models
        out["auth_required"] = {s.key: s.exposure.auth_required for s in self.services}
        out["sizing"] = self.plan.to_json()
        return out


def _service(spec: ContainerSpec, answers: Mapping[str, Any], after: tuple[str, ...] = (),
             downloads: tuple[DownloadSpec, ...] = ()) -> Service:
    (port,) = spec.ports
    return Service(spec.service, spec, Exposure(port.host_ip, port.external, spec.client_key), answers, after,
                   downloads)


def _loaded(downloads: tuple[DownloadSpec, ...], view: StackConfig, kind: str) -> tuple[DownloadSpec, ...]:
    """The downloads a `kind` service (llama-swap or the embedder) serving `view` loads: the files `view` declares
    for that kind, as the stack-wide specs (declaration order), so both targets download each file once."""
    files = {d.file for d in download_specs(view) if kind in d.services}
    return tuple(d for d in downloads if d.file in files)


def pool_llama_swap(pool: str) -> str:
    """The service key (and the kubernetes Service name) of the llama-swap on one pool."""
    return f"{POOL_LLAMA_SWAP_PREFIX}{pool}"


def _llama_swaps(cfg: StackConfig, placement: Placement | None) -> list[tuple[str | None, str, StackConfig]]:
    """(pool, service key, the config it serves) of each llama-swap: one for the whole stack on docker; on
    kubernetes one per pool that has models, serving only those (and keeping the embedder as its peer)."""
    if placement is None:
        return [(None, LLAMA_SWAP, cfg)]
    return [(pool, pool_llama_swap(pool), pool_view(cfg, placement, pool, with_embedding=True))
            for pool in placement.pools if placement.models_on(pool)]


def build_deployment(plan: Plan, secret_keys: frozenset[str], paths: RenderPaths = CONTAINER_PATHS) -> Deployment:
    """The one place the service set, start order, exposure and keys are decided. `secret_keys`: the stack's
    secret config keys (`api_key` among them turns on authentication for llama-swap and the embedding server).

    On kubernetes (`plan.placement`) each pool gets its own llama-swap and LiteLLM routes each model's names to the
    Service of the llama-swap that serves it; `placement` then says which pool each service runs on."""
    cfg = plan.config
    placement = plan.placement
    api_key = API_KEY in secret_keys
    services: list[Service] = []
    pools: dict[str, str] = {}
    urls: dict[str, str] = {}
    downloads = tuple(download_specs(cfg))
    for pool, key, view in _llama_swaps(cfg, placement):
        services.append(_service(llama_swap_spec(view, paths, api_key_enabled=api_key, service=key),
                                 llama_swap_answers(view), downloads=_loaded(downloads, view, LLAMA_SWAP)))
        if pool is not None:
            pools[key] = pool
            urls |= dict.fromkeys(view.models, f"http://{key}:{paths.llama_swap_port}")
    if cfg.embedding is not None:
        view = cfg
        if placement is not None and placement.embeddings is not None:
            pools[EMBEDDINGS] = placement.embeddings
            view = pool_view(cfg, placement, placement.embeddings, with_embedding=True)
        services.append(_service(embedding_spec(view, paths, api_key_enabled=api_key),
                                 embedding_answers(cfg, embedding_dimension(plan)),
                                 downloads=_loaded(downloads, cfg, EMBEDDINGS)))
    if cfg.litellm.enabled:
        if placement is not None and placement.litellm is not None:
            pools[LITELLM] = placement.litellm
        # LiteLLM discovers its backends' models when it starts: every other service first.
        spec = litellm_spec(cfg, paths, api_key_enabled=api_key, llama_swap_urls=urls or None)
        services.append(_service(spec, litellm_answers(cfg), after=tuple(s.key for s in services)))
    keys = dict.fromkeys(key for s in services for key in s.spec.secret_env.values())
    if placement is not None and DOWNLOAD_TOKEN_KEY in secret_keys and any(s.downloads for s in services):
        # Kubernetes' init containers read it like any container secret; the Docker target's downloads take it
        # (or the deploying shell's HF_TOKEN) beside the services, as the download resources' input.
        keys[DOWNLOAD_TOKEN_KEY] = None
    return Deployment(
        plan=plan,
        services=tuple(services),
        network=network_spec(cfg),
        models=ModelsVolume(cfg.models_dir, paths.models_dir),
        downloads=downloads,
        secret_keys=tuple(keys),
        placement=pools,
    )
