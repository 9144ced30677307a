"""Typed schema of a local-llm-stack stack config (`Pulumi.<stack>.yaml`)."""

from models.config import (
    ArchConfig,
    CacheType,
    CloudFallback,
    EmbeddingConfig,
    GpuConfig,
    GroupConfig,
    ImagesConfig,
    LiteLLMConfig,
    LlamaSwapConfig,
    MatrixConfig,
    ModelConfig,
    NetworkConfig,
    PortsConfig,
    StackConfig,
)
from models.errors import ConfigError
from models.load import StackFile, load_stack_file, parse_stack_config

__all__ = [
    "ArchConfig",
    "CacheType",
    "CloudFallback",
    "ConfigError",
    "EmbeddingConfig",
    "GpuConfig",
    "GroupConfig",
    "ImagesConfig",
    "LiteLLMConfig",
    "LlamaSwapConfig",
    "MatrixConfig",
    "ModelConfig",
    "NetworkConfig",
    "PortsConfig",
    "StackConfig",
    "StackFile",
    "load_stack_file",
    "parse_stack_config",
]
