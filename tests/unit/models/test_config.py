"""`models.config`: every bad input is refused before anything is sized or deployed, naming its key; a
non-loopback `bind_address` never publishes an unauthenticated model server by accident."""

from __future__ import annotations

from typing import Any

import pytest

from models import ConfigError, load_stack_file, parse_stack_config
from models.config import CacheType
from models.load import split_pulumi_config
from tests.unit.helpers import REPO, stack


def test_default_stack_is_valid() -> None:
    cfg = load_stack_file(REPO / "Pulumi.dev.yaml").config
    assert set(cfg.models) == {"classifier", "generator", "chat", "agent"}
    assert cfg.explicit_groups["main"].members == ["classifier", "generator", "chat", "agent"]
    assert cfg.embedding is not None and cfg.embedding.file.startswith("nomic-embed-text-v1.5")
    assert cfg.litellm.enabled is False
    assert cfg.bind_address == "127.0.0.1"
    agent = cfg.models["agent"]
    assert agent.jinja and agent.cache_type_k in (CacheType.q8_0, CacheType.f16)
    assert agent.cache_type_v in (CacheType.q8_0, CacheType.f16)


def test_prefixes_are_stripped_and_provider_keys_ignored() -> None:
    plain, secrets = split_pulumi_config(
        {
            "docker:host": "unix:///var/run/docker.sock",
            "my-fork:models_dir": "/m",
            "local-llm-stack:litellm_master_key": {"secure": "v1:xyz"},
        }
    )
    assert plain == {"models_dir": "/m"}
    assert secrets == {"litellm_master_key"}


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        parse_stack_config(
            {
                "models_dir": "/srv/models",
                "models": {"a": {"file": "x.gguf", "ctx_size": 0, "parallel": 0}},
            }
        )
    keys = {k for k, _ in info.value.problems}
    assert {"models.a.ctx_size", "models.a.parallel"} <= keys


def test_cloud_secret_must_be_set_when_litellm_enabled() -> None:
    raw = {
        "models_dir": "/srv/models",
        "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}},
        "litellm": {
            "enabled": True,
            "fallbacks": [{"name": "cloud", "model": "openai/gpt-4o-mini", "api_key_secret": "openai_api_key"}],
        },
    }
    with pytest.raises(ConfigError) as info:
        parse_stack_config(raw, frozenset({"litellm_master_key"}))
    assert [k for k, _ in info.value.problems] == ["openai_api_key"]
    cfg = parse_stack_config(raw, frozenset({"litellm_master_key", "openai_api_key"}))
    assert cfg.cloud_secret_keys() == ["openai_api_key"]


def test_defaults_are_secure() -> None:
    cfg = stack()
    assert cfg.bind_address == "127.0.0.1"
    for image in (cfg.images.llama_swap, cfg.images.llama_server, cfg.images.litellm):
        assert not image.endswith(":latest") and ":" in image.rsplit("/", 1)[-1]


def test_configs_are_immutable() -> None:
    cfg = stack()
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen models
        cfg.models["chat"].ctx_size = 1


BASE: dict[str, Any] = {
    "models_dir": "/srv/models",
    "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}},
    "embeddings": {"file": "nomic-embed-text-v1.5.Q8_0.gguf"},
}


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "192.0.2.10"])
def test_wide_address_without_a_key_is_refused_naming_the_ways_out(address: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_stack_config({**BASE, "bind_address": address})
    [(key, message)] = refused.value.problems
    assert key == "bind_address"
    assert "api_key" in message and "litellm" in message and "expose_unauthenticated: true" in message


@pytest.mark.parametrize(
    ("extra", "secrets"),
    [
        ({}, frozenset({"api_key"})),
        ({"litellm": {"enabled": True}}, frozenset({"litellm_master_key"})),
        ({"expose_unauthenticated": True}, frozenset()),
        ({"bind_address": "127.0.0.1"}, frozenset()),
        ({"bind_address": "::1"}, frozenset()),
    ],
    ids=["api-key", "litellm", "opt-in", "loopback", "loopback-v6"],
)
def test_each_way_out_is_accepted(extra: dict[str, Any], secrets: frozenset[str]) -> None:
    parse_stack_config({**BASE, "bind_address": "0.0.0.0", **extra}, secrets)
