"""The kubernetes target: `manifests` maps a Deployment to plain Kubernetes objects (pure); `component` registers
them with pulumi-kubernetes (the only module here that touches Pulumi types)."""

from stack.targets.kubernetes.manifests import Manifests, SecretSpec, build_manifests, outputs

__all__ = ["Manifests", "SecretSpec", "build_manifests", "outputs"]
