"""Container specs: loopback ports, read-only models, GPU only where it is used, config-hash per container."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from models.config import StackConfig
from stack.render.containers import (
    CONFIG_HASH_LABEL,
    EMBEDDINGS,
    LITELLM,
    LLAMA_SWAP,
    ContainerSpec,
    config_hash,
    go_duration,
    network_spec,
)
from stack.render.litellm import render_litellm_config
from stack.render.llama_swap import render_llama_swap_config
from stack.render.paths import CONTAINER_PATHS
from tests.unit.render_samples import ALL_SECRETS, config, deployment, raw


def _specs(cfg: StackConfig, api_key_enabled: bool = True) -> dict[str, ContainerSpec]:
    secret_keys = ALL_SECRETS if api_key_enabled else ALL_SECRETS - {"api_key"}
    return {s.service: s for s in deployment(cfg, secret_keys=secret_keys).specs}


def _endpoints(cfg: StackConfig) -> dict[str, str]:
    return {s.key: s.exposure.url for s in deployment(cfg).services}


def _hashes(cfg: StackConfig) -> dict[str, str]:
    return {key: spec.labels[CONFIG_HASH_LABEL] for key, spec in _specs(cfg).items()}


def test_services_follow_the_config() -> None:
    assert list(_specs(config())) == [LLAMA_SWAP, EMBEDDINGS, LITELLM]
    assert list(_specs(config(embeddings=None, litellm={"enabled": False}))) == [LLAMA_SWAP]
    disabled = {**raw()["embeddings"], "enabled": False}
    assert list(_specs(config(embeddings=disabled))) == [LLAMA_SWAP, LITELLM]


def test_ports_bind_to_loopback_by_default() -> None:
    specs = _specs(config())
    published = {key: [(p.host_ip, p.external, p.internal) for p in s.ports] for key, s in specs.items()}
    assert published == {
        LLAMA_SWAP: [("127.0.0.1", 9292, 8080)],
        EMBEDDINGS: [("127.0.0.1", 8081, 8080)],
        LITELLM: [("127.0.0.1", 4000, 4000)],
    }



def test_with_litellm_on_only_litellm_is_published_on_a_wide_address() -> None:
    """Its master key cannot be bypassed: llama-swap and the embedding server stay on loopback."""
    wide = _specs(config(bind_address="0.0.0.0"))
    assert {key: {p.host_ip for p in s.ports} for key, s in wide.items()} == {
        LLAMA_SWAP: {"127.0.0.1"}, EMBEDDINGS: {"127.0.0.1"}, LITELLM: {"0.0.0.0"},
    }
    assert _endpoints(config(bind_address="0.0.0.0")) == {
        LLAMA_SWAP: "http://127.0.0.1:9292", EMBEDDINGS: "http://127.0.0.1:8081", LITELLM: "http://0.0.0.0:4000",
    }


def test_without_litellm_every_port_follows_bind_address() -> None:
    wide = _specs(config(bind_address="0.0.0.0", litellm={"enabled": False}, expose_unauthenticated=True))
    assert {p.host_ip for s in wide.values() for p in s.ports} == {"0.0.0.0"}


def test_models_are_mounted_read_only_and_only_where_needed() -> None:
    specs = _specs(config())
    for key in (LLAMA_SWAP, EMBEDDINGS):
        assert [(m.source, m.target, m.read_only) for m in specs[key].mounts] == [("/srv/models", "/models", True)]
    assert specs[LITELLM].mounts == ()


def test_gpu_request() -> None:
    specs = _specs(config(gpu={"profile": "rtx-4090", "device": "device=GPU-3a23c669"}))
    assert specs[LLAMA_SWAP].gpu and specs[EMBEDDINGS].gpu
    assert specs[LLAMA_SWAP].gpu_device == "device=GPU-3a23c669"
    assert specs[LLAMA_SWAP].env["NVIDIA_DRIVER_CAPABILITIES"] == "compute,utility"
    assert not specs[LITELLM].gpu
    assert "NVIDIA_DRIVER_CAPABILITIES" not in specs[LITELLM].env


def test_cpu_profile_requests_no_gpu() -> None:
    specs = _specs(config(gpu={"profile": "cpu"}))
    assert not any(s.gpu for s in specs.values())
    assert not any("NVIDIA_DRIVER_CAPABILITIES" in s.env for s in specs.values())
    assert "-ngl" in specs[EMBEDDINGS].entrypoint
    assert specs[EMBEDDINGS].entrypoint[specs[EMBEDDINGS].entrypoint.index("-ngl") + 1] == "0"


def test_restart_logs_and_stop_grace() -> None:
    for spec in _specs(config()).values():
        assert spec.restart == "unless-stopped"
        assert spec.log_driver == "json-file"
        assert spec.log_opts == {"max-size": "50m", "max-file": "3"}
        assert spec.stop_timeout_s >= 30
        assert spec.wait_timeout_s > 60
    assert _specs(config())[LLAMA_SWAP].stop_timeout_s > 30


def test_healthchecks_use_tools_each_image_ships() -> None:
    specs = _specs(config(llama_swap={"health_check_timeout": 500}))
    assert specs[LLAMA_SWAP].healthcheck.test[:2] == ("CMD", "curl")
    assert specs[LLAMA_SWAP].healthcheck.test[-1] == "http://127.0.0.1:8080/health"
    assert specs[EMBEDDINGS].healthcheck.test[-1] == "http://127.0.0.1:8080/health"
    assert specs[EMBEDDINGS].healthcheck.start_period_s == 500
    assert specs[EMBEDDINGS].wait_timeout_s > 500
    litellm = specs[LITELLM].healthcheck.test
    assert litellm[:3] == ("CMD", "python3", "-c")
    assert "http://127.0.0.1:4000/health/liveliness" in litellm[3]


def test_commands() -> None:
    specs = _specs(config())
    assert specs[LLAMA_SWAP].entrypoint == ("/app/llama-swap", "-config", "/app/config.yaml", "-listen", "0.0.0.0:8080")
    assert specs[EMBEDDINGS].entrypoint[0] == "/app/llama-server"
    assert "--embeddings" in specs[EMBEDDINGS].entrypoint
    assert specs[LITELLM].entrypoint == ()
    assert specs[LITELLM].command[:2] == ("--config", "/app/config.yaml")


def test_uploads_carry_the_rendered_configs() -> None:
    cfg = config()
    specs = _specs(cfg, api_key_enabled=True)
    ls_config = render_llama_swap_config(cfg, api_key_enabled=True)
    assert [(u.path, u.content) for u in specs[LLAMA_SWAP].uploads] == [("/app/config.yaml", ls_config)]
    llm_config = render_litellm_config(cfg, api_key_enabled=True)
    assert [(u.path, u.content) for u in specs[LITELLM].uploads] == [("/app/config.yaml", llm_config)]
    assert specs[EMBEDDINGS].uploads == ()


def test_secret_env_names_only() -> None:
    specs = _specs(config(), api_key_enabled=True)
    assert specs[LLAMA_SWAP].secret_env == {"LLAMA_SWAP_API_KEY": "api_key"}
    assert specs[EMBEDDINGS].secret_env == {"LLAMA_API_KEY": "api_key"}
    assert specs[LITELLM].secret_env == {
        "LITELLM_MASTER_KEY": "litellm_master_key",
        "LLAMA_SWAP_API_KEY": "api_key",
        "OPENAI_API_KEY": "openai_api_key",
    }
    for spec in specs.values():
        assert not set(spec.env) & set(spec.secret_env)
    no_key = _specs(config(), api_key_enabled=False)
    assert no_key[LLAMA_SWAP].secret_env == {} and no_key[EMBEDDINGS].secret_env == {}
    assert "LLAMA_SWAP_API_KEY" not in no_key[LITELLM].secret_env


def test_a_cloud_key_may_not_shadow_the_llama_swap_key() -> None:
    litellm = {
        "enabled": True,
        "fallbacks": [{"name": "c", "model": "openai/x", "api_key_secret": "llama_swap_api_key"}],
    }
    with pytest.raises(ValueError, match="LLAMA_SWAP_API_KEY"):
        deployment(config(litellm=litellm))


def test_config_hash_label() -> None:
    spec = _specs(config())[LLAMA_SWAP]
    assert spec.labels[CONFIG_HASH_LABEL] == config_hash(spec.entrypoint, spec.command, spec.uploads)
    assert len(spec.labels[CONFIG_HASH_LABEL]) == 64
    assert _hashes(config()) == _hashes(config())


def test_config_hash_changes_only_for_the_affected_container() -> None:
    base = _hashes(config())
    doc = raw()
    doc["models"]["chat"]["ctx_size"] = 16384
    changed = _hashes(config(doc))
    assert changed[LLAMA_SWAP] != base[LLAMA_SWAP]
    assert changed[EMBEDDINGS] == base[EMBEDDINGS]
    assert changed[LITELLM] == base[LITELLM]

    doc = raw()
    doc["embeddings"]["ctx_size"] = 4096
    changed = _hashes(config(doc))
    assert changed[EMBEDDINGS] != base[EMBEDDINGS]
    assert changed[LLAMA_SWAP] == base[LLAMA_SWAP]
    assert changed[LITELLM] == base[LITELLM]

    doc = raw()
    doc["litellm"]["num_retries"] = 3
    changed = _hashes(config(doc))
    assert changed[LITELLM] != base[LITELLM]
    assert changed[LLAMA_SWAP] == base[LLAMA_SWAP]
    assert changed[EMBEDDINGS] == base[EMBEDDINGS]


def test_names_aliases_and_urls_agree() -> None:
    cfg = config(network={"name": "llm2"})
    specs = _specs(cfg)
    assert {s.name for s in specs.values()} == {"llm2-llama-swap", "llm2-embeddings", "llm2-litellm"}
    for url, key in ((CONTAINER_PATHS.llama_swap_url, LLAMA_SWAP), (CONTAINER_PATHS.embedding_url, EMBEDDINGS)):
        parts = urlsplit(url)
        spec = specs[key]
        assert [n.network for n in spec.networks] == ["llm2"]
        assert parts.hostname in spec.networks[0].aliases
        assert parts.port == spec.ports[0].internal
    assert network_spec(cfg).name == "llm2"
    assert network_spec(cfg).driver == "bridge"


def test_endpoints() -> None:
    assert _endpoints(config()) == {
        LLAMA_SWAP: "http://127.0.0.1:9292",
        EMBEDDINGS: "http://127.0.0.1:8081",
        LITELLM: "http://127.0.0.1:4000",
    }
    assert _endpoints(config(bind_address="::1", embeddings=None, litellm={"enabled": False})) == {
        LLAMA_SWAP: "http://[::1]:9292"
    }


@pytest.mark.parametrize(
    ("seconds", "spelled"),
    [(0, "0s"), (5, "5s"), (59, "59s"), (60, "1m0s"), (90, "1m30s"), (300, "5m0s"), (3600, "1h0m0s"), (3661, "1h1m1s")],
)
def test_go_duration_is_what_docker_reads_back(seconds: int, spelled: str) -> None:
    """Docker reports durations as Go's `time.Duration.String`; sending the same spelling keeps previews empty."""
    assert go_duration(seconds) == spelled


def test_go_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        go_duration(-1)
