"""Where rendered files and argv point: container-side paths, listen addresses and service URLs.

The renderers take these as a value instead of hard-coding them, so the test harness can render the
very same llama-swap and LiteLLM configs for local binaries on 127.0.0.1 by passing other values.
"""

from __future__ import annotations

from dataclasses import dataclass

LLAMA_SWAP_ALIAS = "llama-swap"
EMBEDDING_ALIAS = "embeddings"
LITELLM_ALIAS = "litellm"
"""DNS aliases on the stack's Docker network; the URLs below resolve only inside that network."""

LLAMA_SWAP_INTERNAL_PORT = 8080
EMBEDDING_INTERNAL_PORT = 8080
LITELLM_INTERNAL_PORT = 4000


@dataclass(frozen=True)
class RenderPaths:
    """Paths and addresses as seen by the processes that read the rendered files.

    `llama_swap_url` and `embedding_url` have no trailing slash and no `/v1`.
    """

    llama_server_bin: str = "/app/llama-server"
    llama_swap_bin: str = "/app/llama-swap"
    models_dir: str = "/models"
    llama_swap_config: str = "/app/config.yaml"
    litellm_config: str = "/app/config.yaml"
    llama_swap_listen_host: str = "0.0.0.0"
    llama_swap_port: int = LLAMA_SWAP_INTERNAL_PORT
    model_host: str = "127.0.0.1"
    embedding_host: str = "0.0.0.0"
    embedding_port: int = EMBEDDING_INTERNAL_PORT
    litellm_host: str = "0.0.0.0"
    litellm_port: int = LITELLM_INTERNAL_PORT
    llama_swap_url: str = f"http://{LLAMA_SWAP_ALIAS}:{LLAMA_SWAP_INTERNAL_PORT}"
    embedding_url: str = f"http://{EMBEDDING_ALIAS}:{EMBEDDING_INTERNAL_PORT}"

    def model_path(self, file: str) -> str:
        """The GGUF path llama-server opens; `file` is relative to models_dir (validated in models/)."""
        return f"{self.models_dir.rstrip('/')}/{file}"


CONTAINER_PATHS = RenderPaths()
"""The values for the upstream images: legacy llama-swap image (`/app`), llama.cpp server image, LiteLLM image."""
