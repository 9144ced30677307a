"""`LocalLlmStack`: the network plus one component per deployed service, from a validated config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from models.config import StackConfig
from stack.components.container import EmbeddingServer, LiteLLMProxy, LlamaSwap, ServiceContainer
from stack.components.model_download import ModelDownload, checked_models_digest
from stack.components.network import StackNetwork
from stack.container_specs import (
    EMBEDDINGS,
    LITELLM,
    LLAMA_SWAP,
    ContainerSpec,
    build_container_specs,
    endpoints,
    network_spec,
)
from stack.download_specs import MODELS_LABEL, DownloadSpec, download_specs
from stack.http_client import origin

SERVICE_TYPES: dict[str, type[ServiceContainer]] = {
    LLAMA_SWAP: LlamaSwap,
    EMBEDDINGS: EmbeddingServer,
    LITELLM: LiteLLMProxy,
}


def secret_env_for(spec: ContainerSpec, secrets: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
    """Environment variable → secret value, looked up by the config key each variable names."""
    missing = sorted({key for key in spec.secret_env.values() if key not in secrets})
    if missing:
        raise ValueError(f"{spec.service} needs the secrets {missing}: pulumi config set --secret <key> <value>")
    return {env: secrets[key] for env, key in spec.secret_env.items()}


class LocalLlmStack(pulumi.ComponentResource):
    """Everything one stack deploys; specs and secrets are checked before anything is registered.

    `secrets` maps config keys (`api_key`, `litellm_master_key`, cloud key names) to secret Outputs; the
    presence of `api_key` turns on authentication for llama-swap and the embedding server.

    Every declared file with a `source` gets a `ModelDownload` (run on the Docker host, `docker_host` and
    `ssh_opts` as pulumi-docker reaches it, with `hf_token` when given); each service container waits for the
    downloads of the files it loads and carries their digest as a label, so a changed file replaces it.
    """

    network: StackNetwork
    services: dict[str, ServiceContainer]
    downloads: dict[str, ModelDownload]
    endpoints: dict[str, str]
    container_names: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        secrets: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
        *,
        docker_host: str | None = None,
        ssh_opts: Sequence[str] = (),
        hf_token: pulumi.Input[str] | None = None,
    ) -> None:
        specs = build_container_specs(cfg, api_key_enabled="api_key" in secrets)
        secret_envs = [secret_env_for(spec, secrets) for spec in specs]
        wanted = download_specs(cfg)
        super().__init__("local-llm-stack:index:LocalLlmStack", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = StackNetwork(f"{name}-net", network_spec(cfg), opts=child)
        self.downloads = {}
        if wanted:
            image = docker.RemoteImage(f"{name}-downloader-image", name=cfg.images.downloader, keep_locally=True,
                                       opts=child)
            for dl in wanted:
                self.downloads[dl.file] = ModelDownload(
                    f"{name}-model-{dl.slug}", dl, models_dir=cfg.models_dir, image=image.image_id,
                    container_name=f"{cfg.network.name}-download-{dl.slug}", docker_host=docker_host,
                    ssh_opts=ssh_opts, token=hf_token, token_origin=origin(cfg.hf_endpoint),
                    delete_on_destroy=cfg.downloads.delete_on_destroy, stall_timeout_s=cfg.downloads.stall_timeout_s,
                    opts=child,
                )
        self.services = {}
        for spec, secret_env in zip(specs, secret_envs, strict=True):
            # LiteLLM discovers its backends' models at start; let them exist first.
            upstream: list[pulumi.Resource] = list(self.services.values()) if spec.service == LITELLM else []
            files = self._downloads_of(wanted, spec.service)
            labels = {MODELS_LABEL: _models_label(files)} if files else {}
            self.services[spec.service] = SERVICE_TYPES[spec.service](
                f"{name}-{spec.service}",
                spec,
                self.network.network_id,
                secret_env,
                opts=child,
                depends_on=[*upstream, *files],
                extra_labels=labels,
            )
        self.endpoints = endpoints(cfg)
        self.container_names = {key: svc.container_name for key, svc in self.services.items()}
        self.register_outputs({"endpoints": self.endpoints, "container_names": self.container_names})

    def _downloads_of(self, wanted: list[DownloadSpec], service: str) -> list[ModelDownload]:
        return [self.downloads[dl.file] for dl in wanted if service in dl.services]


def _models_label(downloads: list[ModelDownload]) -> pulumi.Output[str]:
    results = [pulumi.Output.all(d.file, d.ok, d.error, d.sha256) for d in downloads]
    return pulumi.Output.all(*results).apply(checked_models_digest)
