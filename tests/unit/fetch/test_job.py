"""`stack.fetch.job`, the model download job: its delete rule, and a malformed job is a result, not a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stack.fetch.fetcher import STATE_DIR
from stack.fetch.job import _claim, delete
from stack.fetch.job import main as job_main
from stack.fetch.remote_part import RemotePart

SHA_A = "a" * 64


def _placed(models_dir: Path, name: str, owner: str | None) -> RemotePart:
    part = RemotePart(f"models.{name}.source", f"{name}.gguf", f"https://hub/{name}.gguf", SHA_A, True, True)
    (models_dir / part.local).write_bytes(b"GGUF")
    (models_dir / STATE_DIR).mkdir(exist_ok=True)
    (models_dir / STATE_DIR / f"{part.local}.json").write_text(json.dumps({"sha256": SHA_A, "url": part.url}))
    if owner is not None:
        _claim(models_dir, part, owner)
    return part


def test_delete_removes_only_what_this_download_claimed(tmp_path: Path) -> None:
    mine = _placed(tmp_path, "mine", "res-1")
    theirs = _placed(tmp_path, "theirs", "res-2")
    unclaimed = _placed(tmp_path, "unclaimed", None)
    (tmp_path / "users.gguf").write_bytes(b"GGUF")
    user = RemotePart("models.u.source", "users.gguf", "https://hub/u.gguf", SHA_A, True, True)
    result = delete(tmp_path, [mine, theirs, unclaimed, user], "res-1")
    assert [r["action"] for r in result] == ["removed", "kept", "kept", "kept"]
    assert not (tmp_path / "mine.gguf").exists() and not (tmp_path / STATE_DIR / "mine.gguf.json").exists()
    assert all((tmp_path / n).exists() for n in ("theirs.gguf", "unclaimed.gguf", "users.gguf"))


def test_a_malformed_job_is_a_result_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LLS_FETCH_JOB", "{not json")
    assert job_main() == 2
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["ok"] is False and "malformed" in result["message"]
