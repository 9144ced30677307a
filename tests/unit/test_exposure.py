"""A non-loopback `bind_address` never publishes an unauthenticated model server by accident, and `plan` reports
the exposure of every port."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.load import ConfigError, parse_stack_config
from stack.cli import main
from tests.unit.helpers import write_stack_file

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


def test_plan_reports_the_exposure_of_every_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.wide.yaml", {
        **BASE, "bind_address": "0.0.0.0", "litellm": {"enabled": True},
        "litellm_master_key": {"secure": "v1:x"},
    })
    assert main(["plan", "--config", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    exposure = {c["container"]: c["exposure"] for c in doc["containers"]}
    assert exposure == {
        "llm-llama-swap": [{"address": "127.0.0.1", "port": 9292, "loopback_only": True, "key": "none"}],
        "llm-embeddings": [{"address": "127.0.0.1", "port": 8081, "loopback_only": True, "key": "none"}],
        "llm-litellm": [{"address": "0.0.0.0", "port": 4000, "loopback_only": False, "key": "litellm_master_key"}],
    }
    assert main(["plan", "--config", str(f)]) == 0
    out = capsys.readouterr().out
    assert "exposure 0.0.0.0:4000: REACHABLE FROM THE NETWORK, key: litellm_master_key" in out
    assert "exposure 127.0.0.1:9292: loopback only, no key" in out
