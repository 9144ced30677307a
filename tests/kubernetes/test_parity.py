"""The Kubernetes pod specs and the Docker container specs agree field by field.

Both targets adapt the same `ContainerSpec`s (the Docker target maps each one 1:1 to `docker.Container` in
`stack.targets.pulumi.container.container_args`, run for real by tests/deploy); this compares the Kubernetes
container and pod of every service with its spec: image, argv, environment names, ports, mounts, probes, GPU,
stop grace, config hash. Pure: no control plane needed.

Fields that differ, and why (the rest must be equal):

* **image**: Kubernetes refers to the tag; the Docker target pins the id of the image it pulled (`RemoteImage`).
* **argv**: equal, split differently: Kubernetes `command` is Docker's entrypoint, `args` is Docker's cmd.
* **secret env**: equal names; the values come from `secretKeyRef` to a per-service Secret instead of `NAME=value`
  entries in the container's environment.
* **ports**: the container port is equal; there is no host address or host port (`PortSpec.host_ip`,
  `external`): a ClusterIP Service on the same port takes their place, so the outputs carry in-cluster URLs.
* **mounts**: the models mount has the same target and is read-only, from a hostPath / PVC volume instead of a
  bind mount; each upload is a read-only ConfigMap `subPath` mount at the same path instead of a copied file;
  containers with a read-only root filesystem get one more mount, an `emptyDir` on /tmp.
* **probes**: the same argv (`CMD` dropped), interval and timeout; Docker's `start_period` becomes a startup
  probe (`ceil(start_period / interval) + retries` tries), and `retries` the readiness/liveness threshold.
  Liveness restarts the container; Docker only marks it unhealthy.
* **GPU**: `nvidia.com/gpu: 1` for `gpu` specs; `gpu_device` (Docker's `gpus=`) has no counterpart, the device
  plugin chooses.
* **network aliases**: the Service name is the alias the rendered configs use as host name.
* **restart / logging / wait timeout**: no counterpart (`restartPolicy: Always`; the kubelet rotates logs;
  `pulumi.com/skipAwait`, so `wait_timeout_s` is unused).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from stack.deployment import Deployment, build_deployment
from stack.render.containers import CONFIG_HASH_LABEL, LITELLM, ContainerSpec
from stack.sizing.plan import build_plan
from stack.targets.kubernetes import build_manifests
from stack.targets.kubernetes.manifests import CONFIG_HASH_ANNOTATION, GPU_RESOURCE
from tests.unit.render_samples import ALL_SECRETS, config, raw

K8S = {"target": "kubernetes", "kubernetes": {"pools": {
    "rtx5080": {"gpu": {"profile": "rtx-5080"}}, "rtx4090": {"gpu": {"profile": "rtx-4090"}}},
    "placement": {"main": "rtx5080", "embeddings": "rtx4090"}}}

CASES: dict[str, tuple[dict[str, Any], frozenset[str]]] = {
    "sample": (raw(), ALL_SECRETS),
    "no-api-key": (raw(), frozenset({"litellm_master_key", "openai_api_key"})),
    "no-litellm": (raw(litellm={"enabled": False}), frozenset({"api_key"})),
    "cpu": (raw(gpu={"profile": "cpu"}), ALL_SECRETS),
    "two-pools": ({**raw(gpu=None), **K8S}, ALL_SECRETS),
}


def _deployment(case: str) -> Deployment:
    doc, secrets = CASES[case]
    return build_deployment(build_plan(config(doc)), secrets)


def _k8s_view(container: dict[str, Any], pod: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in container["volumeMounts"] if "emptyDir" not in volumes[m["name"]]]
    startup = container["startupProbe"]
    return {
        "image": container["image"],
        "argv": [*container.get("command", []), *container.get("args", [])],
        "env": sorted(e["name"] for e in container["env"]),
        "plain_env": {e["name"]: e["value"] for e in container["env"] if "value" in e},
        "ports": [(p["containerPort"], p["protocol"].lower()) for p in container["ports"]],
        "mounts": sorted((m["mountPath"], m["readOnly"]) for m in mounts),
        "probe": (container["readinessProbe"]["exec"]["command"], container["readinessProbe"]["periodSeconds"],
                  container["readinessProbe"]["timeoutSeconds"], container["readinessProbe"]["failureThreshold"]),
        "startup_budget_s": startup["failureThreshold"] * startup["periodSeconds"],
        "gpu": container["resources"].get("limits", {}).get(GPU_RESOURCE) == "1",
        "stop_s": pod["terminationGracePeriodSeconds"],
        "config_hash": template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION],
    }


def _docker_view(spec: ContainerSpec) -> dict[str, Any]:
    hc = spec.healthcheck
    return {
        "image": spec.image,
        "argv": [*spec.entrypoint, *spec.command],
        "env": sorted([*spec.env, *spec.secret_env]),
        "plain_env": dict(spec.env),
        "ports": [(p.internal, p.protocol) for p in spec.ports],
        "mounts": sorted([(m.target, m.read_only) for m in spec.mounts] + [(u.path, True) for u in spec.uploads]),
        "probe": (list(hc.test[1:]), hc.interval_s, hc.timeout_s, hc.retries),
        "startup_budget_s": (math.ceil(hc.start_period_s / hc.interval_s) + hc.retries) * hc.interval_s,
        "gpu": spec.gpu,
        "stop_s": spec.stop_timeout_s,
        "config_hash": spec.labels[CONFIG_HASH_LABEL],
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_specs_match_container_specs(case: str) -> None:
    dep = _deployment(case)
    manifests = build_manifests(dep)
    by_name = {d["metadata"]["name"]: d for d in manifests.deployments}
    assert list(by_name) == [s.key for s in dep.services]
    for svc in dep.services:
        template = by_name[svc.key]["spec"]["template"]
        pod = template["spec"]
        (container,) = pod["containers"]
        assert _k8s_view(container, pod, template) == _docker_view(svc.spec), svc.key
        hc = svc.spec.healthcheck
        assert _k8s_view(container, pod, template)["startup_budget_s"] >= hc.start_period_s + hc.retries * hc.interval_s


@pytest.mark.parametrize("case", sorted(CASES))
def test_services_are_reachable_under_the_names_and_ports_the_rendered_configs_use(case: str) -> None:
    dep = _deployment(case)
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
                for s in build_manifests(dep).services}
    for svc in dep.services:
        assert svc.key in services
        assert {p.internal for p in svc.spec.ports} == services[svc.key]
    if LITELLM not in services:
        return
    doc = yaml.safe_load(dep.service(LITELLM).spec.uploads[0].content)
    bases = {urlparse(m["litellm_params"]["api_base"]) for m in doc["model_list"]
             if str(m["litellm_params"].get("api_base", "")).startswith("http://")}
    assert bases
    for url in bases:
        assert url.hostname in services and url.port in services[str(url.hostname)], url.geturl()
