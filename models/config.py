"""Pydantic schema of one stack: every key of `Pulumi.<stack>.yaml` that this project reads.

Every model forbids unknown keys: llama-swap and LiteLLM silently ignore a misspelt key, so a
typo such as `ctx_szie` would otherwise deploy a default nobody asked for. Cross-field checks
raise errors that start with the key path they concern, so the message names what to fix.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from models.gpu_profiles import GPU_PROFILES
from models.server_flags import MANAGED_FLAGS as MANAGED_FLAGS
from models.server_flags import extra_args_problems
from models.sources import HF_ENDPOINT, HfEndpoint, ModelSource, conflicting_sources, source_problems
from models.values import (
    ArgvItem,
    CatalogRef,
    HostDir,
    HttpUrl,
    ImageRef,
    Name,
    ProviderModel,
    RelativeModelPath,
    Text,
    TopLevelBool,
    free_text,
    matching,
)

ModelId = Name


def key_errors(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """An error that carries (key path relative to the model, message) pairs for the loader to expand."""
    summary = "; ".join(f"{path}: {msg}" for path, msg in problems)
    return PydanticCustomError("invalid_keys", "{summary}", {"summary": summary, "problems": problems})


MAX_MIB = 1 << 20
"""1 TiB: no GPU or model file comes near it; larger figures are typos (`1e23`) that would swamp the gate."""
ARCH_LIMITS = {"n_layer": 512, "n_embd": 1 << 17, "n_head": 1 << 12, "head_dim": 1 << 14, "n_ff": 1 << 20,
               "n_vocab": 1 << 21, "n_ctx": 1 << 26}
"""The GGUF reader's bounds (stack/arch/gguf_rules.py), for hyperparameters given as an `arch` block: llama.cpp's own
limit on layers, the rest several times the largest released model's, so only a typo reaches them (n_layer 1e8
would be sized layer by layer for minutes)."""
MAX_TTL_S = 365 * 24 * 3600
"""llama-swap's `ttl` is whole seconds; a year is already 'never unload' (0 says that directly)."""


