"""llama-swap config.yaml: structure llama-swap v250 reads, stable bytes, no secret values."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml

from stack.render.llama_swap import API_KEY_REF, llama_swap_argv, render_llama_swap_config
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.render.server_args import PORT_MACRO, model_argv
from tests.unit.render_samples import config, raw


def _load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def test_same_input_gives_same_bytes_whatever_the_key_order() -> None:
    doc = raw()
    reordered = raw(models=dict(reversed(list(doc["models"].items()))))
    first = render_llama_swap_config(config(doc), api_key_enabled=True)
    assert render_llama_swap_config(config(raw()), api_key_enabled=True) == first
    assert render_llama_swap_config(config(reordered), api_key_enabled=True) == first
    assert first.endswith("\n") and not first.endswith("\n\n")


def test_top_level_settings() -> None:
    cfg = config(llama_swap={"health_check_timeout": 420, "log_level": "debug", "start_port": 6000})
    doc = _load(render_llama_swap_config(cfg, api_key_enabled=False))
    assert doc["healthCheckTimeout"] == 420
    assert doc["logLevel"] == "debug"
    assert doc["startPort"] == 6000
    assert doc["sendLoadingState"] is False
    assert list(doc["models"]) == ["chat", "small"]


def test_model_entries() -> None:
    cfg = config()
    doc = _load(render_llama_swap_config(cfg, api_key_enabled=False))
    chat = doc["models"]["chat"]
    assert chat["ttl"] == 1800
    assert chat["aliases"] == ["chatbot"]
    assert chat["checkEndpoint"] == "/health"
    assert chat["concurrencyLimit"] == 10
    assert chat["proxy"] == f"http://127.0.0.1:{PORT_MACRO}"
    assert "description" not in chat
    small = doc["models"]["small"]
    assert small["aliases"] == ["classify", "tiny"]
    assert small["ttl"] == 600
    assert small["description"] == "Short prompts"


def test_cmd_is_the_argv_as_one_shlex_string() -> None:
    cfg = config()
    doc = _load(render_llama_swap_config(cfg, api_key_enabled=False))
    for mid, model in cfg.models.items():
        cmd = doc["models"][mid]["cmd"]
        assert shlex.split(cmd) == model_argv(mid, model, CONTAINER_PATHS, cpu_only=False)
        assert f"--port {PORT_MACRO}" in cmd
        assert "--fit off" in cmd


def test_groups_as_configured() -> None:
    groups = {
        "big": {"members": ["chat"], "swap": True, "exclusive": False, "persistent": True},
        "rest": {"members": ["small"]},
    }
    doc = _load(render_llama_swap_config(config(groups=groups), api_key_enabled=False))
    assert doc["groups"] == {
        "big": {"swap": True, "exclusive": False, "persistent": True, "members": ["chat"]},
        "rest": {"swap": True, "exclusive": True, "persistent": False, "members": ["small"]},
    }


def test_no_groups_key_without_groups() -> None:
    """Ungrouped models land in llama-swap's implicit default group (one at a time)."""
    doc = _load(render_llama_swap_config(config(groups={}), api_key_enabled=False))
    assert "groups" not in doc and "routing" not in doc


def test_api_keys_only_with_the_secret_and_only_as_an_env_reference() -> None:
    cfg = config()
    without = render_llama_swap_config(cfg, api_key_enabled=False)
    assert "apiKeys" not in _load(without)
    assert "${env." not in without
    with_key = render_llama_swap_config(cfg, api_key_enabled=True)
    assert _load(with_key)["apiKeys"] == [API_KEY_REF]
    assert API_KEY_REF == "${env.LLAMA_SWAP_API_KEY}"


def test_api_key_survives_llama_swaps_env_expansion() -> None:
    """llama-swap pastes the value into the text, escaping backslash and double quote, then parses the YAML."""
    key = 'sk-a"b\\c: #d'
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    text = render_llama_swap_config(config(), api_key_enabled=True).replace(API_KEY_REF, escaped)
    doc = _load(text)
    assert doc["apiKeys"] == [key]
    assert doc["peers"]["embeddings"]["apiKey"] == key


def test_embedding_server_is_a_peer() -> None:
    doc = _load(render_llama_swap_config(config(), api_key_enabled=False))
    assert doc["peers"] == {"embeddings": {"proxy": "http://embeddings:8080", "models": ["embed", "text-embedding"]}}
    assert "embed" not in doc["models"]
    assert "peers" not in _load(render_llama_swap_config(config(embeddings=None), api_key_enabled=False))


def test_cpu_profile_renders_ngl_zero() -> None:
    doc = _load(render_llama_swap_config(config(gpu={"profile": "cpu"}), api_key_enabled=False))
    for entry in doc["models"].values():
        assert " -ngl 0 " in entry["cmd"]


def test_renders_for_other_paths_without_container_values() -> None:
    paths = RenderPaths(
        llama_server_bin="/opt/llama/bin/llama-server",
        models_dir="/tmp/gguf",
        embedding_url="http://127.0.0.1:18081",
    )
    text = render_llama_swap_config(config(), paths, api_key_enabled=False)
    assert "/app/" not in text and "/models/" not in text and "embeddings:8080" not in text
    assert "/opt/llama/bin/llama-server -m /tmp/gguf/Qwen2.5-7B-Instruct-Q4_K_M.gguf" in text
    assert "http://127.0.0.1:18081" in text


def test_matrix_sets_keep_their_order_and_join_members_with_and() -> None:
    matrix = {"sets": {"big": ["small", "chat"], "one": ["chat"]}, "evict_costs": {"chat": 5}}
    doc = _load(render_llama_swap_config(config(groups={}, matrix=matrix), api_key_enabled=False))
    assert doc["matrix"] == {"sets": {"big": "chat & small", "one": "chat"}, "evict_costs": {"chat": 5}}
    assert list(doc["matrix"]["sets"]) == ["big", "one"]
    assert "groups" not in doc


def test_unresolved_auto_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="build_plan"):
        render_llama_swap_config(config(groups="auto"), api_key_enabled=False)


def test_llama_swap_argv_for_other_paths() -> None:
    paths = RenderPaths(
        llama_swap_bin="/opt/llama-swap", llama_swap_config="/tmp/ls.yaml",
        llama_swap_listen_host="127.0.0.1", llama_swap_port=19292,
    )
    assert llama_swap_argv(paths) == ["/opt/llama-swap", "-config", "/tmp/ls.yaml", "-listen", "127.0.0.1:19292"]
