"""LiteLLM config.yaml: every public name routed, explicit keys, swap-proof timeouts, cloud fallbacks."""

from __future__ import annotations

from typing import Any

import yaml

from stack.render.litellm import NO_KEY, SWAP_MARGIN_S, litellm_args, render_litellm_config
from stack.render.paths import RenderPaths
from tests.unit.render_samples import config, raw


def _load(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [d["model_name"] for d in doc["model_list"]]
    assert len(names) == len(set(names)), f"duplicate model_name in {names}"
    return {d["model_name"]: d for d in doc["model_list"]}


def test_same_input_gives_same_bytes() -> None:
    doc = raw()
    reordered = raw(models=dict(reversed(list(doc["models"].items()))))
    first = render_litellm_config(config(doc), api_key_enabled=True)
    assert render_litellm_config(config(reordered), api_key_enabled=True) == first
    assert first.endswith("\n") and not first.endswith("\n\n")


def test_every_public_name_is_routed_to_its_llama_swap_id() -> None:
    models = _by_name(_load(render_litellm_config(config(), api_key_enabled=True)))
    expected = {"small": "small", "classify": "small", "tiny": "small", "chat": "chat", "chatbot": "chat"}
    for name, upstream in expected.items():
        params = models[name]["litellm_params"]
        assert params["model"] == f"openai/{upstream}"
        assert params["api_base"] == "http://llama-swap:8080/v1"
        assert params["max_retries"] == 0
        assert models[name]["model_info"]["mode"] == "chat"
    assert set(models) == {*expected, "embed", "text-embedding", "cloud-chat"}


def test_embedding_model_goes_to_the_embedding_server() -> None:
    models = _by_name(_load(render_litellm_config(config(), api_key_enabled=True)))
    for name in ("embed", "text-embedding"):
        assert models[name]["model_info"]["mode"] == "embedding"
        assert models[name]["litellm_params"]["model"] == "openai/embed"
        assert models[name]["litellm_params"]["api_base"] == "http://embeddings:8080/v1"


def test_local_deployments_always_carry_an_api_key() -> None:
    """Without one LiteLLM would send OPENAI_API_KEY (a cloud secret) to llama-swap."""
    cfg = config()
    with_key = _by_name(_load(render_litellm_config(cfg, api_key_enabled=True)))
    without = _by_name(_load(render_litellm_config(cfg, api_key_enabled=False)))
    for name in ("small", "chatbot", "embed"):
        assert with_key[name]["litellm_params"]["api_key"] == "os.environ/LLAMA_SWAP_API_KEY"
        assert without[name]["litellm_params"]["api_key"] == NO_KEY


def test_master_key_is_an_env_reference_under_general_settings() -> None:
    doc = _load(render_litellm_config(config(), api_key_enabled=False))
    assert doc["general_settings"]["master_key"] == "os.environ/LITELLM_MASTER_KEY"
    assert "master_key" not in doc["litellm_settings"]
    assert doc["general_settings"]["background_health_checks"] is False


def test_timeouts_outlast_a_model_swap() -> None:
    litellm = {**raw()["litellm"], "timeout_s": 30, "stream_timeout_s": 20}
    cfg = config(litellm=litellm, llama_swap={"health_check_timeout": 300})
    doc = _load(render_litellm_config(cfg, api_key_enabled=False))
    floor = 300 + SWAP_MARGIN_S
    for entry in doc["model_list"]:
        if entry["litellm_params"]["model"].startswith("openai/") and "api_base" in entry["litellm_params"]:
            assert entry["litellm_params"]["timeout"] == floor
            assert entry["litellm_params"]["stream_timeout"] == floor
    assert doc["router_settings"]["timeout"] == floor > 300
    longer = config(litellm={**litellm, "timeout_s": 1200}, llama_swap={"health_check_timeout": 300})
    assert _load(render_litellm_config(longer, api_key_enabled=False))["router_settings"]["timeout"] == 1200


def test_cloud_fallbacks() -> None:
    doc = _load(render_litellm_config(config(), api_key_enabled=False))
    cloud = _by_name(doc)["cloud-chat"]
    assert cloud["litellm_params"]["model"] == "openai/gpt-4o-mini"
    assert cloud["litellm_params"]["api_key"] == "os.environ/OPENAI_API_KEY"
    assert "api_base" not in cloud["litellm_params"]
    assert cloud["model_info"]["mode"] == "chat"
    assert doc["router_settings"]["fallbacks"] == [{"chat": ["cloud-chat"]}, {"chatbot": ["cloud-chat"]}]
    assert "fallbacks" not in doc["litellm_settings"]


def test_embedding_fallback_and_order_of_several_fallbacks() -> None:
    fallbacks = [
        {"name": "cloud-b", "model": "openai/b", "api_key_secret": "b_key", "fallback_for": ["small"]},
        {"name": "cloud-a", "model": "openai/a", "api_key_secret": "a_key", "fallback_for": ["small"],
         "api_base": "https://example.invalid/v1"},
        {"name": "cloud-embed", "model": "openai/text-embedding-3-small", "api_key_secret": "b_key",
         "fallback_for": ["embed"]},
    ]
    cfg = config(litellm={"enabled": True, "fallbacks": fallbacks})
    doc = _load(render_litellm_config(cfg, api_key_enabled=False))
    models = _by_name(doc)
    assert models["cloud-a"]["litellm_params"]["api_base"] == "https://example.invalid/v1"
    assert models["cloud-a"]["litellm_params"]["api_key"] == "os.environ/A_KEY"
    assert models["cloud-embed"]["model_info"]["mode"] == "embedding"
    mapping = {k: v for entry in doc["router_settings"]["fallbacks"] for k, v in entry.items()}
    assert mapping["small"] == ["cloud-b", "cloud-a"]
    assert mapping["tiny"] == ["cloud-b", "cloud-a"]
    assert mapping["text-embedding"] == ["cloud-embed"]


def test_no_fallbacks_key_without_fallbacks_and_retries_from_config() -> None:
    doc = _load(render_litellm_config(config(litellm={"enabled": True, "num_retries": 0}), api_key_enabled=False))
    assert "fallbacks" not in doc["router_settings"]
    assert doc["router_settings"]["num_retries"] == 0


def test_renders_for_other_urls() -> None:
    paths = RenderPaths(llama_swap_url="http://127.0.0.1:19292", embedding_url="http://127.0.0.1:18081")
    text = render_litellm_config(config(), paths, api_key_enabled=False)
    assert "llama-swap:8080" not in text and "embeddings:8080" not in text
    models = _by_name(_load(text))
    assert models["chat"]["litellm_params"]["api_base"] == "http://127.0.0.1:19292/v1"
    assert models["embed"]["litellm_params"]["api_base"] == "http://127.0.0.1:18081/v1"


def test_litellm_args_for_other_paths() -> None:
    paths = RenderPaths(litellm_config="/tmp/llm.yaml", litellm_host="127.0.0.1", litellm_port=14000)
    assert litellm_args(paths) == ["--config", "/tmp/llm.yaml", "--host", "127.0.0.1", "--port", "14000"]