def _on_off(value: object) -> object:
    """YAML 1.1 (PyYAML, and Pulumi's reader) reads an unquoted `on`/`off` as a boolean; map it back."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class CacheType(StrEnum):
    """KV cache element types llama-server accepts for `-ctk`/`-ctv`."""

    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    q8_0 = "q8_0"
    q5_1 = "q5_1"
    q5_0 = "q5_0"
    q4_1 = "q4_1"
    q4_0 = "q4_0"
    iq4_nl = "iq4_nl"

    @property
    def quantized(self) -> bool:
        return self not in (CacheType.f32, CacheType.f16, CacheType.bf16)


class GpuConfig(Strict):
    """The GPU the stack runs on; `profile` fills the figures a key does not set."""

    profile: str = "rtx-5080"
    name: Annotated[StrictStr, free_text(256)] | None = None
    vram_mib: Annotated[StrictInt, Field(ge=0, le=MAX_MIB)] | None = None
    reserve_mib: Annotated[StrictInt, Field(ge=0, le=MAX_MIB)] | None = None
    overhead_mib: Annotated[StrictInt, Field(ge=0, le=MAX_MIB)] | None = None
    device: Annotated[StrictStr, matching(r"all|device=[A-Za-z0-9-]+", "use all or device=<GPU index or UUID>")] = "all"

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        if v not in GPU_PROFILES:
            raise ValueError(f"unknown GPU profile {v!r}; expected one of {sorted(GPU_PROFILES)}")
        return v

    @property
    def cpu_only(self) -> bool:
        return self.profile == "cpu"

    @property
    def resolved_name(self) -> str:
        return self.name or GPU_PROFILES[self.profile].name

    @property
    def resolved_vram_mib(self) -> int:
        return self.vram_mib if self.vram_mib is not None else GPU_PROFILES[self.profile].vram_mib

    @property
    def resolved_reserve_mib(self) -> int:
        if self.reserve_mib is not None:
            return self.reserve_mib
        return GPU_PROFILES[self.profile].reserve_mib

    @property
    def resolved_overhead_mib(self) -> int:
        if self.overhead_mib is not None:
            return self.overhead_mib
        return GPU_PROFILES[self.profile].overhead_mib

    @property
    def budget_mib(self) -> int:
        return self.resolved_vram_mib - self.resolved_reserve_mib

    @model_validator(mode="after")
    def _budget_positive(self) -> Self:
        if not self.cpu_only and self.budget_mib <= 0:
            raise key_errors([(
                "reserve_mib",
                f"{self.resolved_reserve_mib} leaves no VRAM of {self.resolved_vram_mib} MiB; "
                "lower reserve_mib or raise vram_mib",
            )])
        return self


class ArchConfig(Strict):
    """Hyperparameters for a model whose GGUF is not readable where `plan` runs.

    Take them from the model's config.json or GGUF metadata; `weights_mib` is the GGUF size.
    """

    n_layer: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["n_layer"])]
    n_embd: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["n_embd"])]
    n_head: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["n_head"])]
    n_head_kv: Annotated[StrictInt, Field(ge=0, le=ARCH_LIMITS["n_head"])]
    head_dim: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["head_dim"])]
    n_ff: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["n_ff"])]
    n_vocab: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["n_vocab"])]
    weights_mib: Annotated[StrictFloat, Field(gt=0, le=MAX_MIB, allow_inf_nan=False)]
    tied_embeddings: StrictBool = False
    n_ctx_train: Annotated[StrictInt, Field(gt=0, le=ARCH_LIMITS["n_ctx"])] | None = None
    sliding_window: Annotated[StrictInt, Field(ge=0, le=ARCH_LIMITS["n_ctx"])] = 0
    sliding_window_pattern: Annotated[StrictInt, Field(ge=0, le=ARCH_LIMITS["n_layer"])] = 0
    causal: StrictBool = True

    @model_validator(mode="after")
    def _gqa(self) -> Self:
        if self.n_head_kv > self.n_head:
            raise key_errors([("n_head_kv", f"{self.n_head_kv} cannot exceed n_head ({self.n_head})")])
        return self


def _check_no_macro(v: str) -> str:
    if "${" in v:
        raise ValueError(f"{v!r} contains '${{', which llama-swap would read as a macro")
    return v


def _check_source(file: str, source: ModelSource | None) -> None:
    problems = source_problems(file, source)
    if problems:
        raise key_errors(problems)


def _check_extra_args(v: list[str]) -> list[str]:
    """Refuse what llama-server would reject at start or what would change what the gate sized; the option table
    and its reviewed classes are models/server_options.py and models/server_flags.py."""
    problems = extra_args_problems(v)
    if problems:
        raise key_errors(problems)
    return v


class ServerSettings(Strict):
    """llama-server settings shared by llama-swap models and the embedding server."""

    file: RelativeModelPath
    ctx_size: Annotated[StrictInt, Field(gt=0, le=4_194_304)]
    parallel: Annotated[StrictInt, Field(ge=1, le=256)] = 1
    cache_type_k: CacheType = CacheType.f16
    cache_type_v: CacheType = CacheType.f16
    flash_attn: Annotated[Literal["on", "off"], BeforeValidator(_on_off)] = "on"
    ubatch: Annotated[StrictInt, Field(ge=1, le=65536)] = 512
    batch: Annotated[StrictInt, Field(ge=1, le=65536)] = 2048
    kv_unified: StrictBool = False
    n_gpu_layers: Annotated[StrictInt, Field(ge=0, le=999)] = 999
    arch: ArchConfig | None = None
    catalog: CatalogRef | None = None
    source: ModelSource | None = None
    extra_args: list[ArgvItem] = Field(default_factory=list)

    @field_validator("extra_args")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        return _check_extra_args(v)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.cache_type_v.quantized and self.flash_attn == "off":
            problems.append((
                "cache_type_v",
                f"{self.cache_type_v.value} needs flash_attn: on "
                "(llama.cpp refuses a quantized V cache without flash attention); use f16 or turn flash_attn on",
            ))
        if self.ubatch > self.batch:
            problems.append(("ubatch", f"{self.ubatch} is larger than batch ({self.batch}); lower ubatch"))
        if problems:
            raise key_errors(problems)
        return self

    @model_validator(mode="after")
    def _source(self) -> Self:
        _check_source(self.file, self.source)
        return self


class DraftConfig(Strict):
    """A draft model for speculative decoding, loaded in the same process (`-md`).

    Its context has the main model's size and slots; each slot reserves outputs for `n_max` drafted tokens.
    """

    file: RelativeModelPath
    n_max: Annotated[StrictInt, Field(ge=1, le=64)] = 3
    n_gpu_layers: Annotated[StrictInt, Field(ge=0, le=999)] = 999
    cache_type_k: CacheType = CacheType.f16
    cache_type_v: CacheType = CacheType.f16
    arch: ArchConfig | None = None
    catalog: CatalogRef | None = None
    source: ModelSource | None = None

    @model_validator(mode="after")
    def _source(self) -> Self:
        _check_source(self.file, self.source)
        return self


class MmprojConfig(Strict):
    """A multimodal projector (`--mmproj`); on the GPU unless `offload` is false."""

    file: RelativeModelPath
    offload: StrictBool = True
    weights_mib: Annotated[StrictFloat, Field(gt=0, le=MAX_MIB, allow_inf_nan=False)] | None = None
    """The projector's tensor size when its GGUF is not readable where `plan` runs."""
    source: ModelSource | None = None

    @model_validator(mode="after")
    def _source(self) -> Self:
        _check_source(self.file, self.source)
        return self


