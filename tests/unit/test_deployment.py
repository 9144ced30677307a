"""`stack.deployment.build_deployment`: the one place the service set, start order, exposure, keys and outputs are
decided; the compose target must carry the start order over unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from stack.deployment import ANSWERS_OUTPUT, Deployment
from stack.render.containers import EMBEDDINGS, LITELLM, LLAMA_SWAP
from stack.render.outputs import embedding_dimension
from stack.report import files_summary
from stack.targets.compose.compose_file import compose_project
from tests.unit.render_samples import ALL_SECRETS, config, deployment, raw

NO_API_KEY = ALL_SECRETS - {"api_key"}

SHAPES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "all": ({}, [LLAMA_SWAP, EMBEDDINGS, LITELLM]),
    "no-embeddings-block": ({"embeddings": None}, [LLAMA_SWAP, LITELLM]),
    "embeddings-disabled": ({"embeddings": {**raw()["embeddings"], "enabled": False}}, [LLAMA_SWAP, LITELLM]),
    "litellm-disabled": ({"litellm": {"enabled": False}}, [LLAMA_SWAP, EMBEDDINGS]),
    "no-litellm-block": ({"litellm": None}, [LLAMA_SWAP, EMBEDDINGS]),
    "llama-swap-only": ({"embeddings": None, "litellm": {"enabled": False}}, [LLAMA_SWAP]),
}


def _shapes() -> list[Any]:
    return [pytest.param(overrides, keys, id=name) for name, (overrides, keys) in SHAPES.items()]


def _exposure(dep: Deployment) -> dict[str, tuple[str, int, str | None]]:
    return {s.key: (s.exposure.address, s.exposure.port, s.exposure.key) for s in dep.services}


@pytest.mark.parametrize(("overrides", "keys"), _shapes())
def test_service_set_follows_the_config(overrides: dict[str, Any], keys: list[str]) -> None:
    dep = deployment(**overrides)
    assert [s.key for s in dep.services] == keys
    assert [s.spec.service for s in dep.services] == keys
    assert dep.specs == tuple(s.spec for s in dep.services)
    assert dep.container_names == {k: f"llm-{k}" for k in keys}
    for key in keys:
        assert dep.service(key).key == key


@pytest.mark.parametrize(("overrides", "keys"), _shapes())
def test_litellm_alone_comes_after_every_other_service_in_order(overrides: dict[str, Any], keys: list[str]) -> None:
    """LiteLLM discovers its backends' models when it starts, so it waits for all of them; nothing waits for it."""
    after = {s.key: s.after for s in deployment(**overrides).services}
    expected: dict[str, tuple[str, ...]] = {k: () for k in keys}
    if LITELLM in keys:
        expected[LITELLM] = tuple(k for k in keys if k != LITELLM)
    assert after == expected


@pytest.mark.parametrize(("overrides", "keys"), _shapes())
def test_compose_depends_on_is_the_start_order(overrides: dict[str, Any], keys: list[str]) -> None:
    dep = deployment(**overrides)
    services = compose_project(dep, "c.files")["services"]
    assert list(services) == keys
    for svc in dep.services:
        depends = services[svc.key].get("depends_on", {})
        assert list(depends) == list(svc.after), svc.key
        assert all(d == {"condition": "service_healthy"} for d in depends.values())


def test_exposure_with_and_without_the_api_key() -> None:
    assert _exposure(deployment()) == {
        LLAMA_SWAP: ("127.0.0.1", 9292, "api_key"),
        EMBEDDINGS: ("127.0.0.1", 8081, "api_key"),
        LITELLM: ("127.0.0.1", 4000, "litellm_master_key"),
    }
    assert _exposure(deployment(secret_keys=NO_API_KEY)) == {
        LLAMA_SWAP: ("127.0.0.1", 9292, None),
        EMBEDDINGS: ("127.0.0.1", 8081, None),
        LITELLM: ("127.0.0.1", 4000, "litellm_master_key"),
    }


def test_exposure_follows_ports_and_bind_address() -> None:
    ports = {"llama_swap": 9000, "embeddings": 9001, "litellm": 9002}
    assert _exposure(deployment(ports=ports, bind_address="::1")) == {
        LLAMA_SWAP: ("::1", 9000, "api_key"), EMBEDDINGS: ("::1", 9001, "api_key"),
        LITELLM: ("::1", 9002, "litellm_master_key"),
    }
    assert deployment(bind_address="::1").service(LLAMA_SWAP).exposure.url == "http://[::1]:9292"
    # A wide bind_address with LiteLLM on: only LiteLLM is published there (publish_address), so its master key
    # cannot be bypassed.
    assert _exposure(deployment(bind_address="0.0.0.0")) == {
        LLAMA_SWAP: ("127.0.0.1", 9292, "api_key"), EMBEDDINGS: ("127.0.0.1", 8081, "api_key"),
        LITELLM: ("0.0.0.0", 4000, "litellm_master_key"),
    }
    wide = deployment(bind_address="0.0.0.0", litellm={"enabled": False}, expose_unauthenticated=True,
                      secret_keys=NO_API_KEY)
    assert _exposure(wide) == {LLAMA_SWAP: ("0.0.0.0", 9292, None), EMBEDDINGS: ("0.0.0.0", 8081, None)}


@pytest.mark.parametrize("overrides", [{}, {"bind_address": "0.0.0.0"}, {"bind_address": "::1"},
                                       {"bind_address": "10.1.2.3", "litellm": {"enabled": False}}])
