"""The `target` key and the `kubernetes` block: each refusal names its key path and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from models import ConfigError, StackConfig, parse_stack_config

MODELS = {
    "a": {"file": "a.gguf", "ctx_size": 4096},
    "b": {"file": "b.gguf", "ctx_size": 4096},
    "c": {"file": "c.gguf", "ctx_size": 4096},
}


def k8s(kubernetes: dict[str, Any] | None = None, **top: Any) -> StackConfig:
    raw: dict[str, Any] = {"models_dir": "/srv/models", "models": MODELS, "groups": {"chat": {"members": ["a", "b"]}},
                           "target": "kubernetes",
                           "kubernetes": kubernetes if kubernetes is not None else {"pools": {"p16": {}}}}
    raw.update(top)
    return parse_stack_config({k: v for k, v in raw.items() if v is not None})


def problems(kubernetes: dict[str, Any] | None = None, **top: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        k8s(kubernetes, **top)
    return dict(info.value.problems)


def test_docker_is_the_default_target_and_has_no_kubernetes_block() -> None:
    cfg = parse_stack_config({"models_dir": "/m", "models": MODELS})
    assert cfg.target == "docker" and cfg.kubernetes is None


def test_kubernetes_block_with_docker_target_is_refused() -> None:
    found = problems(target="docker")
    assert list(found) == ["kubernetes"]
    assert "set target: kubernetes, or remove the block" in found["kubernetes"]


def test_kubernetes_target_needs_the_block() -> None:
    with pytest.raises(ConfigError) as info:
        parse_stack_config({"models_dir": "/m", "models": MODELS, "target": "kubernetes"})
    assert info.value.problems[0][0] == "kubernetes" and "at least one pool" in info.value.problems[0][1]


def test_defaults() -> None:
    cfg = k8s()
    assert cfg.kubernetes is not None
    assert cfg.kubernetes.namespace == "local-llm-stack"
    assert cfg.kubernetes.models_volume is None
    assert cfg.kubernetes.first_pool == "p16"
    pool = cfg.kubernetes.pools["p16"]
    assert pool.gpus_per_node == 1 and pool.gpu.profile == "rtx-5080" and pool.runtime_class is None


@pytest.mark.parametrize(("block", "path", "fix"), [
    ({"pools": {}}, "kubernetes.pools", "add at least one GPU pool"),
    ({"namespace": "Local_LLM", "pools": {"p": {}}}, "kubernetes.namespace", "lowercase letters"),
    ({"pools": {"GPU": {}}}, "kubernetes.pools.GPU", "llama-swap-<pool>"),
    ({"pools": {"p" * 53: {}}}, f"kubernetes.pools.{'p' * 53}", "1 to 52"),
    ({"pools": {"p": {"gpus_per_node": 0}}}, "kubernetes.pools.p.gpus_per_node", "greater than or equal to 1"),
    ({"pools": {"p": {"gpu": {"profile": "cpu"}}}}, "kubernetes.pools.p.gpu.profile", "pick a GPU profile"),
    ({"pools": {"p": {"gpu": {"device": "device=0"}}}}, "kubernetes.pools.p.gpu.device", "remove device"),
    ({"pools": {"p": {"runtime_class": "Nvidia"}}}, "kubernetes.pools.p.runtime_class", "DNS-1123 subdomain"),
    ({"pools": {"p": {"node_selector": {"bad key": "x"}}}}, "kubernetes.pools.p.node_selector.bad key",
     "[prefix/]name"),
    ({"pools": {"p": {"node_selector": {"nvidia.com/gpu.product": "RTX 5080"}}}},
     "kubernetes.pools.p.node_selector.nvidia.com/gpu.product", "at most 63 letters"),
    ({"pools": {"p": {"tolerations": [{"operator": "Equal"}]}}}, "kubernetes.pools.p.tolerations[0].operator",
     "add a key"),
    ({"pools": {"p": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}}},
     "kubernetes.pools.p.tolerations[0].value", "remove value"),
    ({"pools": {"p": {"tolerations": [{"key": "k", "effect": "Never"}]}}},
     "kubernetes.pools.p.tolerations[0].effect", "NoSchedule"),
    ({"pools": {"p": {"nodeSelector": {}}}}, "kubernetes.pools.p.nodeSelector", "unknown key"),
    ({"models_volume": {}, "pools": {"p": {}}}, "kubernetes.models_volume", "set exactly one of"),
    ({"models_volume": {"existing_claim": "m", "host_path": "/srv/m"}, "pools": {"p": {}}},
     "kubernetes.models_volume", "(got existing_claim, host_path); keep one"),
    ({"models_volume": {"host_path": "/etc"}, "pools": {"p": {}}}, "kubernetes.models_volume.host_path",
     "system directory"),
    ({"models_volume": {"new_claim": {"size_gib": 0}}, "pools": {"p": {}}},
     "kubernetes.models_volume.new_claim.size_gib", "greater than or equal to 1"),
])
def test_block_refusals_name_key_and_fix(block: dict[str, Any], path: str, fix: str) -> None:
    found = problems(block)
    assert path in found, found
    assert fix in found[path]


def test_models_volume_kinds() -> None:
    for volume, kind in (({"existing_claim": "models"}, "existing_claim"),
                         ({"new_claim": {"storage_class": "standard"}}, "new_claim"),
                         ({"host_path": "/srv/models"}, "host_path")):
        cfg = k8s({"models_volume": volume, "pools": {"p": {}}})
        assert cfg.kubernetes is not None and cfg.kubernetes.models_volume is not None
        assert cfg.kubernetes.models_volume.kind == kind


def test_top_level_gpu_is_refused_on_kubernetes() -> None:
    found = problems(gpu={"profile": "rtx-4090"})
    assert "put it under kubernetes.pools.<pool>.gpu instead" in found["gpu"]


@pytest.mark.parametrize(("placement", "path", "fix"), [
    ({"chat": "nowhere"}, "kubernetes.placement.chat", "unknown pool 'nowhere'; known pools: ['p16', 'p24']"),
    ({"a": "p24"}, "kubernetes.placement.a", "place the group instead (placement.chat)"),
    ({"zz": "p24"}, "kubernetes.placement.zz", "use one of ['c', 'chat', 'embeddings', 'litellm']"),
    ({"litellm": "p24"}, "kubernetes.placement.litellm", "set litellm.enabled: true"),
    ({"embeddings": "p24"}, "kubernetes.placement.embeddings", "enable embeddings"),
])
def test_placement_refusals(placement: dict[str, str], path: str, fix: str) -> None:
    found = problems({"pools": {"p16": {}, "p24": {"gpu": {"profile": "rtx-4090"}}}, "placement": placement})
    assert fix in found[path], found


def test_placement_accepts_groups_models_and_services() -> None:
    cfg = k8s({"pools": {"p16": {}, "p24": {"gpu": {"profile": "rtx-4090"}}},
               "placement": {"chat": "p24", "c": "p16", "embeddings": "p24"}},
              embeddings={"file": "e.gguf"})
    assert cfg.kubernetes is not None and cfg.kubernetes.placement["chat"] == "p24"


def test_placement_key_naming_a_group_and_another_model_is_refused() -> None:
    found = problems({"pools": {"p16": {}}, "placement": {"c": "p16"}}, groups={"c": {"members": ["a", "b"]}})
    assert "rename the group" in found["kubernetes.placement.c"]
    assert k8s({"pools": {"p16": {}}, "placement": {"c": "p16"}}, groups={"c": {"members": ["c"]}}) is not None
