"""Hostile stack files (tests/hostile/stacks) through the Pulumi program: the same refusal as `plan`, as a
`RunError` (Pulumi prints its message, no traceback), and nothing registered.

Each file's config is handed over the way the Pulumi CLI hands it: top-level values as text, objects and lists as
JSON, `{secure: ...}` values as secrets. Files whose problem lies in the YAML itself (encoding, syntax, nesting)
never reach the program; Pulumi's own reader refuses them.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pulumi
import pytest

from stack.targets.pulumi.program import StackRefused, main
from tests.hostile.test_stack_corpus import STACKS, expectation
from tests.pulumi.conftest import MONITOR, RecordingMocks, pulumi_test, set_config_from_stack_file

CASES = [
    "unknown_model", "num_ctx_negative", "strict_ctx_size_true", "ctl_description_newline",
    "macro_description_api_key", "ctl_extra_arg_newline", "extra_memory_lora", "secret_api_key_plain",
    "secret_api_base_credentials", "expose_any_ipv4_no_key", "dollar_models_dir", "models_dir_var_run",
    "type_models_list", "image_latest", "sshopts_proxycommand", "ssh_port_out_of_range", "ssh_destination_dash",
    "docker_sshopts_int", "auto_17_models", "arch_n_head_kv_over_n_head", "num_ctx_max_does_not_fit",
    "expose_behind_litellm",
]




@pytest.mark.parametrize("name", CASES)
def test_corpus_file_through_the_program(name: str, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch) -> None:
    path = STACKS / f"{name}.yaml"
    exp = expectation(path)
    started: list[Any] = []

    def blocked(args: Any, *_: Any, **__: Any) -> Any:
        started.append(args)
        raise OSError("this test starts no programs")

    monkeypatch.setattr(subprocess, "Popen", blocked)
    monkeypatch.setattr(pulumi, "export", lambda *_: None)
    monkeypatch.delenv("LLS_TRACEBACK", raising=False)
    set_config_from_stack_file(path)

    @pulumi_test
    def run() -> None:
        main()

    if exp.exit == 0:
        run()
        assert mocks.resources
        return
    with pytest.raises(StackRefused) as refused:
        run()
    message = str(refused.value)
    assert "Traceback" not in message and not message.startswith("internal error")
    if exp.exit == 1:
        assert message.startswith("invalid stack config:")
        for key in exp.keys:
            assert f"\n{key}: " in message, message
        assert started == []
    else:
        assert "DOES NOT FIT" in message
    assert mocks.resources == []
    assert [r for r in MONITOR.requests if r.type != "pulumi:pulumi:Stack"] == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("local-llm-stack:models", "[" * 20000 + "]" * 20000, "models: "),
        ("docker:sshOpts", "-i ~/.ssh/id", "docker:sshOpts: "),
        ("docker:sshOpts", "[" * 20000 + "]" * 20000, "docker:sshOpts: "),
    ],
    ids=["deep-models", "ssh-opts-not-json", "deep-ssh-opts"],
)
def test_config_pulumi_hands_over_broken(
    key: str, value: str, expected: str, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values as the Pulumi CLI could hand them over (JSON text nested past Python's recursion limit, options that
    are no JSON list): refusals naming the key, not internal errors."""
    monkeypatch.delenv("LLS_TRACEBACK", raising=False)
    chat = {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}
    config = {"local-llm-stack:models_dir": "/srv/models", "local-llm-stack:models": json.dumps({"chat": chat})}
    pulumi.runtime.set_all_config({**config, key: value}, [])

    @pulumi_test
    def run() -> None:
        main()

    with pytest.raises(StackRefused) as refused:
        run()
    message = str(refused.value)
    assert message.startswith("invalid stack config:") and f"\n{expected}" in message, message
    assert mocks.resources == []
