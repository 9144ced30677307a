"""A model file missing from a models_dir that exists is named, with what the plan did instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.local import write_stack_file
from models.load import ConfigError
from stack.cli import main
from stack.gguf.sources import LocalHeaders, SshHeaders, SshTarget
from stack.sizing.plan import build_plan
from tests.unit.helpers import stack

CHAT_FILE = "Qwen2.5-7B-Instruct-Q4_K_M.gguf"
CHAT = {"file": CHAT_FILE, "ctx_size": 4096}
EMBED = {"name": "embed", "file": "nomic-embed-text-v1.5.Q8_0.gguf"}


def test_missing_files_are_named_with_their_keys(tmp_path: Path) -> None:
    (tmp_path / "other.gguf").write_bytes(b"")
    plan = build_plan(stack(models={"chat": CHAT}, embeddings=EMBED, models_dir=str(tmp_path)), LocalHeaders(tmp_path))
    assert [w.split(":", 1)[0] for w in plan.warnings] == ["models.chat.file", "embeddings.file"]
    assert str(tmp_path / CHAT_FILE) in plan.warnings[0]
    assert "sized from the config's arch block or the catalog" in plan.warnings[0]
    assert plan.to_json()["warnings"] == list(plan.warnings)
    assert plan.fits


def test_a_directory_where_the_file_should_be_is_refused(tmp_path: Path) -> None:
    """Unlike a missing file (a warning), llama-server could never load it: an error naming the path."""
    (tmp_path / CHAT_FILE).mkdir()
    with pytest.raises(ConfigError) as refused:
        build_plan(stack(models={"chat": CHAT}, models_dir=str(tmp_path)), LocalHeaders(tmp_path))
    [(key, message)] = refused.value.problems
    assert key == "models.chat.file"
    assert f"{tmp_path / CHAT_FILE} is not a usable GGUF model: it is a directory" in message


def test_no_header_source_no_warning() -> None:
    """Without a readable models_dir (planning away from the GPU host) nothing can be said about the files."""
    assert build_plan(stack(models={"chat": CHAT})).warnings == ()


def test_plan_prints_the_warning_and_still_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.w.yaml", {"models_dir": str(tmp_path), "models": {"chat": CHAT}})
    assert main(["plan", "--config", str(f)]) == 0
    err = capsys.readouterr().err
    assert f"warning: models.chat.file: {tmp_path / CHAT_FILE} does not exist" in err


def test_cpu_profile_says_there_is_no_vram_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No "59 / 0 MiB: fits" and no negative headroom: the cpu profile checks no limit, and says so."""
    f = write_stack_file(tmp_path / "Pulumi.cpu.yaml", {
        "models_dir": "/srv/models", "gpu": {"profile": "cpu"}, "models": {"chat": CHAT},
    })
    assert main(["plan", "--config", str(f)]) == 0
    out = capsys.readouterr().out
    assert "/ 0 MiB" not in out and "headroom" not in out
    assert "MiB of host memory; no VRAM budget to check" in out
    assert "no VRAM budget on the cpu profile" in out
    assert main(["plan", "--config", str(f), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["budget_mib"] is None
    assert all(s["headroom_mib"] is None for s in doc["scenarios"])


def test_a_missing_file_nothing_else_describes_is_refused_with_its_path(tmp_path: Path) -> None:
    cfg = stack(models={"chat": {"file": "my-own-model.gguf", "ctx_size": 2048}}, models_dir=str(tmp_path))
    with pytest.raises(ConfigError) as refused:
        build_plan(cfg, LocalHeaders(tmp_path))
    [(key, message)] = refused.value.problems
    assert key == "models.chat.file"
    assert f"{tmp_path / 'my-own-model.gguf'} does not exist" in message


def test_over_ssh_the_missing_file_check_reuses_what_read_saw(tmp_path: Path) -> None:
    """Each ssh round trip costs a connection: `exists` after `read` answers from what `read` found."""
    calls: list[list[str]] = []

    def run(argv: list[str]) -> bytes:
        calls.append(argv)
        return b""  # `stat ... || true` prints nothing for a missing file

    source = SshHeaders(SshTarget("ops@gpu-box", None, ()), "/srv/models", cache_dir=tmp_path, run=run)
    assert source.read("absent.gguf") is None
    assert source.exists("absent.gguf") is False
    assert len(calls) == 1
    assert source.exists("never-read.gguf") is False
    assert len(calls) == 2