def test_exposure_is_the_published_port_and_what_the_report_shows(overrides: dict[str, Any]) -> None:
    dep = deployment(**overrides)
    cfg = dep.config
    for svc, entry in zip(dep.services, files_summary(dep), strict=True):
        (port,) = svc.spec.ports
        assert (svc.exposure.address, svc.exposure.port) == (port.host_ip, port.external)
        assert svc.exposure.address == cfg.publish_address(behind_litellm=svc.key != LITELLM)
        assert entry["container"] == svc.spec.name
        (shown,) = entry["exposure"]
        assert (shown["address"], shown["port"], shown["key"]) == (
            svc.exposure.address, svc.exposure.port, svc.exposure.key or "none")


@pytest.mark.parametrize(("overrides", "secret_keys", "expected"), [
    ({}, ALL_SECRETS, {"api_key", "litellm_master_key", "openai_api_key"}),
    ({}, NO_API_KEY, {"litellm_master_key", "openai_api_key"}),
    ({}, ALL_SECRETS | {"hf_token", "unused"}, {"api_key", "litellm_master_key", "openai_api_key"}),
    ({"litellm": {"enabled": False}}, ALL_SECRETS, {"api_key"}),
    ({"litellm": {"enabled": False}}, NO_API_KEY, set()),
    ({"embeddings": None, "litellm": {"enabled": True}}, ALL_SECRETS, {"api_key", "litellm_master_key"}),
], ids=["all", "no-api-key", "extra-configured", "no-litellm", "nothing", "no-fallbacks"])
def test_secret_keys_are_what_the_containers_read_each_once(
    overrides: dict[str, Any], secret_keys: frozenset[str], expected: set[str]
) -> None:
    dep = deployment(secret_keys=secret_keys, **overrides)
    read = {key for spec in dep.specs for key in spec.secret_env.values()}
    assert set(dep.secret_keys) == read == expected
    assert len(dep.secret_keys) == len(set(dep.secret_keys))


def test_outputs_carry_container_names_only_when_given() -> None:
    dep = deployment()
    bare = dep.outputs(None)
    assert "container_names" not in bare
    names = {LLAMA_SWAP: "a", EMBEDDINGS: "b", LITELLM: "c"}
    named = dep.outputs(names)
    assert named["container_names"] == names
    assert {k: v for k, v in named.items() if k != "container_names"} == bare
    urls = {LLAMA_SWAP: "http://127.0.0.1:9292", EMBEDDINGS: "http://127.0.0.1:8081", LITELLM: "http://127.0.0.1:4000"}
    assert bare["endpoints"] == urls
    assert (bare["llama_swap_url"], bare["embeddings_url"], bare["litellm_url"]) == tuple(urls.values())
    assert bare["auth_required"] == {LLAMA_SWAP: True, EMBEDDINGS: True, LITELLM: True}
    assert bare["sizing"] == dep.plan.to_json()


@pytest.mark.parametrize(("overrides", "keys"), _shapes())
def test_models_output_names_all_three_services_null_when_absent(overrides: dict[str, Any], keys: list[str]) -> None:
    dep = deployment(**overrides)
    models = dep.outputs(None)["models"]
    assert set(models) == {"llama_swap", "embedding", "litellm"}
    for key, entry in ANSWERS_OUTPUT.items():
        if key in keys:
            assert models[entry] == dep.service(key).answers and models[entry], key
        else:
            assert models[entry] is None, key
    assert set(dep.outputs(None)["endpoints"]) == set(keys) == set(dep.outputs(None)["auth_required"])
    if EMBEDDINGS in keys:
        assert models["embedding"]["dimension"] == embedding_dimension(dep.plan) == 768


SOURCE = {"repo": "org/models-GGUF", "revision": "main"}


def _with_sources() -> dict[str, Any]:
    doc = raw()
    doc["models"]["chat"]["source"] = dict(SOURCE)
    doc["embeddings"]["source"] = dict(SOURCE)
    return doc


def test_each_docker_service_downloads_the_files_its_container_loads() -> None:
    dep = deployment(config(_with_sources()))
    loads = {s.key: [d.file for d in s.downloads] for s in dep.services}
    assert loads == {LLAMA_SWAP: ["Qwen2.5-7B-Instruct-Q4_K_M.gguf"], EMBEDDINGS: ["nomic-embed-text-v1.5.Q8_0.gguf"],
                     LITELLM: []}
    assert all(d in dep.downloads for s in dep.services for d in s.downloads)
    assert "hf_token" not in deployment(config(_with_sources()), secret_keys=ALL_SECRETS | {"hf_token"}).secret_keys


def test_each_pool_llama_swap_downloads_only_its_pool_files_and_reads_the_token() -> None:
    doc = _with_sources()
    doc["models"]["big"] = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 4096,
                            "source": {**SOURCE, "file": "big.gguf"}}
    doc["target"] = "kubernetes"
    doc["kubernetes"] = {"pools": {"p16": {"gpu": {"profile": "rtx-5080"}}, "p24": {"gpu": {"profile": "rtx-4090"}}},
                         "placement": {"main": "p16", "big": "p24", "embeddings": "p24"}}
    dep = deployment(config(doc), secret_keys=ALL_SECRETS | {"hf_token"})
    loads = {s.key: [d.file for d in s.downloads] for s in dep.services}
    assert loads == {"llama-swap-p16": ["Qwen2.5-7B-Instruct-Q4_K_M.gguf"],
                     "llama-swap-p24": ["Qwen2.5-14B-Instruct-Q4_K_M.gguf"],
                     EMBEDDINGS: ["nomic-embed-text-v1.5.Q8_0.gguf"], LITELLM: []}
    assert "hf_token" in dep.secret_keys
    assert "hf_token" not in deployment(config(doc), secret_keys=ALL_SECRETS).secret_keys
