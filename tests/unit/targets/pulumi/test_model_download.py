"""`stack.targets.pulumi.model_download`, the pieces of `pulumi up`'s model downloads that need no engine: the
provider's diff, the job container's configuration, and that the job is standard library. What is downloaded is in
tests/unit/render/test_downloads.py, the engine's log stream in test_docker_engine.py, the job's delete rule in
tests/unit/fetch/test_job.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from stack.fetch.remote_part import RemotePart
from stack.render.downloads import MODELS_LABEL, models_digest
from stack.targets.pulumi.model_download import (
    BOOT,
    JOB_ROOT,
    DownloadFailed,
    ModelDownloadProvider,
    checked_models_digest,
    container_config,
    job_files,
)

SHA_A, SHA_B = "a" * 64, "b" * 64
TOKEN = "hf_unit_SECRET_token"


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


def test_a_provider_pickled_before_the_package_move_still_loads() -> None:
    """Pulumi refreshes and deletes a dynamic resource with the provider pickled in its old state. This one is
    what `serialize_provider` wrote when the class lived in `stack.components.model_download` (commit 8a30b61)."""
    import base64

    import dill

    from stack.targets.pulumi.model_download import ModelDownloadProvider

    old = "gASVQAAAAAAAAACMH3N0YWNrLmNvbXBvbmVudHMubW9kZWxfZG93bmxvYWSUjBVNb2RlbERvd25sb2FkUHJvdmlkZXKUk5QpgZQu"
    assert isinstance(dill.loads(base64.b64decode(old)), ModelDownloadProvider)
