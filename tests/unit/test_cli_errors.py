"""No traceback reaches a user: broken stack files are refusals naming the key (exit 1); a bug is reported as an
internal error with its own exit code (3) and how to report it; `--json` always prints one JSON object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import stack.cli
import stack.program
from stack.cli import main
from stack.errors import EXIT_INTERNAL
from tests.unit.helpers import write_stack_file

CHAT = {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}


def _plan(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    rc = main(["plan", "--config", str(path), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_stack_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "Pulumi.latin1.yaml"
    f.write_bytes("config:\n  local-llm-stack:models_dir: /srv/mod\xe8les\n".encode("latin-1"))
    rc, _, err = _plan(f, capsys)
    assert rc == 1 and "not UTF-8" in err and "Traceback" not in err


def test_yaml_nested_thousands_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "Pulumi.deep.yaml"
    f.write_text("config:\n  local-llm-stack:x: " + "[" * 20000 + "]" * 20000 + "\n")
    rc, out, err = _plan(f, capsys, "--json")
    assert rc == 1, err
    doc = json.loads(out)
    assert doc["errors"] and "nested too deeply" in doc["errors"][0]["message"]


@pytest.mark.parametrize(("key", "value"), [("docker:sshOpts", 5), ("docker:sshOpts", [1, 2]), ("docker:host", 7)])
def test_docker_keys_of_the_wrong_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: object
) -> None:
    f = write_stack_file(tmp_path / "Pulumi.d.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})
    doc = f.read_text() + f"  {key}: {json.dumps(value)}\n"
    f.write_text(doc)
    rc, _, err = _plan(f, capsys)
    assert rc == 1 and f"{key}: must be" in err


def test_unwritable_out_is_a_refusal_naming_the_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.c.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = main(["compose", "--config", str(f), "--out", str(blocker / "sub" / "docker-compose.yml")])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("--out: cannot write") and "Traceback" not in err


def test_a_bug_is_an_internal_error_not_a_config_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    f = write_stack_file(tmp_path / "Pulumi.ok.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(stack.cli, "build_plan", broken)
    monkeypatch.delenv("LLS_TRACEBACK", raising=False)
    rc, _, err = _plan(f, capsys)
    assert rc == EXIT_INTERNAL == 3
    assert err.startswith("internal error: RuntimeError: simulated bug")
    assert "This is a bug in local-llm-stack" in err and "Traceback" not in err
    rc, out, _ = _plan(f, capsys, "--json")
    doc = json.loads(out)
    assert rc == 3 and doc["internal_error"] is True and "simulated bug" in doc["errors"][0]["message"]
    monkeypatch.setenv("LLS_TRACEBACK", "1")
    with pytest.raises(RuntimeError, match="simulated bug"):
        main(["plan", "--config", str(f)])


def test_the_pulumi_program_reports_a_bug_as_a_run_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pulumi prints a `RunError`'s message without a traceback; a bug becomes one, saying it is a bug."""

    def broken() -> None:
        raise KeyError("simulated")

    monkeypatch.setattr(stack.program, "_deploy", broken)
    monkeypatch.delenv("LLS_TRACEBACK", raising=False)
    with pytest.raises(stack.program.StackRefused) as refused:
        stack.program.main()
    assert str(refused.value).startswith("internal error: KeyError: 'simulated'")
