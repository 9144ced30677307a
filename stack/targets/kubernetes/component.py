"""`KubernetesStack`: the manifests of `stack.targets.kubernetes.manifests` as pulumi-kubernetes resources.

Everything is decided by the pure manifests; this only registers them, fills the Secrets with the stack's
Pulumi secrets, and orders creation: the Namespace first, the objects a pod reads (ConfigMaps, the download job's
among them, Secrets, the models claim) before its Deployment.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stack.deployment import Deployment
from stack.targets.kubernetes.manifests import DOWNLOAD_JOB, Manifests, build_manifests, secret_name


def _with_secret_name(spec: dict[str, Any], placeholder: str, name: pulumi.Input[str]) -> dict[str, Any]:
    """The Deployment spec with each `secretKeyRef` to `placeholder` pointing at the Secret's generated name."""
    out = copy.deepcopy(spec)
    pod = out["template"]["spec"]
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None and ref["name"] == placeholder:
                ref["name"] = name
    return out


class KubernetesStack(pulumi.ComponentResource):
    """A `Deployment` on a Kubernetes cluster; `secrets` maps the deployment's secret config keys to their values.

    `provider`: the Kubernetes provider to use (default: the stack's `kubernetes:` config / ambient kubeconfig).
    """

    manifests: Manifests
    namespace: k8s.core.v1.Namespace
    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]
    config_maps: dict[str, k8s.core.v1.ConfigMap]
    secrets: dict[str, k8s.core.v1.Secret]

    def __init__(
        self,
        name: str,
        deployment: Deployment,
        secrets: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        deployment.check_secrets(secrets)
        manifests = build_manifests(deployment)
        super().__init__("local-llm-stack:index:KubernetesStack", name, {}, opts)
        self.manifests = manifests
        ns = manifests.namespace
        self.namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=ns["metadata"],
                                               opts=pulumi.ResourceOptions(parent=self))
        inner = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace], delete_before_replace=True)
        claim = None
        if manifests.volume_claim is not None:
            pvc = manifests.volume_claim
            claim = k8s.core.v1.PersistentVolumeClaim(f"{name}-models-claim", metadata=pvc["metadata"],
                                                      spec=pvc["spec"], opts=inner)
        self.config_maps = {
            cm["metadata"]["labels"]["local-llm-stack/service"]: k8s.core.v1.ConfigMap(
                f"{name}-{cm['metadata']['name']}", metadata=cm["metadata"], data=cm["data"], opts=inner)
            for cm in manifests.config_maps
        }
        # Auto-named (`<name>-<suffix>`): a changed value replaces the Secret under a new name, which changes the
        # pod template of every Deployment that reads it, so those pods restart with the new value.
        self.secrets = {
            spec.service: k8s.core.v1.Secret(
                f"{name}-{spec.name}",
                metadata={"namespace": ns["metadata"]["name"],
                          "labels": {"app.kubernetes.io/part-of": "local-llm-stack"}},
                type="Opaque",
                string_data=pulumi.Output.secret({env: secrets[key] for env, key in spec.entries.items()}),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace]),
            )
            for spec in manifests.secrets
        }
        self.deployments = {}
        for d in manifests.deployments:
            key = d["metadata"]["name"]
            secret = self.secrets.get(key)
            job = self.config_maps.get(DOWNLOAD_JOB) if d["spec"]["template"]["spec"].get("initContainers") else None
            reads: list[pulumi.Resource] = [r for r in (self.config_maps.get(key), job, secret, claim)
                                            if r is not None]
            spec = _with_secret_name(d["spec"], secret_name(key), secret.metadata.name) if secret else d["spec"]
            self.deployments[key] = k8s.apps.v1.Deployment(
                f"{name}-{key}", metadata=d["metadata"], spec=spec,
                opts=pulumi.ResourceOptions.merge(inner, pulumi.ResourceOptions(depends_on=reads)))
        self.services = {
            s["metadata"]["name"]: k8s.core.v1.Service(f"{name}-{s['metadata']['name']}-service",
                                                       metadata=s["metadata"], spec=s["spec"], opts=inner)
            for s in manifests.services
        }
        self.network_policies = [
            k8s.networking.v1.NetworkPolicy(f"{name}-{p['metadata']['name']}", metadata=p["metadata"],
                                            spec=p["spec"], opts=inner)
            for p in manifests.network_policies
        ]
        outputs: dict[str, Any] = {"namespace": self.namespace.metadata["name"],
                                   "deployments": sorted(self.deployments)}
        self.register_outputs(outputs)
