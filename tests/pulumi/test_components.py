"""The Pulumi resource graph under mocks: types, parents, container arguments, and secrets kept secret."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from stack.render.containers import CONFIG_HASH_LABEL, EMBEDDINGS, LITELLM, LLAMA_SWAP
from stack.targets.pulumi import LocalLlmStack, container_args
from tests.pulumi.conftest import MONITOR, RecordingMocks, mock_image_id, pulumi_test
from tests.unit.render_samples import config, deployment

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
NETWORK = "docker:index/network:Network"
COMPONENTS = {
    "local-llm-stack:index:LocalLlmStack",
    "local-llm-stack:index:StackNetwork",
    "local-llm-stack:index:LlamaSwap",
    "local-llm-stack:index:EmbeddingServer",
    "local-llm-stack:index:LiteLLMProxy",
}
SECRET_VALUES = {
    "api_key": "sk-llama-SECRET-111",
    "litellm_master_key": "sk-master-SECRET-222",
    "openai_api_key": "sk-openai-SECRET-333",
}


def _secrets(keys: tuple[str, ...] = tuple(SECRET_VALUES)) -> dict[str, pulumi.Output[str]]:
    return {k: pulumi.Output.secret(SECRET_VALUES[k]) for k in keys}


async def _settled(stack: LocalLlmStack) -> None:
    """Every registration has been answered once each container's id is known."""
    for svc in stack.services.values():
        await svc.container.id.future()
    await stack.network.network.id.future()


