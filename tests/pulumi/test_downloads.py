"""The program's model downloads under mocks: one per sourced file, the token as a secret input, each container
waiting for the files it loads (dependency and digest label: a failed download fails only the containers whose
label needs it, `checked_models_digest`; the deploy test runs that for real)."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from stack.render.downloads import MODELS_LABEL
from stack.targets.pulumi.program import StackRefused, main
from tests.pulumi.conftest import DOWNLOAD_TYPE, MONITOR, PROJECT, RecordingMocks, pulumi_test

CONTAINER = "docker:index/container:Container"
TOKEN = "hf_mock_SECRET_token"
CHAT, EMB = "Qwen2.5-3B-Instruct-Q4_K_M.gguf", "nomic-embed-text-v1.5.Q8_0.gguf"
SOURCED: dict[str, Any] = {
    "models_dir": "/nonexistent/local-llm-stack-models",
    "gpu": {"profile": "rtx-5080"},
    "models": {"tiny": {"file": CHAT, "ctx_size": 2048,
                        "source": {"repo": "org/tiny-GGUF", "revision": "main", "sha256": "c" * 64}}},
    "embeddings": {"name": "embed", "file": EMB, "pooling": "mean",
                   "source": {"repo": "org/embed-GGUF", "revision": "main"}},
    "litellm": {"enabled": True},
}
SECRETS = {"litellm_master_key": "sk-master-SECRET-bbb", "hf_token": TOKEN}


def _set_config(doc: dict[str, Any], host: str = "unix:///var/run/docker.sock") -> None:
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
    values |= {f"{PROJECT}:{k}": v for k, v in SECRETS.items()}
    values["docker:host"] = host
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in SECRETS])


def _run_main() -> None:
    @pulumi_test
    def run() -> None:
        main()

    run()


def _labels(inputs: dict[str, Any]) -> dict[str, str]:
    return {entry["label"]: entry["value"] for entry in inputs["labels"]}


def test_each_sourced_file_is_downloaded_before_the_containers_that_load_it(mocks: RecordingMocks) -> None:
    _set_config(SOURCED)
    _run_main()
    downloads = {r.inputs["file"]: r for r in mocks.of_type(DOWNLOAD_TYPE)}
    assert set(downloads) == {CHAT, EMB}
    for r in downloads.values():
        assert rpc.is_rpc_secret(r.inputs["token"]), "the token must reach the download as a secret"
        rest = {k: v for k, v in r.inputs.items() if k != "token"}
        assert TOKEN not in json.dumps(rest)
        assert r.inputs["image"] == "sha256:mock-docker.io/library/python:3.12.8-slim-bookworm"
        assert r.inputs["delete_on_destroy"] is False
    assert downloads[CHAT].inputs["parts"][0]["url"] == f"https://huggingface.co/org/tiny-GGUF/resolve/main/{CHAT}"
    containers = {r.inputs["name"]: r.inputs for r in mocks.of_type(CONTAINER)}
    assert MODELS_LABEL in _labels(containers["llm-llama-swap"])
    assert MODELS_LABEL in _labels(containers["llm-embeddings"])
    assert MODELS_LABEL not in _labels(containers["llm-litellm"])
    assert _labels(containers["llm-llama-swap"])[MODELS_LABEL] != _labels(containers["llm-embeddings"])[MODELS_LABEL]
    swap = _waits_for("local-llm-stack-llama-swap-container")
    emb = _waits_for("local-llm-stack-embeddings-container")
    assert f"local-llm-stack-model-{CHAT}" in swap and f"local-llm-stack-model-{EMB}" not in swap
    assert f"local-llm-stack-model-{EMB}" in emb and f"local-llm-stack-model-{CHAT}" not in emb


def _waits_for(name: str) -> set[str]:
    """Names of the resources a registration depends on (from their URNs)."""
    return {urn.rsplit("::", 1)[-1] for urn in MONITOR.request(name).dependencies}


def test_downloads_need_a_docker_host_the_provider_can_reach(mocks: RecordingMocks) -> None:
    _set_config(SOURCED, host="tcp://10.0.0.2:2376")
    with pytest.raises(StackRefused, match=r"docker:host: tcp://10\.0\.0\.2:2376: pulumi up downloads"):
        _run_main()
    assert mocks.resources == []
