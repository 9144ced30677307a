"""`LocalLlmStack`: the network plus one component per deployed service, from a validated config."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from models.config import StackConfig
from stack.components.container import EmbeddingServer, LiteLLMProxy, LlamaSwap, ServiceContainer
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
    """

    network: StackNetwork
    services: dict[str, ServiceContainer]
    endpoints: dict[str, str]
    container_names: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        secrets: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        specs = build_container_specs(cfg, api_key_enabled="api_key" in secrets)
        secret_envs = [secret_env_for(spec, secrets) for spec in specs]
        super().__init__("local-llm-stack:index:LocalLlmStack", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = StackNetwork(f"{name}-net", network_spec(cfg), opts=child)
        self.services = {}
        for spec, secret_env in zip(specs, secret_envs, strict=True):
            # LiteLLM discovers its backends' models at start; let them exist first.
            upstream = list(self.services.values()) if spec.service == LITELLM else []
            self.services[spec.service] = SERVICE_TYPES[spec.service](
                f"{name}-{spec.service}",
                spec,
                self.network.network_id,
                secret_env,
                opts=child,
                depends_on=upstream,
            )
        self.endpoints = endpoints(cfg)
        self.container_names = {key: svc.container_name for key, svc in self.services.items()}
        self.register_outputs({"endpoints": self.endpoints, "container_names": self.container_names})
