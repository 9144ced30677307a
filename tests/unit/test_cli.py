"""`stack.cli` (`python -m stack`): `plan`'s exit codes (0 fits, 1 refused, 2 does not fit), its JSON and the
exposure it reports. No traceback reaches a user: broken stack files are refusals naming the key (exit 1); a bug is
reported as an internal error with its own exit code (3) and how to report it; `--json` always prints one JSON
object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stack.cli
import stack.targets.pulumi.program
from bench.local import write_stack_file
from stack.cli import main
from stack.errors import EXIT_INTERNAL
from tests.unit.helpers import REPO, qwen14b

CHAT = {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}
WIDE: dict[str, Any] = {
    "models_dir": "/srv/models",
    "models": {"chat": CHAT},
    "embeddings": {"file": "nomic-embed-text-v1.5.Q8_0.gguf"},
}


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


def test_plan_exits_0_on_the_default_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(REPO / "Pulumi.dev.yaml")]) == 0
    out = capsys.readouterr().out
    assert "every co-resident set fits" in out
    assert "generator + nomic-embed-text" in out


def test_plan_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(REPO / "Pulumi.dev.yaml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is True and doc["budget_mib"] == 16303 - 768
    assert set(doc["models"]) == {"classifier", "generator", "chat", "agent", "nomic-embed-text"}
    for m in doc["models"].values():
        fields = {"weights_mib", "kv_mib", "recurrent_mib", "compute_mib", "overhead_mib", "total_mib", "source"}
        assert fields <= set(m)
        parts = m["weights_mib"] + m["kv_mib"] + m["recurrent_mib"] + m["compute_mib"] + m["overhead_mib"]
        assert m["total_mib"] == pytest.approx(parts, abs=0.05)
    assert len(doc["scenarios"]) == 4
    assert all({"members", "total_mib", "fits"} <= set(s) for s in doc["scenarios"])
    containers = {c["container"]: c for c in doc["containers"]}
    assert set(containers) == {"llm-llama-swap", "llm-embeddings"}
    assert containers["llm-llama-swap"]["ports"] == ["127.0.0.1:9292->8080"]
    assert [f["path"] for f in containers["llm-llama-swap"]["files"]] == ["/app/config.yaml"]


def test_plan_exits_1_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.bad.yaml", {
        "models_dir": "/srv/models",
        "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": "lots"}},
    })
    assert main(["plan", "--config", str(f)]) == 1
    assert "models.chat.ctx_size" in capsys.readouterr().err


def test_plan_exits_2_with_a_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.big.yaml", {
        "models_dir": "/srv/models",
        "models": {"gen": qwen14b(131072, "f16")},
    })
    assert main(["plan", "--config", str(f), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is False
    assert doc["scenarios"][0]["suggestions"][0]["key"] == "models.gen.ctx_size"
    assert main(["plan", "--config", str(f)]) == 2
    assert "fix: set models.gen.ctx_size:" in capsys.readouterr().out


def test_readme_command_runs_as_a_module() -> None:
    """`python -m stack plan` from the repository root, as the README says."""
    proc = subprocess.run([sys.executable, "-m", "stack", "plan"], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr


def test_plan_reports_the_exposure_of_every_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.wide.yaml", {
        **WIDE, "bind_address": "0.0.0.0", "litellm": {"enabled": True},
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


def test_compose_refuses_a_kubernetes_stack_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A kubernetes stack has one llama-swap per pool; as a compose file they would all claim one host port."""
    out = tmp_path / "deploy" / "docker-compose.yml"
    code = main(["compose", "--config", str(REPO / "Pulumi.k8s.yaml"), "--out", str(out), "--offline"])
    assert code == 1
    assert "  target: compose writes the docker target" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()
