"""The download job of `pulumi up` on the real Docker engine, driven as its provider drives it (`run_job`): a
transfer whose container is killed mid-way resumes in the next one, and the engine is reached over ssh too.

nginx on 127.0.0.1 serves the file as Hugging Face would (bench/hf_mirror.py); the job container uses host
networking to reach it. What nginx sent is counted from its access log.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.hf_mirror import HfMirror, HubFile, nginx_binary, running_mirror, sha256_of
from models.sources import hf_url
from stack.fetch.fetcher import STATE_DIR
from stack.fetch.remote_part import RemotePart
from stack.gguf import writers as gm
from stack.gguf.sources import SshTarget
from stack.targets.pulumi.model_download import _download, run_job
from tests.deploy.test_pulumi_downloads import python_image
from tests.docker import support
from tests.integration.test_remote_headers import sshd

pytestmark = pytest.mark.docker

__all__ = ["sshd"]
REPO, FILE = "org/embed-GGUF", "minilm-f16.gguf"


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[HfMirror]:
    if nginx_binary() is None:
        pytest.fail("nginx is missing: run scripts/install-tools.sh (installs Debian's nginx)")
    emb, _ = gm.minilm_model()
    with running_mirror(tmp_path / "srv", [HubFile(REPO, "main", FILE, emb)], blob_rate="4m") as m:
        yield m


def _props(mirror: HfMirror, models_dir: Path, image: str, name: str, **kw: Any) -> dict[str, Any]:
    part = RemotePart("embeddings.source", FILE, hf_url(mirror.endpoint, REPO, "main", FILE), None, False, True)
    return {
        "key": "embeddings.source", "file": FILE, "parts": [part.to_json()], "models_dir": str(models_dir),
        "image": image, "container_name": name, "docker_host": None, "ssh_opts": [], "network_mode": "host",
        "token_origin": ["http", "127.0.0.1", mirror.port], "stall_timeout_s": 30, "owner": "test-owner", **kw,
    }


def _blob_bytes(mirror: HfMirror) -> int:
    return sum(e.body_bytes for e in mirror.log() if e.uri.startswith("/blobs/"))


def test_a_killed_download_resumes_in_the_next_container(
    local_images: dict[str, str], mirror: HfMirror, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    os.chown(models, 1000, 1000)  # the job writes as the owner of models_dir, not as the container's root
    name = f"lls-test-download-{time.monotonic_ns() % 10**8}"
    props = _props(mirror, models, python_image(local_images), name)
    size = gm.minilm_model()[0].stat().st_size
    partial = models / STATE_DIR / f"{FILE}.part"
    echo = io.StringIO()
    first: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: first.update(run_job(props, "fetch", echo)))
    runner.start()
    try:
        deadline = time.monotonic() + 120
        while not (partial.is_file() and partial.stat().st_size > size // 4) and time.monotonic() < deadline:
            time.sleep(0.2)
        support.docker("kill", name)
    finally:
        runner.join(timeout=120)
    kept = partial.stat().st_size
    assert first["ok"] is False and "exited with code 137" in first["message"], first
    assert 0 < kept < size and not (models / FILE).exists(), "a partial file under the final name"
    mirror.blob_rate = None
    mirror.reload()
    outcome = _download(props)
    assert outcome["ok"] is True, outcome
    assert sha256_of(models / FILE) == outcome["sha256"][0] == sha256_of(gm.minilm_model()[0])
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (models / FILE, models / STATE_DIR)} == {(1000, 1000)}
    # nginx counts what it sent: what the killed job had in socket buffers but never wrote is sent again.
    served = _blob_bytes(mirror)
    assert size <= served < size + size // 10, f"served {served:,} bytes for a {size:,}-byte file"
    ranges = [e.range for e in mirror.log() if e.uri.startswith("/blobs/") and e.range]
    assert ranges[-1] == f"bytes={kept}-", ranges
    assert outcome["downloaded_bytes"] == size - kept
    assert "%" in echo.getvalue(), "no progress line was passed on"
    assert support.docker("ps", "-a", "-q", "--filter", f"name={name}").stdout.strip() == ""
    # downloads.delete_on_destroy: only the resource that claimed the file removes it.
    assert run_job({**props, "owner": "another-resource"}, "delete", io.StringIO())["parts"][0]["action"] == "kept"
    assert (models / FILE).is_file()
    assert run_job(props, "delete", io.StringIO())["parts"][0]["action"] == "removed"
    assert not (models / FILE).exists()


def test_the_engine_is_reached_over_ssh(
    local_images: dict[str, str], mirror: HfMirror, tmp_path: Path, sshd: SshTarget
) -> None:
    mirror.blob_rate = None
    mirror.reload()
    models = tmp_path / "models"
    models.mkdir()
    host = f"ssh://{sshd.destination}:{sshd.port}"
    props = _props(mirror, models, python_image(local_images), "lls-test-download-ssh", docker_host=host,
                   ssh_opts=list(sshd.options))
    outcome = _download(props)
    assert outcome["ok"] is True and outcome["actions"] == ["downloaded"], outcome
    assert (models / FILE).is_file()
    unreachable = _download({**props, "docker_host": f"ssh://{sshd.destination}:1"})
    assert unreachable["ok"] is False and "cannot reach the Docker engine at ssh://" in unreachable["error"]
    assert unreachable["error"].startswith("embeddings.source: ")
