"""No traceback reaches a user: broken stack files are refusals naming the key (exit 1); a bug is reported as an
internal error with its own exit code (3) and how to report it; `--json` always prints one JSON object."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import stack.cli
import stack.targets.pulumi.program
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

    monkeypatch.setattr(stack.targets.pulumi.program, "_deploy", broken)
    monkeypatch.delenv("LLS_TRACEBACK", raising=False)
    with pytest.raises(stack.targets.pulumi.program.StackRefused) as refused:
        stack.targets.pulumi.program.main()
    assert str(refused.value).startswith("internal error: KeyError: 'simulated'")


TOO_LONG = "/".join(["d" * 200] * 25)
"""5025 bytes: longer than PATH_MAX (4096)."""
NAME_TOO_LONG = "n" * 300
"""One component longer than NAME_MAX (255)."""


@pytest.mark.parametrize("name", [TOO_LONG, NAME_TOO_LONG, "missing.yaml", "a-dir", "loop.yaml", "nul\0.yaml"])
def test_stack_file_that_cannot_be_read(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    config = f"{tmp_path}/{name}"
    rc, out, err = _plan(Path(config), capsys, "--json")
    assert rc == 1 and "Traceback" not in out + err
    (error,) = json.loads(out)["errors"]
    assert error["key"] == config and error["message"].startswith("cannot read the stack file")
    rc, _, err = _plan(Path(config), capsys)
    assert rc == 1 and "cannot read the stack file" in err and "\0" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_stack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.x.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})
    f.chmod(0)
    rc, out, _ = _plan(f, capsys, "--json")
    assert rc == 1 and "Permission denied" in json.loads(out)["errors"][0]["message"]


@pytest.mark.parametrize("models_dir", [TOO_LONG, NAME_TOO_LONG, "absent", "a-file", "nul\0"])
def test_models_dir_option_that_is_no_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], models_dir: str
) -> None:
    """One refusal naming the option, not a missing or unreadable file per model."""
    f = write_stack_file(tmp_path / "Pulumi.x.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})
    (tmp_path / "a-file").write_text("")
    rc, out, err = _plan(f, capsys, "--json", "--models-dir", f"{tmp_path}/{models_dir}")
    assert rc == 1 and "Traceback" not in out + err
    (error,) = json.loads(out)["errors"]
    assert error["key"] == "--models-dir" and "give the directory that holds the GGUF files" in error["message"]


@pytest.mark.parametrize("out", [f"{TOO_LONG}/docker-compose.yml", f"{NAME_TOO_LONG}.yml", "a-dir", "a-file/sub/c.yml"])
def test_compose_out_that_cannot_be_written_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], out: str
) -> None:
    f = write_stack_file(tmp_path / "Pulumi.c.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-file").write_text("")
    before = sorted(tmp_path.rglob("*"))
    rc = main(["compose", "--config", str(f), "--out", f"{tmp_path}/{out}"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("--out: cannot write") and "nothing written" in err and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before


def test_compose_rewrites_only_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.c.yaml", {"models_dir": "/srv/models", "models": {"chat": CHAT}})
    out = tmp_path / "out" / "docker-compose.yml"
    assert main(["compose", "--config", str(f), "--out", str(out)]) == 0
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and p != f}
    assert out in written and len(written) >= 3
    assert main(["compose", "--config", str(f), "--out", str(out)]) == 0
    capsys.readouterr()
    assert {p: p.stat().st_mtime_ns for p in written} == written
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "no staged file is left behind"


@pytest.mark.parametrize("argv", [["plan", "--json", "--bogus"], ["plan", "--json", "--config"]])
def test_a_bad_command_line_is_a_refusal_not_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse exits 2, which here means 'does not fit'."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out + err
    (error,) = json.loads(out)["errors"]
    assert error["key"] == "(command line)" and "--help" in error["message"]
    assert main(["plan", "--bogus"]) == 1
    assert capsys.readouterr().err.startswith("(command line): unrecognized arguments: --bogus")


def test_text_refusals_show_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model id that clears the screen is refused, and the refusal does not clear it either."""
    f = write_stack_file(tmp_path / "Pulumi.x.yaml", {"models_dir": "/srv/models", "models": {"chat\x1b[2J": CHAT}})
    rc, out, err = _plan(f, capsys)
    assert rc == 1 and "\x1b" not in out + err
    assert "  models.chat\\x1b[2J: " in err
    rc, out, _ = _plan(f, capsys, "--json")
    assert rc == 1 and json.loads(out)["errors"][0]["key"] == "models.chat\x1b[2J"