class ModelConfig(ServerSettings):
    """One llama-swap model: a llama-server process started on demand."""

    draft: DraftConfig | None = None
    mmproj: MmprojConfig | None = None
    ttl: Annotated[StrictInt, Field(ge=0, le=MAX_TTL_S)] = 0
    aliases: list[ModelId] = Field(default_factory=list)
    jinja: StrictBool = False
    swa_full: StrictBool = False
    description: Text = ""
    concurrency_limit: Annotated[StrictInt, Field(ge=1, le=1024)] = 10


class EmbeddingConfig(ServerSettings):
    """The always-on embedding llama-server, in its own container."""

    enabled: StrictBool = True
    name: ModelId = "embed"
    aliases: list[ModelId] = Field(default_factory=list)
    ctx_size: Annotated[StrictInt, Field(gt=0, le=4_194_304)] = 2048
    ubatch: Annotated[StrictInt, Field(ge=1, le=65536)] = 2048
    pooling: Literal["mean", "cls", "last", "rank"] | None = None


class GroupConfig(Strict):
    """A llama-swap group (v250 semantics)."""

    swap: StrictBool = True
    exclusive: StrictBool = True
    persistent: StrictBool = False
    members: Annotated[list[ModelId], Field(min_length=1)]


MATRIX_VAR = matching(r"[A-Za-z0-9]{1,8}", "use 1 to 8 letters or digits")


class MatrixConfig(Strict):
    """llama-swap's matrix router: each set lists models that may be loaded together.

    A request loads its model and evicts whatever lies outside the cheapest set that contains it;
    a model in no set runs alone. `groups: auto` produces one of these from the sizing.
    """

    sets: Annotated[dict[Annotated[StrictStr, MATRIX_VAR], list[ModelId]], Field(min_length=1)]
    evict_costs: dict[ModelId, Annotated[StrictInt, Field(ge=1)]] = Field(default_factory=dict)


class ImagesConfig(Strict):
    """Pinned image references: a tag other than `latest`, or a digest."""

    llama_swap: ImageRef = "ghcr.io/mostlygeek/llama-swap:v250-cuda-b11434"
    llama_server: ImageRef = "ghcr.io/ggml-org/llama.cpp:server-cuda-b11434"
    litellm: ImageRef = "ghcr.io/berriai/litellm:v1.106.12-stable"
    downloader: ImageRef = "docker.io/library/python:3.12.8-slim-bookworm"
    """Runs the model downloads of `pulumi up` on the Docker host: any image with Python 3.11 or later."""


