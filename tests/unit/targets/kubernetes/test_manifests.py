"""The kubernetes target's manifests, pure: what each Deployment, Service, ConfigMap, Secret and NetworkPolicy says."""

from __future__ import annotations

from typing import Any

import pytest

from stack.deployment import Deployment, build_deployment
from stack.render.containers import CONFIG_HASH_LABEL, EMBEDDINGS, LITELLM, LLAMA_SWAP, HealthcheckSpec
from stack.sizing.plan import build_plan
from stack.targets.kubernetes import build_manifests, outputs
from stack.targets.kubernetes.manifests import (
    CONFIG_HASH_ANNOTATION,
    GPU_RESOURCE,
    SKIP_AWAIT,
    exec_command,
    probes,
)
from tests.unit.render_samples import ALL_SECRETS, config, raw


def _deployment(secret_keys: frozenset[str] = ALL_SECRETS, **overrides: Any) -> Deployment:
    return build_deployment(build_plan(config(**overrides)), secret_keys)


def _by_name(objs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs}


def _pod(d: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = d["spec"]["template"]["spec"]
    return pod


def test_one_deployment_service_and_namespace_per_service() -> None:
    m = build_manifests(_deployment())
    assert m.namespace["metadata"]["name"] == "local-llm-stack"
    assert [d["metadata"]["name"] for d in m.deployments] == [LLAMA_SWAP, EMBEDDINGS, LITELLM]
    assert [s["metadata"]["name"] for s in m.services] == [LLAMA_SWAP, EMBEDDINGS, LITELLM]
    assert {o["metadata"]["namespace"] for o in m.objects()[1:]} == {"local-llm-stack"}
    assert m.volume_claim is None
    for svc in m.services:
        assert svc["spec"]["type"] == "ClusterIP"


def test_service_ports_are_the_container_ports_the_rendered_configs_use() -> None:
    dep = _deployment()
    m = build_manifests(dep)
    for svc, d in zip(m.services, m.deployments, strict=True):
        (container,) = _pod(d)["containers"]
        assert [p["port"] for p in svc["spec"]["ports"]] == [p["containerPort"] for p in container["ports"]]
        assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
    litellm_config = dep.service(LITELLM).spec.uploads[0].content
    assert "http://llama-swap:8080" in litellm_config and "http://embeddings:8080" in litellm_config


def test_gpu_limit_only_for_gpu_services_and_none_on_cpu_profile() -> None:
    m = build_manifests(_deployment())
    limits = {d["metadata"]["name"]: _pod(d)["containers"][0]["resources"].get("limits") for d in m.deployments}
    assert limits == {LLAMA_SWAP: {GPU_RESOURCE: "1"}, EMBEDDINGS: {GPU_RESOURCE: "1"}, LITELLM: None}
    cpu = build_manifests(_deployment(gpu={"profile": "cpu"}))
    assert all("limits" not in _pod(d)["containers"][0]["resources"] for d in cpu.deployments)
    assert all(_pod(d)["containers"][0]["resources"]["requests"]["cpu"] for d in cpu.deployments)


def test_command_is_docker_entrypoint_and_args_is_docker_cmd() -> None:
    dep = _deployment()
    m = _by_name(build_manifests(dep).deployments)
    swap = _pod(m[LLAMA_SWAP])["containers"][0]
    assert swap["command"] == list(dep.service(LLAMA_SWAP).spec.entrypoint) and "args" not in swap
    lite = _pod(m[LITELLM])["containers"][0]
    assert lite["args"] == list(dep.service(LITELLM).spec.command) and "command" not in lite


def test_probes_carry_the_healthcheck_argv_and_the_startup_probe_covers_start_period() -> None:
    hc = HealthcheckSpec(("CMD", "curl", "-f", "http://127.0.0.1:8080/health"), 10, 5, 3, 95)
    p = probes(hc)
    assert p["startupProbe"]["exec"]["command"] == ["curl", "-f", "http://127.0.0.1:8080/health"]
    assert p["startupProbe"]["failureThreshold"] * p["startupProbe"]["periodSeconds"] >= 95 + 3 * 10
    assert p["readinessProbe"]["failureThreshold"] == p["livenessProbe"]["failureThreshold"] == 3
    assert {q["timeoutSeconds"] for q in p.values()} == {5}
    assert exec_command(("CMD-SHELL", "curl -f x || exit 1")) == ["/bin/sh", "-c", "curl -f x || exit 1"]
    with pytest.raises(ValueError, match="CMD or CMD-SHELL"):
        exec_command(("NONE",))


def test_models_read_only_and_uploads_mounted_from_their_config_map() -> None:
    dep = _deployment()
    m = build_manifests(dep)
    maps = _by_name(m.config_maps)
    assert set(maps) == {"llama-swap-config", "litellm-config"}
    assert maps["llama-swap-config"]["data"]["config.yaml"] == dep.service(LLAMA_SWAP).spec.uploads[0].content
    for d in m.deployments:
        (container,) = _pod(d)["containers"]
        models = [v for v in container["volumeMounts"] if v["name"] == "models"]
        assert all(v["readOnly"] for v in models)
        assert all(v["readOnly"] for v in container["volumeMounts"] if v["name"] == "config")
    swap = _pod(_by_name(m.deployments)[LLAMA_SWAP])
    assert {"name": "models", "hostPath": {"path": "/srv/models", "type": "Directory"}} in swap["volumes"]
    assert {"name": "config", "mountPath": "/app/config.yaml", "subPath": "config.yaml", "readOnly": True} in (
        swap["containers"][0]["volumeMounts"])
    lite = _pod(_by_name(m.deployments)[LITELLM])
    assert not any(v["name"] == "models" for v in lite["volumes"])


def test_secrets_only_as_secret_refs_never_in_config_maps_or_plain_env() -> None:
    dep = _deployment()
    m = build_manifests(dep)
    by_service = {s.service: s for s in m.secrets}
    assert by_service[LITELLM].entries == {"LITELLM_MASTER_KEY": "litellm_master_key", "LLAMA_SWAP_API_KEY": "api_key",
                                           "OPENAI_API_KEY": "openai_api_key"}
    for d in m.deployments:
        key = d["metadata"]["name"]
        env = {e["name"]: e for e in _pod(d)["containers"][0]["env"]}
        for name in dep.service(key).spec.secret_env:
            assert "value" not in env[name]
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": f"{key}-secrets", "key": name}
    assert not any(o["kind"] == "Secret" for o in m.objects())
    without_key = build_manifests(_deployment(frozenset({"litellm_master_key", "openai_api_key"})))
    assert {s.service for s in without_key.secrets} == {LITELLM}


def test_config_hash_annotation_changes_only_for_the_service_whose_file_changed() -> None:
    before = _by_name(build_manifests(_deployment()).deployments)
    doc = raw()
    doc["models"]["chat"]["ctx_size"] = 4096
    after = _by_name(build_manifests(build_deployment(build_plan(config(doc)), ALL_SECRETS)).deployments)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {LLAMA_SWAP}
    old, new = (x[LLAMA_SWAP]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
                for x in (before, after))
    assert old != new


def test_annotation_is_the_specs_config_hash_and_every_awaited_object_skips_await() -> None:
    dep = _deployment()
    m = build_manifests(dep)
    for d in m.deployments:
        spec = dep.service(d["metadata"]["name"]).spec
        assert d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == spec.labels[
            CONFIG_HASH_LABEL]
    for obj in (*m.deployments, *m.services):
        assert obj["metadata"]["annotations"][SKIP_AWAIT] == "true"


def test_security_context_restrictive_everywhere_and_non_root_where_the_image_allows() -> None:
    m = _by_name(build_manifests(_deployment()).deployments)
    for name, d in m.items():
        pod = _pod(d)
        ctx = pod["containers"][0]["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}
        assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
        assert ctx["runAsNonRoot"] is (name != LITELLM)
        assert ctx["readOnlyRootFilesystem"] is (name != LITELLM)
        if ctx["runAsNonRoot"]:
            assert ctx["runAsUser"] != 0


def test_network_policy_litellm_alone_open_to_other_namespaces() -> None:
    m = build_manifests(_deployment())
    policies = _by_name(m.network_policies)
    inner = policies["namespace-only"]["spec"]
    assert inner["podSelector"]["matchExpressions"][0]["values"] == [LLAMA_SWAP, EMBEDDINGS]
    assert inner["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}], "from": [{"podSelector": {}}]}]
    outer = policies["litellm-ingress"]["spec"]
    assert outer["podSelector"] == {"matchLabels": {"local-llm-stack/service": LITELLM}}
    assert outer["ingress"] == [{"ports": [{"protocol": "TCP", "port": 4000}]}]
    off = build_manifests(_deployment(litellm={"enabled": False}))
    (front,) = off.network_policies
    assert front["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]


POOLS: dict[str, dict[str, Any]] = {
    "small": {"gpu": {"profile": "rtx-5080"}, "node_selector": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-5080"},
              "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
              "runtime_class": "nvidia"},
    "large": {"gpu": {"profile": "rtx-4090"}, "node_selector": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-4090"}},
}


def _k8s(**kubernetes: Any) -> Deployment:
    """The sample on the kubernetes target (its `gpu` moves into the pools)."""
    doc = raw(target="kubernetes", kubernetes={"namespace": "llm", "pools": POOLS, **kubernetes})
    return build_deployment(build_plan(config(doc)), ALL_SECRETS)


def test_models_volume_choices() -> None:
    m = build_manifests(_k8s(models_volume={"existing_claim": "models"}))
    assert m.volume_claim is None and m.namespace["metadata"]["name"] == "llm"
    vol = _pod(m.deployments[0])["volumes"][0]
    assert vol == {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}
    dep = _k8s(models_volume={"new_claim": {"storage_class": "standard"}})
    m = build_manifests(dep)
    assert m.volume_claim is not None
    size = m.volume_claim["spec"]["resources"]["requests"]["storage"]
    weights = sum(p.weights_bytes for p in dep.plan.processes.values())
    assert int(size.removesuffix("Gi")) * 2**30 >= weights
    assert m.volume_claim["spec"]["storageClassName"] == "standard"
    assert _pod(m.deployments[0])["volumes"][0]["persistentVolumeClaim"]["claimName"] == "llm-models"
    sized = build_manifests(_k8s(models_volume={"new_claim": {"size_gib": 80}}))
    assert sized.volume_claim is not None and sized.volume_claim["spec"]["resources"]["requests"] == {
        "storage": "80Gi"}
    host = build_manifests(_k8s(models_volume={"host_path": "/data/gguf"}))
    assert _pod(host.deployments[0])["volumes"][0] == {"name": "models",
                                                       "hostPath": {"path": "/data/gguf", "type": "Directory"}}


def test_pool_scheduling_from_placement() -> None:
    dep = _k8s(placement={"main": "small", "embeddings": "large", "litellm": "large"})
    placement = getattr(dep, "placement", None)
    if placement is None:
        pytest.skip("Deployment.placement (service -> pool, the config schema helper's part) has not landed")
    m = _by_name(build_manifests(dep).deployments)
    for key, pool in placement.items():
        pod = _pod(m[key])
        want = POOLS[pool]
        assert pod["nodeSelector"] == want["node_selector"]
        assert pod.get("tolerations", []) == want.get("tolerations", [])
        assert pod.get("runtimeClassName") == want.get("runtime_class")


def test_outputs_keep_the_shape_with_in_cluster_urls() -> None:
    dep = _deployment()
    out = outputs(dep)
    assert set(out) == set(dep.outputs({s.key: s.key for s in dep.services}))
    assert out["litellm_url"] == "http://litellm.local-llm-stack.svc.cluster.local:4000"
    assert out["endpoints"][LLAMA_SWAP] == out["llama_swap_url"]
