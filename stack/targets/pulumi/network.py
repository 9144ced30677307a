"""The stack's Docker network: services reach each other by DNS alias on it, never by host port."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stack.render.containers import NetworkSpec


class StackNetwork(pulumi.ComponentResource):
    network: docker.Network
    network_id: pulumi.Output[str]

    def __init__(self, name: str, spec: NetworkSpec, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("local-llm-stack:index:StackNetwork", name, {}, opts)
        self.network = docker.Network(
            f"{name}-network",
            name=spec.name,
            driver=spec.driver,
            labels=[docker.NetworkLabelArgs(label=k, value=v) for k, v in spec.labels.items()],
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Containers attach by id: attaching by name makes the provider see a change on every run.
        self.network_id = self.network.id
        self.register_outputs({"network_id": self.network.id, "name": self.network.name})