class DownloadsConfig(Strict):
    """The model downloads `pulumi up` runs on the Docker host for files with a `source`."""

    delete_on_destroy: StrictBool = False
    """`pulumi destroy` keeps downloaded models unless this is true (then it removes the files it downloaded)."""
    stall_timeout_s: Annotated[StrictInt, Field(ge=5, le=3600)] = 30
    """A transfer with under 64 KiB in this many seconds fails (and resumes at the next `pulumi up`)."""


class PortsConfig(Strict):
    llama_swap: Annotated[StrictInt, Field(ge=1, le=65535)] = 9292
    embeddings: Annotated[StrictInt, Field(ge=1, le=65535)] = 8081
    litellm: Annotated[StrictInt, Field(ge=1, le=65535)] = 4000

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        seen: dict[int, str] = {}
        for key in type(self).model_fields:
            port = getattr(self, key)
            if port in seen:
                raise key_errors([(key, f"port {port} is already used by ports.{seen[port]}")])
            seen[port] = key
        return self


class NetworkConfig(Strict):
    name: Annotated[StrictStr, matching(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}",
        "use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit",
    )] = "llm"


class LlamaSwapConfig(Strict):
    health_check_timeout: Annotated[StrictInt, Field(ge=15, le=3600)] = 300
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    start_port: Annotated[StrictInt, Field(ge=1024, le=65000)] = 5800


class CloudFallback(Strict):
    """A cloud deployment LiteLLM falls back to when a local model fails."""

    name: ModelId
    model: ProviderModel = Field(description="LiteLLM provider/model, e.g. openai/gpt-4o-mini")
    api_key_secret: Annotated[StrictStr, matching(
        r"[a-z][a-z0-9_]{0,63}", "use lowercase letters, digits and '_', starting with a letter (e.g. openai_api_key)"
    )]
    api_base: HttpUrl | None = None
    """Credentials in it are refused: LiteLLM's config file is readable in its container; use api_key_secret."""
    fallback_for: list[ModelId] = Field(default_factory=list)


class LiteLLMConfig(Strict):
    enabled: StrictBool = False
    fallbacks: list[CloudFallback] = Field(default_factory=list)
    timeout_s: Annotated[StrictInt, Field(ge=1, le=7200)] = 600
    stream_timeout_s: Annotated[StrictInt, Field(ge=1, le=7200)] = 600
    num_retries: Annotated[StrictInt, Field(ge=0, le=10)] = 1


DNS_LABEL = matching(
    r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
    "use 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit", "a DNS-1123 label")
DNS_SUBDOMAIN = matching(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
    "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (253 at most)",
    "a DNS-1123 subdomain")
POOL_NAME = matching(
    r"[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?",
    "use 1 to 52 lowercase letters, digits or '-', starting and ending with a letter or digit "
    "(the pool's llama-swap Service is llama-swap-<pool>, at most 63 characters)", "a pool name")
LABEL_KEY = matching(
    r"((?=[^/]{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?",
    "use [prefix/]name: an optional DNS subdomain and '/', then 1 to 63 letters, digits, '-', '_' or '.' "
    "(e.g. nvidia.com/gpu.product)", "a Kubernetes label key")
LABEL_VALUE = matching(
    r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?",
    "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
    "a Kubernetes label value")
RESERVED_PLACEMENT = ("embeddings", "litellm")
"""Placement keys that name the embedding server and LiteLLM rather than a group or model."""


class Toleration(Strict):
    """A pod toleration (`spec.tolerations[]`), so the pods may run on tainted GPU nodes."""

    key: Annotated[StrictStr, LABEL_KEY] | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Annotated[StrictStr, LABEL_VALUE] | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.operator == "Exists" and self.value is not None:
            raise key_errors([("value", "operator Exists matches any value; remove value or use operator: Equal")])
        if self.key is None and self.operator != "Exists":
            raise key_errors([("operator", "a toleration without a key must use operator: Exists; add a key")])
        return self


