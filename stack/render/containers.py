"""Plain descriptions of the stack's containers and network: everything Pulumi needs, without Pulumi types.

Pure and deterministic, so what will be deployed can be tested without an engine. Secrets appear only as
names (environment variable → Pulumi config key); their values are wired in by `stack.targets.pulumi`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from models.config import StackConfig
from stack.render.litellm import LITELLM_MASTER_KEY_ENV, cloud_key_env, litellm_args, render_litellm_config
from stack.render.llama_swap import LLAMA_SWAP_API_KEY_ENV, llama_swap_argv, render_llama_swap_config
from stack.render.paths import (
    EMBEDDING_ALIAS,
    LITELLM_ALIAS,
    LLAMA_SWAP_ALIAS,
    RenderPaths,
)
from stack.render.server_args import embedding_argv

LABEL_PREFIX = "local-llm-stack"
CONFIG_HASH_LABEL = f"{LABEL_PREFIX}.config-hash"
SERVICE_LABEL = f"{LABEL_PREFIX}.service"

LLAMA_SWAP, EMBEDDINGS, LITELLM = "llama-swap", "embeddings", "litellm"
"""Service keys: the suffix of each container name and the key of each exported endpoint."""

API_KEY = "api_key"
"""The secret that, when set, guards llama-swap and the embedding server."""
LITELLM_MASTER_KEY = "litellm_master_key"

LLAMA_SERVER_API_KEY_ENV = "LLAMA_API_KEY"
"""llama-server reads its API key from this variable (no `_ARG_`); `/health` stays public."""

NVIDIA_ENV = {"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}
"""`utility` lets nvidia-smi work inside the container (llama-swap's GPU metrics)."""

LOG_DRIVER = "json-file"
LOG_OPTS = {"max-file": "3", "max-size": "50m"}
RESTART = "unless-stopped"

LLAMA_SWAP_STOP_S = 45
"""llama-swap needs up to ~30 s to stop every running llama-server before it exits."""


@dataclass(frozen=True)
class PortSpec:
    internal: int
    external: int
    host_ip: str
    protocol: str = "tcp"


@dataclass(frozen=True)
class MountSpec:
    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class NetworkAttachment:
    network: str
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class HealthcheckSpec:
    test: tuple[str, ...]
    interval_s: int
    timeout_s: int
    retries: int
    start_period_s: int


@dataclass(frozen=True)
class UploadSpec:
    path: str
    content: str


@dataclass(frozen=True)
class ContainerSpec:
    """One container. `secret_env` maps environment variable → Pulumi config secret key."""

    service: str
    name: str
    image: str
    entrypoint: tuple[str, ...]
    command: tuple[str, ...]
    env: Mapping[str, str]
    secret_env: Mapping[str, str]
    ports: tuple[PortSpec, ...]
    mounts: tuple[MountSpec, ...]
    networks: tuple[NetworkAttachment, ...]
    healthcheck: HealthcheckSpec
    labels: Mapping[str, str]
    gpu: bool
    gpu_device: str
    uploads: tuple[UploadSpec, ...]
    stop_timeout_s: int
    wait_timeout_s: int
    client_key: str | None = None
    """The secret config key whose value a client must send (None: the service is open); its variable is among
    `secret_env`."""
    restart: str = RESTART
    log_driver: str = LOG_DRIVER
    log_opts: Mapping[str, str] = field(default_factory=lambda: dict(LOG_OPTS))


@dataclass(frozen=True)
class NetworkSpec:
    """A plain bridge network: it must not be `internal`, or Docker would not publish the host ports."""

    name: str
    driver: str
    labels: Mapping[str, str]


def go_duration(seconds: int) -> str:
    """A duration as Go's `time.Duration.String` spells it (`300` → `5m0s`), the form Docker reports back.

    pulumi-docker compares the sent string with the one it reads back from the engine; `300s` would be read
    back as `5m0s`, and every preview would then propose to replace the container.
    """
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def config_hash(entrypoint: tuple[str, ...], command: tuple[str, ...], uploads: tuple[UploadSpec, ...]) -> str:
    """sha256 over what the process reads at start, so `docker inspect` shows which config is running."""
    doc = {
        "command": list(command),
        "entrypoint": list(entrypoint),
        "uploads": [[u.path, u.content] for u in sorted(uploads, key=lambda u: u.path)],
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def container_name(cfg: StackConfig, service: str) -> str:
    """Prefixed with the network name so two stacks on one host (different networks) do not collide."""
    return f"{cfg.network.name}-{service}"


def _curl_health(port: int, path: str = "/health") -> tuple[str, ...]:
    return ("CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{port}{path}")


def _python_health(port: int, path: str) -> tuple[str, ...]:
    """The LiteLLM image is not guaranteed to ship curl, but always ships Python; urlopen raises on HTTP >= 400."""
    code = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}{path}', timeout=5)"
    return ("CMD", "python3", "-c", code)


def _models_mount(cfg: StackConfig, paths: RenderPaths) -> tuple[MountSpec, ...]:
    return (MountSpec(source=cfg.models_dir, target=paths.models_dir, read_only=True),)


def _spec(
    cfg: StackConfig,
    service: str,
    alias: str,
    *,
    image: str,
    entrypoint: tuple[str, ...] = (),
    command: tuple[str, ...] = (),
    env: Mapping[str, str],
    secret_env: Mapping[str, str],
    port: tuple[int, int],
    mounts: tuple[MountSpec, ...],
    healthcheck: HealthcheckSpec,
    gpu: bool,
    uploads: tuple[UploadSpec, ...] = (),
    stop_timeout_s: int = 30,
    wait_timeout_s: int,
    client_key: str | None = None,
) -> ContainerSpec:
    clash = sorted(set(env) & set(secret_env))
    if clash:
        raise ValueError(f"{service}: environment variables {clash} are set both plainly and from secrets")
    full_env = {**(NVIDIA_ENV if gpu else {}), **env}
    labels = {
        CONFIG_HASH_LABEL: config_hash(entrypoint, command, uploads),
        SERVICE_LABEL: service,
    }
    return ContainerSpec(
        service=service,
        name=container_name(cfg, service),
        image=image,
        entrypoint=entrypoint,
        command=command,
        env=dict(sorted(full_env.items())),
        secret_env=dict(sorted(secret_env.items())),
        ports=(PortSpec(internal=port[0], external=port[1], host_ip=cfg.publish_address(service != LITELLM)),),
        mounts=mounts,
        networks=(NetworkAttachment(network=cfg.network.name, aliases=(alias,)),),
        healthcheck=healthcheck,
        labels=dict(sorted(labels.items())),
        gpu=gpu,
        gpu_device=cfg.gpu.device,
        uploads=uploads,
        stop_timeout_s=stop_timeout_s,
        wait_timeout_s=wait_timeout_s,
        client_key=client_key,
    )


def llama_swap_spec(cfg: StackConfig, paths: RenderPaths, *, api_key_enabled: bool,
                    service: str = LLAMA_SWAP) -> ContainerSpec:
    """`service`: the service key, `llama-swap` unless there are several (one per kubernetes pool)."""
    config = render_llama_swap_config(cfg, paths, api_key_enabled=api_key_enabled)
    return _spec(
        cfg,
        service,
        LLAMA_SWAP_ALIAS if service == LLAMA_SWAP else service,
        image=cfg.images.llama_swap,
        entrypoint=tuple(llama_swap_argv(paths)),
        env={},
        secret_env={LLAMA_SWAP_API_KEY_ENV: API_KEY} if api_key_enabled else {},
        client_key=API_KEY if api_key_enabled else None,
        port=(paths.llama_swap_port, cfg.ports.llama_swap),
        mounts=_models_mount(cfg, paths),
        healthcheck=HealthcheckSpec(_curl_health(paths.llama_swap_port), 10, 5, 3, 30),
        gpu=not cfg.gpu.cpu_only,
        uploads=(UploadSpec(paths.llama_swap_config, config),),
        stop_timeout_s=LLAMA_SWAP_STOP_S,
        wait_timeout_s=180,
    )


def embedding_spec(cfg: StackConfig, paths: RenderPaths, *, api_key_enabled: bool) -> ContainerSpec:
    emb = cfg.embedding
    if emb is None:
        raise ValueError("embedding_spec needs an enabled embeddings block")
    load_s = cfg.llama_swap.health_check_timeout
    return _spec(
        cfg,
        EMBEDDINGS,
        EMBEDDING_ALIAS,
        image=cfg.images.llama_server,
        entrypoint=tuple(embedding_argv(emb, paths, cpu_only=cfg.gpu.cpu_only)),
        env={},
        secret_env={LLAMA_SERVER_API_KEY_ENV: API_KEY} if api_key_enabled else {},
        client_key=API_KEY if api_key_enabled else None,
        port=(paths.embedding_port, cfg.ports.embeddings),
        mounts=_models_mount(cfg, paths),
        healthcheck=HealthcheckSpec(_curl_health(paths.embedding_port), 10, 5, 3, load_s),
        gpu=not cfg.gpu.cpu_only,
        wait_timeout_s=load_s + 120,
    )


def litellm_spec(cfg: StackConfig, paths: RenderPaths, *, api_key_enabled: bool,
                 llama_swap_urls: Mapping[str, str] | None = None) -> ContainerSpec:
    """`llama_swap_urls`: model id -> the llama-swap serving it, when there are several (render_litellm_config)."""
    config = render_litellm_config(cfg, paths, api_key_enabled=api_key_enabled, llama_swap_urls=llama_swap_urls)
    secret_env = {LITELLM_MASTER_KEY_ENV: LITELLM_MASTER_KEY}
    if api_key_enabled:
        secret_env[LLAMA_SWAP_API_KEY_ENV] = API_KEY
    for key in cfg.cloud_secret_keys():
        env_name = cloud_key_env(key)
        if env_name in secret_env:
            raise ValueError(f"cloud key secret {key!r} would overwrite {env_name}; rename the secret")
        secret_env[env_name] = key
    return _spec(
        cfg,
        LITELLM,
        LITELLM_ALIAS,
        image=cfg.images.litellm,
        command=tuple(litellm_args(paths)),
        env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "INFO", "LITELLM_MODE": "PRODUCTION"},
        secret_env=secret_env,
        port=(paths.litellm_port, cfg.ports.litellm),
        mounts=(),
        healthcheck=HealthcheckSpec(_python_health(paths.litellm_port, "/health/liveliness"), 15, 10, 3, 60),
        gpu=False,
        uploads=(UploadSpec(paths.litellm_config, config),),
        wait_timeout_s=300,
        client_key=LITELLM_MASTER_KEY,
    )


def host_url(address: str, port: int) -> str:
    """URL of a published port as seen from the Docker host; IPv6 addresses get brackets."""
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}"


def network_spec(cfg: StackConfig) -> NetworkSpec:
    return NetworkSpec(name=cfg.network.name, driver="bridge", labels={f"{LABEL_PREFIX}.managed": "true"})
