"""`LocalLlmStack`: the network plus one component per deployed service, from a validated config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from stack.deployment import Deployment
from stack.fetch.http_client import origin
from stack.render.containers import EMBEDDINGS, LITELLM, LLAMA_SWAP, ContainerSpec
from stack.render.downloads import MODELS_LABEL
from stack.targets.pulumi.container import EmbeddingServer, LiteLLMProxy, LlamaSwap, ServiceContainer
from stack.targets.pulumi.model_download import ModelDownload, checked_models_digest
from stack.targets.pulumi.network import StackNetwork

SERVICE_TYPES: dict[str, type[ServiceContainer]] = {
    # component types named before there was a generic one; kept so existing stacks keep their URNs
    LLAMA_SWAP: LlamaSwap,
    EMBEDDINGS: EmbeddingServer,
    LITELLM: LiteLLMProxy,
}


def secret_env_for(spec: ContainerSpec, secrets: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
    """Environment variable → secret value, looked up by the config key each variable names."""
    return {env: secrets[key] for env, key in spec.secret_env.items()}


class LocalLlmStack(pulumi.ComponentResource):
    """A `Deployment` as pulumi-docker resources; specs and secrets are checked before anything is registered.

    `secrets` maps the deployment's secret config keys (`api_key`, `litellm_master_key`, cloud key names) to
    secret Outputs.

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
        deployment: Deployment,
        secrets: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
        *,
        docker_host: str | None = None,
        ssh_opts: Sequence[str] = (),
        hf_token: pulumi.Input[str] | None = None,
    ) -> None:
        deployment.check_secrets(secrets)
        cfg = deployment.config
        secret_envs = [secret_env_for(svc.spec, secrets) for svc in deployment.services]
        wanted = list(deployment.downloads)
        super().__init__("local-llm-stack:index:LocalLlmStack", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = StackNetwork(f"{name}-net", deployment.network, opts=child)
        self.downloads = {}
        if wanted:
            image = docker.RemoteImage(f"{name}-downloader-image", name=cfg.images.downloader, keep_locally=True,
                                       opts=child)
            for dl in wanted:
                self.downloads[dl.file] = ModelDownload(
                    f"{name}-model-{dl.slug}", dl, models_dir=deployment.models.source, image=image.image_id,
                    container_name=f"{cfg.network.name}-download-{dl.slug}", docker_host=docker_host,
                    ssh_opts=ssh_opts, token=hf_token, token_origin=origin(cfg.hf_endpoint),
                    delete_on_destroy=cfg.downloads.delete_on_destroy, stall_timeout_s=cfg.downloads.stall_timeout_s,
                    opts=child,
                )
        self.services = {}
        for svc, secret_env in zip(deployment.services, secret_envs, strict=True):
            spec = svc.spec
            upstream: list[pulumi.Resource] = [self.services[key] for key in svc.after]
            files = [self.downloads[dl.file] for dl in svc.downloads]
            labels = {MODELS_LABEL: _models_label(files)} if files else {}
            self.services[spec.service] = SERVICE_TYPES.get(spec.service, ServiceContainer)(
                f"{name}-{spec.service}",
                spec,
                self.network.network_id,
                secret_env,
                opts=child,
                depends_on=[*upstream, *files],
                extra_labels=labels,
            )
        self.endpoints = {svc.key: svc.exposure.url for svc in deployment.services}
        self.container_names = {key: svc.container_name for key, svc in self.services.items()}
        self.register_outputs({"endpoints": self.endpoints, "container_names": self.container_names})


def _models_label(downloads: list[ModelDownload]) -> pulumi.Output[str]:
    results = [pulumi.Output.all(d.file, d.ok, d.error, d.sha256) for d in downloads]
    return pulumi.Output.all(*results).apply(checked_models_digest)
