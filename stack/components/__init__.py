"""Pulumi components: the only code in the project that touches Pulumi types."""

from stack.components.container import (
    EmbeddingServer,
    LiteLLMProxy,
    LlamaSwap,
    ServiceContainer,
    container_args,
)
from stack.components.local_llm_stack import LocalLlmStack
from stack.components.model_download import ModelDownload
from stack.components.network import StackNetwork

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
