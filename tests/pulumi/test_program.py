"""`stack.targets.pulumi.program.main()` under mocks: nothing is registered unless the config is valid and fits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from models.load import parse_stack_config
from stack.deployment import build_deployment
from stack.gguf.sources import header_source_for
from stack.report import render_text
from stack.sizing.plan import build_plan
from stack.targets.pulumi.program import StackRefused, main, read_config
from tests.pulumi.conftest import MONITOR, PROJECT, RecordingMocks, pulumi_test, set_config_from_stack_file
from tests.smoke.targets import parse_targets

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = "/nonexistent/local-llm-stack-models"
"""Absent here, so sizing falls back to the catalog and `arch` blocks instead of GGUF headers."""

SECRET_VALUES = {"api_key": "sk-llama-SECRET-aaa", "litellm_master_key": "sk-master-SECRET-bbb"}

FITS: dict[str, Any] = {
    "models_dir": MODELS_DIR,
    "gpu": {"profile": "rtx-5080"},
    "models": {"tiny": {"file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf", "ctx_size": 2048, "aliases": ["small"]}},
    "embeddings": {"name": "embed", "file": "nomic-embed-text-v1.5.Q8_0.gguf", "pooling": "mean"},
    "litellm": {"enabled": True},
}

HUGE_ARCH = {
    "n_layer": 80, "n_embd": 8192, "n_head": 64, "n_head_kv": 8, "head_dim": 128,
    "n_ff": 28672, "n_vocab": 128256, "weights_mib": 40000,
}
DOES_NOT_FIT: dict[str, Any] = {
    "models_dir": MODELS_DIR,
    "gpu": {"profile": "rtx-5080"},
    "models": {"huge": {"file": "custom-70b-Q4_K_M.gguf", "ctx_size": 4096, "arch": HUGE_ARCH}},
}


def _set_config(doc: dict[str, Any], secrets: dict[str, str]) -> None:
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
    values |= {f"{PROJECT}:{k}": v for k, v in secrets.items()}
    values["docker:host"] = "unix:///var/run/docker.sock"
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secrets])


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    captured: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: captured.__setitem__(name, value))
    yield captured


def _run_main() -> None:
    """Runs the program like the engine does and waits for every registration it started."""

    @pulumi_test
    def run() -> None:
        main()

    run()


def _assert_nothing_registered(mocks: RecordingMocks) -> None:
    assert mocks.resources == []
    assert [r for r in MONITOR.requests if r.type != "pulumi:pulumi:Stack"] == []


def test_invalid_config_registers_nothing(mocks: RecordingMocks, exports: dict[str, Any]) -> None:
    bad = json.loads(json.dumps(FITS))
    bad["models"]["tiny"]["ctx_szie"] = 4096
    _set_config(bad, SECRET_VALUES)
    with pytest.raises(StackRefused) as err:
        _run_main()
    assert "models.tiny.ctx_szie: unknown key" in str(err.value)
    _assert_nothing_registered(mocks)
    assert exports == {}


def test_plaintext_secret_is_refused(mocks: RecordingMocks, exports: dict[str, Any]) -> None:
    _set_config({**FITS, "litellm_master_key": "sk-plain"}, {"api_key": SECRET_VALUES["api_key"]})
    with pytest.raises(StackRefused, match="litellm_master_key: must be a secret"):
        _run_main()
    _assert_nothing_registered(mocks)


def test_stack_that_does_not_fit_registers_nothing(mocks: RecordingMocks, exports: dict[str, Any]) -> None:
    _set_config(DOES_NOT_FIT, {})
    with pytest.raises(StackRefused) as err:
        _run_main()
    expected = render_text(build_plan(parse_stack_config(DOES_NOT_FIT), header_source_for(MODELS_DIR)))
    assert str(err.value) == expected
    assert "DOES NOT FIT" in str(err.value)
    _assert_nothing_registered(mocks)
    assert exports == {}


def test_valid_stack_deploys_and_exports(mocks: RecordingMocks, exports: dict[str, Any]) -> None:
    _set_config(FITS, SECRET_VALUES)
    _run_main()
    types = sorted(r.typ for r in mocks.resources)
    assert types.count("docker:index/container:Container") == 3
    assert types.count("docker:index/remoteImage:RemoteImage") == 3
    assert types.count("docker:index/network:Network") == 1
    assert "local-llm-stack:index:LocalLlmStack" in types

    assert exports["endpoints"] == {
        "llama-swap": "http://127.0.0.1:9292",
        "embeddings": "http://127.0.0.1:8081",
        "litellm": "http://127.0.0.1:4000",
    }
    assert exports["llama_swap_url"] == "http://127.0.0.1:9292"
    assert exports["embeddings_url"] == "http://127.0.0.1:8081"
    assert exports["litellm_url"] == "http://127.0.0.1:4000"
    assert set(exports["container_names"]) == {"llama-swap", "embeddings", "litellm"}
    assert exports["sizing"]["fits"] is True
    # What the smoke suite (tests/smoke) reads: every name each service answers to, and where a key is needed.
    assert exports["models"] == {
        "llama_swap": {"tiny": {"aliases": ["small"], "tools": False}},
        "embedding": {"name": "embed", "aliases": [], "dimension": 768, "llama_swap_ids": ["embeddings/embed"]},
        "litellm": {"chat": ["small", "tiny"], "embedding": ["embed"], "cloud": []},
    }
    assert exports["auth_required"] == {"llama-swap": True, "embeddings": True, "litellm": True}
    targets = parse_targets({**exports, "container_names": {}})
    assert targets.models["tiny"].aliases == ("small",) and targets.embedding is not None
    plain = json.dumps({k: v for k, v in exports.items() if k != "container_names"})
    assert not any(secret in plain for secret in SECRET_VALUES.values())

    swap = next(r for r in mocks.resources if r.inputs.get("name") == "llm-llama-swap")
    assert '"${env.LLAMA_SWAP_API_KEY}"' in swap.inputs["uploads"][0]["content"]


def test_auto_groups_deploy_the_matrix_the_sizing_chose(mocks: RecordingMocks, exports: dict[str, Any]) -> None:
    models = {
        **FITS["models"],
        "chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096},
    }
    _set_config({**FITS, "models": models, "groups": "auto", "litellm": {"enabled": False}}, {})
    _run_main()
    swap = next(r for r in mocks.resources if r.inputs.get("name") == "llm-llama-swap")
    content = swap.inputs["uploads"][0]["content"]
    assert "\nmatrix:\n  sets:\n" in content
    assert "\ngroups:" not in content
    assert exports["sizing"]["matrix"]["sets"]


@pytest.mark.parametrize("stack_file", sorted(REPO.glob("Pulumi.*.yaml")), ids=lambda p: p.name)
def test_repo_stack_files_deploy(stack_file: Path, mocks: RecordingMocks, exports: dict[str, Any]) -> None:
    """The example stacks shipped in the repo pass the gate and register every service they describe: a container
    per service on docker, a Kubernetes Deployment per service (and no container) on kubernetes."""
    set_config_from_stack_file(stack_file)
    _run_main()
    containers = {r.inputs["name"] for r in mocks.of_type("docker:index/container:Container")}
    pods = {r.inputs["metadata"]["name"] for r in mocks.of_type("kubernetes:apps/v1:Deployment")}
    if exports["sizing"].get("placement"):
        assert (containers, pods) == (set(), set(exports["endpoints"]))
    else:
        assert (containers, pods) == ({f"llm-{service}" for service in exports["endpoints"]}, set())
    assert exports["sizing"]["fits"] is True


def test_read_config_separates_secrets_and_decodes_objects(mocks: RecordingMocks) -> None:
    _set_config(FITS, SECRET_VALUES)
    raw, secrets = read_config(PROJECT)
    assert secrets == frozenset(SECRET_VALUES)
    assert raw["models_dir"] == MODELS_DIR
    assert raw["models"] == FITS["models"]
    assert "api_key" not in raw and "host" not in raw


def test_read_config_falls_back_to_the_environment(mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {f"{PROJECT}:bind_address": "127.0.0.1", f"{PROJECT}:ports": '{"litellm": 4001}', f"{PROJECT}:api_key": "x"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(env))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([f"{PROJECT}:api_key"]))
    raw, secrets = read_config(PROJECT)
    assert raw == {"bind_address": "127.0.0.1", "ports": {"litellm": 4001}}
    assert secrets == frozenset({"api_key"})


def test_the_deployment_reads_only_the_secrets_its_containers_need() -> None:
    """The program asks Pulumi for exactly these (`require_secret`); a configured key no container reads is not."""
    def keys(doc: dict[str, Any], configured: frozenset[str]) -> tuple[str, ...]:
        return build_deployment(build_plan(parse_stack_config(doc, configured)), configured).secret_keys

    assert keys(FITS, frozenset({"litellm_master_key"})) == ("litellm_master_key",)
    assert keys(FITS, frozenset(SECRET_VALUES)) == ("api_key", "litellm_master_key")
    assert keys({**FITS, "litellm": {"enabled": False}}, frozenset({"litellm_master_key"})) == ()
