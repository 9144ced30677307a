"""The one mapping from a `ContainerSpec` to `docker.Container` arguments, and the service component base.

Kept as a single small function so every container gets the same policy (pinned image id, read-only
models, loopback ports, health-gated creation, secrets only in `envs`) and it can be tested in isolation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pulumi
import pulumi_docker as docker

from stack.render.containers import ContainerSpec, go_duration


def _envs(spec: ContainerSpec, secret_env: Mapping[str, pulumi.Input[str]]) -> pulumi.Input[list[str]]:
    """`NAME=value` entries sorted by name; the whole list is a secret as soon as one entry is."""
    missing = sorted(set(spec.secret_env) - set(secret_env))
    if missing:
        raise ValueError(f"{spec.name}: no value for secret environment variables {missing}")
    plain = {name: f"{name}={value}" for name, value in spec.env.items()}
    if not spec.secret_env:
        return [plain[name] for name in sorted(plain)]
    entries: dict[str, pulumi.Input[str]] = dict(plain)
    for name in spec.secret_env:
        entries[name] = pulumi.Output.concat(name, "=", secret_env[name])
    ordered = [entries[name] for name in sorted(entries)]
    return pulumi.Output.secret(pulumi.Output.all(*ordered))


def container_args(
    spec: ContainerSpec,
    image_id: pulumi.Input[str],
    network_id: pulumi.Input[str],
    secret_env: Mapping[str, pulumi.Input[str]],
    extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `docker.Container` (without resource name and options).

    `secret_env` maps each of `spec.secret_env`'s variable names to its (secret) value; `extra_labels` are labels
    known only once other resources exist (the digest of the downloaded model files the container loads).
    """
    hc = spec.healthcheck
    args: dict[str, Any] = {
        "name": spec.name,
        "image": image_id,
        "envs": _envs(spec, secret_env),
        "ports": [
            docker.ContainerPortArgs(internal=p.internal, external=p.external, ip=p.host_ip, protocol=p.protocol)
            for p in spec.ports
        ],
        "mounts": [
            docker.ContainerMountArgs(target=m.target, type="bind", source=m.source, read_only=m.read_only)
            for m in spec.mounts
        ],
        "networks_advanced": [
            docker.ContainerNetworksAdvancedArgs(name=network_id, aliases=list(n.aliases)) for n in spec.networks
        ],
        "healthcheck": docker.ContainerHealthcheckArgs(
            tests=list(hc.test),
            interval=go_duration(hc.interval_s),
            timeout=go_duration(hc.timeout_s),
            retries=hc.retries,
            start_period=go_duration(hc.start_period_s),
        ),
        "labels": [docker.ContainerLabelArgs(label=k, value=v)
                   for k, v in {**spec.labels, **(extra_labels or {})}.items()],
        "uploads": [docker.ContainerUploadArgs(file=u.path, content=u.content) for u in spec.uploads],
        "restart": spec.restart,
        "log_driver": spec.log_driver,
        "log_opts": dict(spec.log_opts),
        "stop_timeout": spec.stop_timeout_s,
        "destroy_grace_seconds": spec.stop_timeout_s,
        "must_run": True,
        "wait": True,
        "wait_timeout": spec.wait_timeout_s,
    }
    if spec.entrypoint:
        args["entrypoints"] = list(spec.entrypoint)
    if spec.command:
        args["command"] = list(spec.command)
    if spec.gpu:
        args["gpus"] = spec.gpu_device
    return args


class ServiceContainer(pulumi.ComponentResource):
    """A pinned image and the container that runs it; subclasses only name the component type (part of each URN, so
    the three original services keep theirs; any later service is a plain `Service`)."""

    TYPE: ClassVar[str] = "local-llm-stack:index:Service"
    image: docker.RemoteImage
    container: docker.Container
    container_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: ContainerSpec,
        network_id: pulumi.Input[str],
        secret_env: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
        extra_labels: Mapping[str, pulumi.Input[str]] | None = None,
    ) -> None:
        super().__init__(self.TYPE, name, {}, opts)
        self.image = docker.RemoteImage(
            f"{name}-image", name=spec.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self)
        )
        self.container = docker.Container(
            f"{name}-container",
            **container_args(spec, self.image.image_id, network_id, secret_env, extra_labels),
            opts=pulumi.ResourceOptions(
                parent=self,
                delete_before_replace=True,
                replace_on_changes=["healthcheck"],
                depends_on=list(depends_on),
            ),
        )
        self.container_name = self.container.name
        self.register_outputs({"container_name": self.container.name, "image_id": self.image.image_id})


class LlamaSwap(ServiceContainer):
    """llama-swap with its rendered config; it starts and stops llama-server processes per model."""

    TYPE = "local-llm-stack:index:LlamaSwap"


class EmbeddingServer(ServiceContainer):
    """The always-on embedding llama-server, outside llama-swap so a swap never unloads it."""

    TYPE = "local-llm-stack:index:EmbeddingServer"


class LiteLLMProxy(ServiceContainer):
    """LiteLLM in front of llama-swap and the embedding server, with optional cloud fallbacks."""

    TYPE = "local-llm-stack:index:LiteLLMProxy"
