"""GGUF headers read from a Docker host over ssh: header bytes only, cached by size and mtime.

A real OpenSSH server runs on 127.0.0.1 with a throw-away key, standing in for the GPU host that
`docker:host: ssh://...` names; the client is the real `ssh`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from stack.gguf.header import read_header_file
from stack.gguf.sources import SshHeaders, SshTarget, header_source_for, ssh_target

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshTarget]:
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd_bin):
        pytest.fail("sshd is missing: run scripts/install-tools.sh (installs openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "client_key")], check=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    (d / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        user = os.environ.get("USER") or "root"
        yield SshTarget(
            f"{user}@127.0.0.1", port,
            ("-i", str(d / "client_key"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "LogLevel=ERROR"),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _model(path: Path) -> Path:
    w = GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_embedding_length(512)
    w.add_head_count(8)
    w.add_token_list([f"token-{i}" for i in range(3000)])
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((2048, 512), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_reads_only_the_header_over_ssh_and_caches_it(sshd: SshTarget, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    local = _model(models / "m.gguf")
    source = SshHeaders(sshd, str(models), cache_dir=tmp_path / "cache", first_read=4096)
    header = source.read("m.gguf")
    assert header == read_header_file(local)
    assert source.problems == []
    size = local.stat().st_size
    assert header.header_bytes < source.fetched_bytes < size / 4, "fetched tensor data, not just the header"

    fetched = source.fetched_bytes
    assert source.read("m.gguf") == header
    assert source.fetched_bytes == fetched, "second read should come from the cache"

    os.utime(local, (time.time() + 5, time.time() + 5))
    assert source.read("m.gguf") == header
    assert source.fetched_bytes > fetched, "a new mtime must invalidate the cache"


def test_missing_file_and_unreachable_host_fall_back(sshd: SshTarget, tmp_path: Path) -> None:
    source = SshHeaders(sshd, str(tmp_path), cache_dir=tmp_path / "cache")
    assert source.read("absent.gguf") is None and source.problems == []
    closed = SshTarget("root@127.0.0.1", _free_port(), (*sshd.options, "-o", "ConnectTimeout=3"))
    unreachable = SshHeaders(closed, str(tmp_path), cache_dir=tmp_path / "cache")
    assert unreachable.read("m.gguf") is None
    assert len(unreachable.problems) == 1 and "m.gguf" in unreachable.problems[0]


def test_docker_host_url_selects_the_ssh_source(tmp_path: Path) -> None:
    assert ssh_target("unix:///var/run/docker.sock") is None
    t = ssh_target("ssh://ops@gpu-box:2222", ["-o", "StrictHostKeyChecking=no"])
    assert t == SshTarget("ops@gpu-box", 2222, ("-o", "StrictHostKeyChecking=no"))
    assert isinstance(header_source_for("/srv/models", "ssh://ops@gpu-box"), SshHeaders)
    assert header_source_for(str(tmp_path / "nope")) is None