def _containers(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    return {r.inputs["name"]: r.inputs for r in mocks.of_type(CONTAINER)}


def _type_of_urn(urn: str) -> str:
    return urn.split("::")[2]


@pulumi_test
def test_resource_graph_types_and_parents(mocks: RecordingMocks) -> Awaitable[None]:
    stack = LocalLlmStack("t", deployment(), _secrets())

    async def check() -> None:
        await _settled(stack)
        by_name = {r.name: r for r in MONITOR.requests if r.type != "pulumi:pulumi:Stack"}
        expected = {
            "t": ("local-llm-stack:index:LocalLlmStack", "pulumi:pulumi:Stack"),
            "t-net": ("local-llm-stack:index:StackNetwork", "local-llm-stack:index:LocalLlmStack"),
            "t-net-network": (NETWORK, "local-llm-stack:index:StackNetwork"),
            "t-llama-swap": ("local-llm-stack:index:LlamaSwap", "local-llm-stack:index:LocalLlmStack"),
            "t-llama-swap-image": (IMAGE, "local-llm-stack:index:LlamaSwap"),
            "t-llama-swap-container": (CONTAINER, "local-llm-stack:index:LlamaSwap"),
            "t-embeddings": ("local-llm-stack:index:EmbeddingServer", "local-llm-stack:index:LocalLlmStack"),
            "t-embeddings-image": (IMAGE, "local-llm-stack:index:EmbeddingServer"),
            "t-embeddings-container": (CONTAINER, "local-llm-stack:index:EmbeddingServer"),
            "t-litellm": ("local-llm-stack:index:LiteLLMProxy", "local-llm-stack:index:LocalLlmStack"),
            "t-litellm-image": (IMAGE, "local-llm-stack:index:LiteLLMProxy"),
            "t-litellm-container": (CONTAINER, "local-llm-stack:index:LiteLLMProxy"),
        }
        got = {name: (r.type, _type_of_urn(r.parent).split("$")[-1]) for name, r in by_name.items()}
        assert got == expected
        for name, req in by_name.items():
            if req.type in COMPONENTS:
                assert not req.custom
                assert json.loads(json.dumps(rpc.deserialize_properties(req.object))) == {}, f"{name} has props"
        assert [r.typ for r in mocks.resources].count(CONTAINER) == 3

    return check()


@pulumi_test
def test_containers_replace_safely_and_wait_for_health(mocks: RecordingMocks) -> Awaitable[None]:
    stack = LocalLlmStack("t", deployment(), _secrets())

    async def check() -> None:
        await _settled(stack)
        for svc in (LLAMA_SWAP, EMBEDDINGS, LITELLM):
            req = MONITOR.request(f"t-{svc}-container")
            assert req.deleteBeforeReplace
            assert list(req.replaceOnChanges) == ["healthcheck"]
        litellm_deps = set(MONITOR.request("t-litellm-container").dependencies)
        swap_urn = await stack.services[LLAMA_SWAP].container.urn.future()
        assert swap_urn in litellm_deps
        for inputs in _containers(mocks).values():
            assert inputs["wait"] is True
            assert inputs["waitTimeout"] >= 120
            assert inputs["restart"] == "unless-stopped"
            assert inputs["mustRun"] is True
            assert inputs["logDriver"] == "json-file"
            assert inputs["logOpts"] == {"max-size": "50m", "max-file": "3"}
            assert inputs["stopTimeout"] >= 30

    return check()


@pytest.mark.parametrize("overrides", [{}, {"embeddings": None}, {"litellm": {"enabled": False}}],
                         ids=["all", "no-embeddings", "no-litellm"])
@pulumi_test
def test_each_container_waits_for_the_services_it_comes_after(
    mocks: RecordingMocks, overrides: dict[str, Any]
) -> Awaitable[None]:
    """The Deployment's start order as Pulumi dependencies: LiteLLM's container depends on every other service's
    container, and no container depends on a service it does not come `after`."""
    dep = deployment(**overrides)
    stack = LocalLlmStack("t", dep, _secrets())

    async def check() -> None:
        await _settled(stack)
        urns = {key: await svc.container.urn.future() for key, svc in stack.services.items()}
        assert list(urns) == [s.key for s in dep.services]
        for svc in dep.services:
            deps = set(MONITOR.request(f"t-{svc.key}-container").dependencies)
            assert {key for key, urn in urns.items() if urn in deps} == set(svc.after), svc.key
        if LITELLM in urns:
            assert set(dep.service(LITELLM).after) == set(urns) - {LITELLM}

    return check()


@pulumi_test
def test_container_arguments(mocks: RecordingMocks) -> Awaitable[None]:
    cfg = config(gpu={"profile": "rtx-4090", "device": "device=0"})
    stack = LocalLlmStack("t", deployment(cfg), _secrets())

    async def check() -> None:
        await _settled(stack)
        containers = _containers(mocks)
        images = {r.inputs["name"]: r.inputs for r in mocks.of_type(IMAGE)}
        assert set(images) == {cfg.images.llama_swap, cfg.images.llama_server, cfg.images.litellm}
        assert all(i["keepLocally"] is True for i in images.values())
        network_id = await stack.network.network_id.future()

        swap = containers["llm-llama-swap"]
        embed = containers["llm-embeddings"]
        litellm = containers["llm-litellm"]
        assert swap["image"] == mock_image_id(cfg.images.llama_swap)
        assert embed["image"] == mock_image_id(cfg.images.llama_server)
        assert litellm["image"] == mock_image_id(cfg.images.litellm)

        assert swap["gpus"] == "device=0" and embed["gpus"] == "device=0"
        assert "gpus" not in litellm

        for inputs in (swap, embed, litellm):
            assert {p["ip"] for p in inputs["ports"]} == {"127.0.0.1"}
            assert [n["name"] for n in inputs["networksAdvanced"]] == [network_id]
            assert inputs["healthcheck"]["tests"][0] == "CMD"
            assert inputs["healthcheck"]["startPeriod"].endswith("s")
            labels = {lab["label"]: lab["value"] for lab in inputs["labels"]}
            assert len(labels[CONFIG_HASH_LABEL]) == 64
        assert swap["ports"][0]["external"] == 9292 and swap["ports"][0]["internal"] == 8080
        assert swap["networksAdvanced"][0]["aliases"] == ["llama-swap"]

        for inputs in (swap, embed):
            mount = {"target": "/models", "type": "bind", "source": "/srv/models", "readOnly": True}
            assert inputs["mounts"] == [mount]
        assert "mounts" not in litellm or litellm["mounts"] == []

        assert [u["file"] for u in swap["uploads"]] == ["/app/config.yaml"]
        assert "models:" in swap["uploads"][0]["content"]
        assert [u["file"] for u in litellm["uploads"]] == ["/app/config.yaml"]
        assert "model_list:" in litellm["uploads"][0]["content"]
        assert swap["entrypoints"][0] == "/app/llama-swap"
        assert embed["entrypoints"][0] == "/app/llama-server"
        assert litellm["command"][:2] == ["--config", "/app/config.yaml"]

    return check()


@pulumi_test
def test_cpu_profile_requests_no_gpu(mocks: RecordingMocks) -> Awaitable[None]:
    stack = LocalLlmStack("t", deployment(gpu={"profile": "cpu"}), _secrets())

    async def check() -> None:
        await _settled(stack)
        for inputs in _containers(mocks).values():
            assert "gpus" not in inputs and "deviceRequests" not in inputs

    return check()


@pulumi_test
def test_secrets_reach_containers_only_as_secret_envs(mocks: RecordingMocks) -> Awaitable[None]:
    stack = LocalLlmStack("t", deployment(), _secrets())

    async def check() -> None:
        await _settled(stack)
        for svc in stack.services.values():
            assert await svc.container.envs.is_secret()
        envs = await stack.services[LITELLM].container.envs.future()
        assert envs is not None
        assert f"LITELLM_MASTER_KEY={SECRET_VALUES['litellm_master_key']}" in envs
        assert f"OPENAI_API_KEY={SECRET_VALUES['openai_api_key']}" in envs
        assert f"LLAMA_SWAP_API_KEY={SECRET_VALUES['api_key']}" in envs
        assert "LITELLM_MODE=PRODUCTION" in envs
        swap_envs = await stack.services[LLAMA_SWAP].container.envs.future()
        assert swap_envs is not None
        assert f"LLAMA_SWAP_API_KEY={SECRET_VALUES['api_key']}" in swap_envs
        assert not any("MASTER" in e or "OPENAI" in e for e in swap_envs)

        for resource in mocks.resources:
            inputs = dict(resource.inputs)
            if resource.typ == CONTAINER:
                assert rpc.is_rpc_secret(inputs.pop("envs")), f"{resource.name} envs not sent as a secret"
            text = json.dumps(inputs, default=str)
            for value in SECRET_VALUES.values():
                assert value not in text, f"{resource.name} carries a secret outside envs"
        assert not any(v in json.dumps(stack.endpoints) for v in SECRET_VALUES.values())

    return check()


@pulumi_test
def test_without_secrets_envs_stay_plain_and_auth_is_off(mocks: RecordingMocks) -> Awaitable[None]:
    cfg = config(litellm={"enabled": False})
    stack = LocalLlmStack("t", deployment(cfg, secret_keys=frozenset()), {})

    async def check() -> None:
        await _settled(stack)
        assert set(stack.services) == {LLAMA_SWAP, EMBEDDINGS}
        swap = stack.services[LLAMA_SWAP].container
        assert not await swap.envs.is_secret()
        assert await swap.envs.future() == ["NVIDIA_DRIVER_CAPABILITIES=compute,utility"]
        content = _containers(mocks)["llm-llama-swap"]["uploads"][0]["content"]
        assert "apiKeys" not in content

    return check()


def test_missing_secret_is_refused_before_registering(mocks: RecordingMocks) -> None:
    with pytest.raises(ValueError, match="litellm_master_key"):
        LocalLlmStack("t", deployment(), _secrets(("api_key", "openai_api_key")))
    assert MONITOR.requests == []


@pulumi_test
def test_container_args_maps_a_spec(mocks: RecordingMocks) -> Awaitable[None]:
    spec = deployment().specs[0]
    args = container_args(spec, "sha256:img", "net-id", {"LLAMA_SWAP_API_KEY": pulumi.Output.secret("k")})
    assert args["image"] == "sha256:img"
    assert args["name"] == "llm-llama-swap"
    assert args["gpus"] == "all"
    assert args["networks_advanced"][0].name == "net-id"
    assert args["mounts"][0].read_only is True
    assert args["ports"][0].ip == "127.0.0.1"
    assert args["healthcheck"].interval == "10s"
    assert args["destroy_grace_seconds"] == args["stop_timeout"] == spec.stop_timeout_s
    with pytest.raises(ValueError, match="LLAMA_SWAP_API_KEY"):
        container_args(spec, "sha256:img", "net-id", {})

    async def check() -> None:
        envs = args["envs"]
        assert isinstance(envs, pulumi.Output)
        assert await envs.is_secret()
        assert await envs.future() == ["LLAMA_SWAP_API_KEY=k", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]

    return check()
