"""`stack.targets.pulumi.docker_engine`: the engine's multiplexed log stream, and which engine endpoints are read."""

from __future__ import annotations

import io

import pytest

from stack.targets.pulumi.docker_engine import DEFAULT_SOCKET, STDERR, STDOUT, EngineError, endpoint_for, split_frames


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
