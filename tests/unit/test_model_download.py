"""The pieces of `pulumi up`'s model downloads that need no engine: what is downloaded, the provider's diff, the job
container's configuration, the engine's log stream, the job's delete rule, and that the job is standard library."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from stack.fetch.fetcher import STATE_DIR
from stack.fetch.job import _claim, delete
from stack.fetch.job import main as job_main
from stack.fetch.remote_part import RemotePart
from stack.render.containers import EMBEDDINGS, LLAMA_SWAP
from stack.render.downloads import MODELS_LABEL, download_specs, models_digest
from stack.targets.pulumi.docker_engine import DEFAULT_SOCKET, STDERR, STDOUT, EngineError, endpoint_for, split_frames
from stack.targets.pulumi.model_download import (
    BOOT,
    JOB_ROOT,
    DownloadFailed,
    ModelDownloadProvider,
    checked_models_digest,
    container_config,
    job_files,
)
from tests.unit.helpers import stack

SHA_A, SHA_B = "a" * 64, "b" * 64
TOKEN = "hf_unit_SECRET_token"


def _sourced() -> Any:
    return stack(
        hf_endpoint="http://127.0.0.1:8999",
        models={
            "chat": {"file": "chat.gguf", "ctx_size": 2048,
                     "source": {"repo": "org/chat", "revision": "main", "sha256": SHA_A},
                     "draft": {"file": "draft.gguf", "source": {"repo": "org/draft", "revision": "main"}}},
            "helper": {"file": "chat.gguf", "ctx_size": 1024,
                       "source": {"repo": "org/chat", "revision": "main", "sha256": SHA_A}},
            "big": {"file": "big/m-00001-of-00002.gguf", "ctx_size": 1024,
                    "source": {"url": "https://example.org/m-00001-of-00002.gguf", "sha256": [SHA_A, SHA_B]}},
            "local": {"file": "mine.gguf", "ctx_size": 1024},
        },
        embeddings={"file": "emb.gguf", "source": {"repo": "org/emb", "revision": "main"}},
    )


def test_one_download_per_sourced_file_with_the_services_that_load_it() -> None:
    specs = {s.file: s for s in download_specs(_sourced())}
    assert list(specs) == ["chat.gguf", "draft.gguf", "big/m-00001-of-00002.gguf", "emb.gguf"]
    assert specs["chat.gguf"].services == {LLAMA_SWAP} and specs["chat.gguf"].key == "models.chat.source"
    assert specs["emb.gguf"].services == {EMBEDDINGS}
    big = specs["big/m-00001-of-00002.gguf"]
    assert [p.local for p in big.parts] == ["big/m-00001-of-00002.gguf", "big/m-00002-of-00002.gguf"]
    assert [p.sha256 for p in big.parts] == [SHA_A, SHA_B]
    assert big.slug.startswith("big-m-00001-of-00002.gguf-") and "/" not in big.slug
    assert specs["chat.gguf"].slug == "chat.gguf"
    assert specs["chat.gguf"].network_mode == "host", "a loopback mirror is on the Docker host: host networking"
    assert big.network_mode == "bridge"


def _props(**kw: Any) -> dict[str, Any]:
    part = RemotePart("models.chat.source", "chat.gguf", "https://hub/org/chat/resolve/main/chat.gguf", SHA_A,
                      False, True)
    props: dict[str, Any] = {
        "key": "models.chat.source", "file": "chat.gguf", "parts": [part.to_json()], "models_dir": "/srv/models",
        "image": "sha256:img", "container_name": "llm-download-chat.gguf", "docker_host": None, "ssh_opts": [],
        "network_mode": "bridge", "token": TOKEN, "token_origin": ["https", "hub", 443], "delete_on_destroy": False,
        "stall_timeout_s": 30, "owner": "chat.gguf@x.y",
    }
    return {**props, **kw}


def _outs(**kw: Any) -> dict[str, Any]:
    outs = {k: v for k, v in _props().items() if k != "token"}
    return {**outs, "ok": True, "error": "", "sha256": [SHA_A], "downloaded_bytes": 1, "actions": ["downloaded"],
            **kw}


def test_diff_looks_at_where_the_file_lands_and_comes_from_only() -> None:
    p = ModelDownloadProvider()
    assert not p.diff("id", _outs(), _props()).changes
    assert not p.diff("id", _outs(), _props(token="another-token", owner=None)).changes
    moved = _props(parts=[{**_props()["parts"][0], "sha256": SHA_B}])
    d = p.diff("id", _outs(), moved)
    assert d.changes and d.replaces == ["parts"] and d.delete_before_replace is False
    assert p.diff("id", _outs(), _props(models_dir="/data/models")).replaces == ["models_dir"]
    assert p.diff("id", _outs(ok=False, error="x"), _props()).replaces == ["ok"], "a failed download is retried"
    update = p.diff("id", _outs(), _props(delete_on_destroy=True, image="sha256:new"))
    assert update.changes and not update.replaces


def test_update_keeps_the_results_and_never_the_token() -> None:
    result = ModelDownloadProvider().update("id", _outs(), _props(delete_on_destroy=True)).outs
    assert result is not None and result["delete_on_destroy"] is True and result["sha256"] == [SHA_A]
    assert "token" not in result and result["owner"] == "chat.gguf@x.y"


def test_job_container_has_the_token_in_its_environment_only() -> None:
    cfg = container_config(_props(), "fetch")
    assert f"HF_TOKEN={TOKEN}" in cfg["Env"]
    rest = json.dumps({k: v for k, v in cfg.items() if k != "Env"})
    job_env = [e for e in cfg["Env"] if not e.startswith("HF_TOKEN=")]
    assert TOKEN not in rest and TOKEN not in json.dumps(job_env)
    assert cfg["HostConfig"]["Binds"] == ["/srv/models:/models"] and cfg["HostConfig"]["NetworkMode"] == "bridge"
    assert cfg["HostConfig"]["LogConfig"]["Type"] == "json-file", "the provider follows the job through its logs"
    job = json.loads(cfg["Env"][0].removeprefix("LLS_FETCH_JOB="))
    assert job["mode"] == "fetch" and job["models_dir"] == "/models" and job["owner"] == "chat.gguf@x.y"
    assert cfg["Entrypoint"] == ["python3", "-I", "-c", BOOT]
    assert not any(e.startswith("HF_TOKEN=") for e in container_config(_props(), "delete")["Env"])


def test_containers_fail_with_every_failed_download_and_digest_files_otherwise() -> None:
    with pytest.raises(DownloadFailed) as failed:
        checked_models_digest([("a.gguf", True, "", [SHA_A]), ("b.gguf", False, "models.b.source: HTTP 404", [])])
    assert isinstance(failed.value, pulumi.RunError)
    assert "models.b.source: HTTP 404" in str(failed.value) and "a.gguf" not in str(failed.value)
    one = checked_models_digest([("a.gguf", True, "", [SHA_A]), ("b.gguf", True, "", [SHA_B])])
    assert one == checked_models_digest([("b.gguf", True, "", [SHA_B]), ("a.gguf", True, "", [SHA_A])])
    assert one != checked_models_digest([("a.gguf", True, "", [SHA_B]), ("b.gguf", True, "", [SHA_B])])
    assert one == models_digest({"a.gguf": [SHA_A], "b.gguf": [SHA_B]}) and MODELS_LABEL.startswith("local-llm-stack.")


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def test_log_stream_frames_are_split_into_lines_per_stream() -> None:
    raw = (_frame(STDERR, b"chat.gguf [#") + _frame(STDOUT, b'{"ok": true}\n') + _frame(STDERR, b"##] 50%\nnext")
           + _frame(STDERR, b" line\r\n"))
    assert list(split_frames(io.BytesIO(raw))) == [
        (STDOUT, '{"ok": true}'), (STDERR, "chat.gguf [###] 50%"), (STDERR, "next line")]
    cut = _frame(STDERR, b"partial") + bytes([STDERR, 0, 0, 0, 0, 0, 0, 9]) + b"abc"
    assert list(split_frames(io.BytesIO(cut))) == [(STDERR, "partialabc")]


def test_engine_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert endpoint_for(None).path == DEFAULT_SOCKET
    assert endpoint_for("unix:///run/user/1000/docker.sock").path == "/run/user/1000/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/d.sock")
    assert endpoint_for(None).path == "/tmp/d.sock"
    argv = ["ssh", "-o", "BatchMode=yes", "--", "gpu", "docker system dial-stdio"]
    assert endpoint_for("ssh://gpu", argv).ssh_argv == tuple(argv)
    with pytest.raises(EngineError, match="unix:// or ssh:// only"):
        endpoint_for("tcp://10.0.0.2:2376")


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


def test_remote_part_round_trips_through_pulumi_inputs() -> None:
    part = RemotePart("models.x.source", "x.gguf", "https://hub/x.gguf", None, False, True, 2, 3)
    data = {k: v for k, v in part.to_json().items() if v is not None}  # Pulumi drops null inputs
    assert RemotePart.from_json(data) == part


def test_the_job_runs_on_the_standard_library_alone(tmp_path: Path) -> None:
    """The files copied into the container, alone, under `python3 -I` (no site-packages, no PYTHONPATH): the
    job starts and answers a missing job with its JSON result."""
    for path, content in job_files().items():
        assert path.startswith(JOB_ROOT + "/stack/")
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    boot = BOOT.replace("/opt/local-llm-stack", str(tmp_path / JOB_ROOT))
    env = {k: v for k, v in os.environ.items() if k not in ("LLS_FETCH_JOB", "PYTHONPATH")}
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", boot], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["ok"] is False
