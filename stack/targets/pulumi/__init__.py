"""The Pulumi target: the only code in the project that touches Pulumi types (pulumi-docker components)."""

from stack.targets.pulumi.container import (
    EmbeddingServer,
    LiteLLMProxy,
    LlamaSwap,
    ServiceContainer,
    container_args,
)
from stack.targets.pulumi.model_download import ModelDownload
from stack.targets.pulumi.network import StackNetwork
from stack.targets.pulumi.stack_component import LocalLlmStack

__all__ = [
    "EmbeddingServer",
    "LiteLLMProxy",
    "LlamaSwap",
    "LocalLlmStack",
    "ModelDownload",
    "ServiceContainer",
    "StackNetwork",
    "container_args",
]
