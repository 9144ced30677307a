"""The program on the kubernetes target under Pulumi's mocks (no engine, no API server): what it registers and how.

The real engine and API server are tests/kubernetes/test_k8s_deploy.py; this checks, fast, the resource options
those tests cannot see: every object a child of the `KubernetesStack` component, each Deployment created after
the Namespace, ConfigMap and Secret it reads, the Secrets' values sent as Pulumi secrets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
from google.protobuf import json_format

from stack.targets.kubernetes.manifests import secret_name
from stack.targets.pulumi.program import StackRefused, main
from tests.kubernetes.test_k8s_deploy import stack_config
from tests.pulumi.conftest import MONITOR, PROJECT, RecordingMocks, mocks, pulumi_test

__all__ = ["mocks"]  # the mocks fixture of tests/pulumi, for this module too

COMPONENT = "local-llm-stack:index:KubernetesStack"
SECRET_SIG, SECRET_VALUE = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
"""How Pulumi's wire format marks a secret value: `{SECRET_SIG: SECRET_VALUE, "value": ...}`."""


def _configure(raw: dict[str, Any], secrets: dict[str, str]) -> None:
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    values |= {f"{PROJECT}:{k}": v for k, v in secrets.items()}
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secrets])


def _run() -> None:
    @pulumi_test
    def run() -> None:
        main()

    run()


def _requests() -> dict[str, Any]:
    return {r.name: r for r in MONITOR.requests}


def _named(urns: Any) -> set[str]:
    return {u.rsplit("::", 1)[-1] for u in urns}


def test_objects_are_children_of_the_component_created_after_what_they_read(
        mocks: RecordingMocks, tmp_path: Path) -> None:
    _configure(stack_config(tmp_path, "llm"), {"api_key": "k1", "litellm_master_key": "k2"})
    _run()
    requests = _requests()
    (component,) = [r for r in requests.values() if r.type == COMPONENT]
    objects = {name: r for name, r in requests.items() if r.type.startswith("kubernetes:")}
    assert len(objects) >= 10, sorted(objects)
    for name, r in objects.items():
        assert r.parent.endswith(f"{COMPONENT}::{component.name}"), name
    deployments = {n.removeprefix("local-llm-stack-"): r for n, r in objects.items()
                   if r.type == "kubernetes:apps/v1:Deployment"}
    assert {"embeddings", "litellm"} < set(deployments)
    for key, d in deployments.items():
        reads = {"local-llm-stack-namespace", f"local-llm-stack-{secret_name(key)}"}
        if f"local-llm-stack-{key}-config" in objects:
            reads.add(f"local-llm-stack-{key}-config")
        assert reads <= _named(d.dependencies), key
    for name, r in objects.items():
        if r.type == "kubernetes:core/v1:Secret":
            string_data = json_format.MessageToDict(r.object)["stringData"]
            assert string_data[SECRET_SIG] == SECRET_VALUE, name
            assert set(string_data["value"].values()) <= {"k1", "k2"}


def test_a_refused_stack_registers_no_kubernetes_object(mocks: RecordingMocks, tmp_path: Path) -> None:
    raw = stack_config(tmp_path, "llm")
    raw["models"]["big"]["ctx_size"] = 131072
    raw["kubernetes"]["placement"]["big"] = "rtx5080"
    _configure(raw, {"api_key": "k1", "litellm_master_key": "k2"})
    with pytest.raises(StackRefused, match="DOES NOT FIT"):
        _run()
    assert not [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