class NewClaim(Strict):
    """A PersistentVolumeClaim the stack creates; `size_gib` defaults to what the sizing report says the files
    need."""

    storage_class: Annotated[StrictStr, DNS_SUBDOMAIN] | None = None
    size_gib: Annotated[StrictInt, Field(ge=1, le=1 << 20)] | None = None


class ModelsVolumeConfig(Strict):
    """Where the serving pods read the GGUF files (read-only): exactly one of the three."""

    existing_claim: Annotated[StrictStr, DNS_SUBDOMAIN] | None = None
    new_claim: NewClaim | None = None
    host_path: HostDir | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [k for k in ("existing_claim", "new_claim", "host_path") if getattr(self, k) is not None]
        if len(given) != 1:
            shown = ", ".join(given) if given else "none"
            raise ValueError(f"set exactly one of existing_claim, new_claim or host_path (got {shown}); keep one")
        return self

    @property
    def kind(self) -> Literal["existing_claim", "new_claim", "host_path"]:
        if self.existing_claim is not None:
            return "existing_claim"
        return "new_claim" if self.new_claim is not None else "host_path"


class PoolConfig(Strict):
    """A GPU node pool: how its pods are scheduled there and the GPU each llama-swap or embedder pod gets."""

    node_selector: dict[Annotated[StrictStr, LABEL_KEY], Annotated[StrictStr, LABEL_VALUE]] = Field(
        default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    runtime_class: Annotated[StrictStr, DNS_SUBDOMAIN] | None = None
    gpu: GpuConfig = Field(default_factory=lambda: GpuConfig())
    gpus_per_node: Annotated[StrictInt, Field(ge=1, le=64)] = 1

    @model_validator(mode="after")
    def _gpu(self) -> Self:
        if self.gpu.cpu_only:
            raise key_errors([("gpu.profile", "a pool is a GPU node pool; pick a GPU profile (see "
                                              "models/gpu_profiles.py) or remove the pool")])
        if "device" in self.gpu.model_fields_set:
            raise key_errors([("gpu.device", "on Kubernetes the device plugin picks the GPU (nvidia.com/gpu: 1); "
                                             "remove device")])
        return self


class KubernetesConfig(Strict):
    """The `kubernetes` target: namespace, models volume, GPU pools and what runs on which pool."""

    namespace: Annotated[StrictStr, DNS_LABEL] = "local-llm-stack"
    models_volume: ModelsVolumeConfig | None = None
    """None: a hostPath volume at `models_dir` on every node."""
    pools: dict[Annotated[StrictStr, POOL_NAME], PoolConfig]
    placement: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    """Group name (or id of a model in no group), `embeddings` or `litellm` -> pool; the rest go to the first pool."""

    @field_validator("pools")
    @classmethod
    def _some_pool(cls, v: dict[str, PoolConfig]) -> dict[str, PoolConfig]:
        if not v:
            raise ValueError("add at least one GPU pool, e.g. rtx5080: {gpu: {profile: rtx-5080}}")
        return v

    @property
    def first_pool(self) -> str:
        return next(iter(self.pools))


SECRET_KEYS = ("api_key", "litellm_master_key", "hf_token")
RESERVED_ENV = frozenset({"LLAMA_SWAP_API_KEY", "LITELLM_MASTER_KEY", "LLAMA_API_KEY"})
"""Config keys that must be Pulumi secrets (`pulumi config set --secret`); cloud keys are named per fallback."""


class StackConfig(Strict):
    """The whole stack: what `pulumi up` deploys and `python -m stack plan` checks."""

    target: Literal["docker", "kubernetes"] = "docker"
    """docker: one GPU host; kubernetes: the `kubernetes` block's pools."""
    kubernetes: KubernetesConfig | None = None
    gpu: GpuConfig = Field(default_factory=lambda: GpuConfig())
    models_dir: HostDir
    hf_endpoint: HfEndpoint = HF_ENDPOINT
    """Where Hugging Face `source`s are read from: the hub, or a mirror serving its `resolve` layout."""
    bind_address: str = "127.0.0.1"
    expose_unauthenticated: TopLevelBool = False
    """Accept llama-swap and the embedding server on a non-loopback `bind_address` with no `api_key` and no LiteLLM."""
    network: NetworkConfig = Field(default_factory=lambda: NetworkConfig())
    ports: PortsConfig = Field(default_factory=lambda: PortsConfig())
    images: ImagesConfig = Field(default_factory=lambda: ImagesConfig())
    llama_swap: LlamaSwapConfig = Field(default_factory=lambda: LlamaSwapConfig())
    models: Annotated[dict[ModelId, ModelConfig], Field(min_length=1)]
    groups: dict[ModelId, GroupConfig] | Literal["auto"] = Field(default_factory=dict)
    matrix: MatrixConfig | None = None
    embeddings: EmbeddingConfig | None = None
    litellm: LiteLLMConfig = Field(default_factory=lambda: LiteLLMConfig())
    downloads: DownloadsConfig = Field(default_factory=lambda: DownloadsConfig())

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, v: str) -> str:
        try:
            if "%" in v:
                raise ValueError("scope id")
            ipaddress.ip_address(v)
        except ValueError:
            msg = f"{v!r} is not an IP address; use 127.0.0.1 (default) or the address to publish on"
            raise ValueError(msg) from None
        return v

    @property
    def bind_is_loopback(self) -> bool:
        return ipaddress.ip_address(self.bind_address).is_loopback

    def publish_address(self, behind_litellm: bool) -> str:
        """Where a service's port is published: `bind_address`, except that with LiteLLM on and a non-loopback
        bind_address only LiteLLM is published there; the services behind it stay on loopback, so its master key
        cannot be bypassed."""
        if behind_litellm and self.litellm.enabled and not self.bind_is_loopback:
            return "127.0.0.1"
        return self.bind_address

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        errors = self._group_errors() + self._name_errors() + self._fallback_errors() + conflicting_sources(self)
        errors += self._kubernetes_errors()
        if errors:
            raise key_errors(errors)
        return self

    def _group_errors(self) -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        if self.matrix is not None:
            if self.groups:
                errors.append(("matrix", "groups and matrix cannot both be set (llama-swap refuses it); keep one"))
            known = sorted(self.models)
            for sid, members in self.matrix.sets.items():
                for i, member in enumerate(members):
                    if member not in self.models:
                        errors.append((f"matrix.sets.{sid}[{i}]", f"unknown model {member!r}; known: {known}"))
            for mid in self.matrix.evict_costs:
                if mid not in self.models:
                    errors.append((f"matrix.evict_costs.{mid}", f"unknown model {mid!r}; known: {known}"))
        owner: dict[str, str] = {}
        for gid, group in self.explicit_groups.items():
            for i, member in enumerate(group.members):
                where = f"groups.{gid}.members[{i}]"
                if member not in self.models:
                    errors.append((where, f"unknown model {member!r}; known models: {sorted(self.models)}"))
                elif member in owner:
                    errors.append((where, f"model {member!r} is already in groups.{owner[member]}; keep it in one"))
                else:
                    owner[member] = gid
        return errors

    def _name_errors(self) -> list[tuple[str, str]]:
        """Model ids, aliases and fallback names share one namespace in llama-swap and LiteLLM."""
        errors: list[tuple[str, str]] = []
        names: dict[str, str] = {mid: f"models.{mid}" for mid in self.models}

        def claim(name: str, where: str) -> None:
            if name in names:
                errors.append((where, f"{name!r} is already {names[name]}; pick another name"))
            else:
                names[name] = where

        embedding = self.embedding
        if embedding is not None:
            claim(embedding.name, "embeddings.name")
        for mid, model in self.models.items():
            for i, alias in enumerate(model.aliases):
                claim(alias, f"models.{mid}.aliases[{i}]")
        if embedding is not None:
            for i, alias in enumerate(embedding.aliases):
                claim(alias, f"embeddings.aliases[{i}]")
        for i, fb in enumerate(self.litellm.fallbacks):
            claim(fb.name, f"litellm.fallbacks[{i}].name")
        return errors

    def _fallback_errors(self) -> list[tuple[str, str]]:
        errors: list[tuple[str, str]] = []
        local = set(self.models)
        if self.embedding is not None:
            local.add(self.embedding.name)
        for i, fb in enumerate(self.litellm.fallbacks):
            for j, target in enumerate(fb.fallback_for):
                if target not in local:
                    errors.append((
                        f"litellm.fallbacks[{i}].fallback_for[{j}]",
                        f"unknown model {target!r}; known models: {sorted(local)}",
                    ))
            if fb.api_key_secret.upper() in RESERVED_ENV:
                errors.append((
                    f"litellm.fallbacks[{i}].api_key_secret",
                    f"{fb.api_key_secret!r} becomes env var {fb.api_key_secret.upper()}, which the stack sets itself; "
                    "pick another name",
                ))
            elif fb.api_key_secret in SECRET_KEYS:
                errors.append((
                    f"litellm.fallbacks[{i}].api_key_secret",
                    f"{fb.api_key_secret!r} is reserved; name the cloud key's own secret, e.g. openai_api_key",
                ))
        return errors

    def _kubernetes_errors(self) -> list[tuple[str, str]]:
        k8s = self.kubernetes
        if self.target == "docker":
            if k8s is None:
                return []
            return [("kubernetes", "only the kubernetes target reads this block; set target: kubernetes, or remove "
                                   "the block")]
        if k8s is None:
            return [("kubernetes", "required when target is kubernetes: add a kubernetes block with at least one "
                                   "pool (see Pulumi.k8s.yaml)")]
        errors: list[tuple[str, str]] = []
        if "gpu" in self.model_fields_set:
            errors.append(("gpu", "with target kubernetes each pool has its own GPU; put it under "
                                  "kubernetes.pools.<pool>.gpu instead"))
        grouped = {m: gid for gid, g in self.explicit_groups.items() for m in g.members}
        pools = sorted(k8s.pools)
        for key, pool in k8s.placement.items():
            where = f"kubernetes.placement.{key}"
            if pool not in k8s.pools:
                errors.append((where, f"unknown pool {pool!r}; known pools: {pools}"))
            if key in RESERVED_PLACEMENT:
                if key in self.models or key in self.explicit_groups:
                    errors.append((where, f"{key!r} names both the {key} service and a model or group; rename the "
                                          "model or group"))
                elif key == "embeddings" and self.embedding is None:
                    errors.append((where, "no embedding server is deployed; remove the key or enable embeddings"))
                elif key == "litellm" and not self.litellm.enabled:
                    errors.append((where, "LiteLLM is not enabled; remove the key or set litellm.enabled: true"))
            elif key in self.explicit_groups:
                if key in self.models and grouped.get(key) != key:
                    errors.append((where, f"{key!r} names both groups.{key} and models.{key}; rename the group"))
            elif key in grouped:
                errors.append((where, f"model {key!r} is in groups.{grouped[key]}; place the group instead "
                                      f"(placement.{grouped[key]})"))
            elif key not in self.models:
                known = sorted({*self.explicit_groups, *self.models, *RESERVED_PLACEMENT} - set(grouped))
                errors.append((where, f"unknown group or model {key!r}; use one of {known}"))
        return errors

    @property
    def embedding(self) -> EmbeddingConfig | None:
        """The embedding server when it is deployed."""
        return self.embeddings if self.embeddings is not None and self.embeddings.enabled else None

    @property
    def explicit_groups(self) -> dict[str, GroupConfig]:
        """The configured groups; empty for `groups: auto` until the sizing resolves it into a matrix."""
        return {} if self.groups == "auto" else self.groups

    def cloud_secret_keys(self) -> list[str]:
        return sorted({fb.api_key_secret for fb in self.litellm.fallbacks}) if self.litellm.enabled else []

