"""Just enough of the Docker Engine API to run a one-shot container and follow its output as it runs.

pulumi-docker's `Container` can run a container to completion (`attach`), but shows nothing of its output until it
has exited and does not fail on a non-zero exit code; the model downloads need both. The download resource
(`stack.targets.pulumi.model_download`) therefore drives the engine itself, reached the way pulumi-docker reaches it
for the same `docker:host`: a unix socket, or `ssh <host> docker system dial-stdio` (the docker CLI's own
transport, which needs the docker CLI on the remote host, as pulumi-docker does).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

API = "/v1.41"
"""Docker 20.10's API version: every engine since accepts it, and it has all that is used here."""
DEFAULT_SOCKET = "/var/run/docker.sock"
REQUEST_TIMEOUT_S = 120.0
STDOUT, STDERR = 1, 2


class EngineError(Exception):
    """The engine could not be reached or refused a request; the message says which and why."""


@dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: a unix socket `path`, or the argv of an ssh command that bridges to it."""

    label: str
    path: str | None = None
    ssh_argv: tuple[str, ...] = ()


def endpoint_for(docker_host: str | None, ssh_argv: Sequence[str] = ()) -> Endpoint:
    """The endpoint of a `docker:host` value (unset: `DOCKER_HOST`, then the default socket, as pulumi-docker).

    `ssh_argv` is the ssh command line for an `ssh://` host, ending with the remote command; the caller builds it
    (`stack.gguf.sources.SshTarget.argv("docker system dial-stdio")`), so the option checks live in one place.
    """
    host = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    if host.startswith("unix://"):
        return Endpoint(host, path=urlsplit(host).path or DEFAULT_SOCKET)
    if host.startswith("ssh://"):
        if not ssh_argv:
            raise EngineError(f"{host}: no ssh command was given for it")
        return Endpoint(host, ssh_argv=tuple(ssh_argv))
    raise EngineError(f"docker:host {host!r}: the model downloads reach the engine over unix:// or ssh:// only; "
                      "use one of them, or put the files in models_dir with `python -m stack fetch` on the Docker "
                      "host first")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class _SshConnection(http.client.HTTPConnection):
    """HTTP over the stdin/stdout of `ssh … docker system dial-stdio`, through one end of a socket pair."""

    def __init__(self, argv: Sequence[str], timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.argv = list(argv)
        self.proc: subprocess.Popen[bytes] | None = None

    def connect(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(self.argv, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                         stderr=subprocess.PIPE)
        except OSError as exc:
            ours.close()
            raise EngineError(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        ours.settimeout(self.timeout)
        self.sock = ours

    def close(self) -> None:
        super().close()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            if self.proc.stderr is not None:
                self.proc.stderr.close()
            self.proc = None

    def ssh_error(self) -> str:
        """What ssh printed, once it has exited (why the connection failed)."""
        if self.proc is None or self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace").strip()


def _message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()[:500]
    return str(data.get("message", data)) if isinstance(data, dict) else str(data)


@dataclass
class Engine:
    endpoint: Endpoint
    timeout: float = REQUEST_TIMEOUT_S

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.path is not None:
            return _UnixConnection(ep.path, timeout)
        return _SshConnection(ep.ssh_argv, timeout)

    def _send(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
              timeout: float | None = REQUEST_TIMEOUT_S) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connection(timeout)
        headers = {"Host": "docker"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, API + path, body=body, headers=headers)
            return conn, conn.getresponse()
        except EngineError:
            conn.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            detail = conn.ssh_error() if isinstance(conn, _SshConnection) else ""
            conn.close()
            reason = detail or getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__
            raise EngineError(f"cannot reach the Docker engine at {self.endpoint.label}: {reason}") from None

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                content_type: str = "application/json", ok: Sequence[int] = (200, 201, 204)) -> tuple[int, Any]:
        """Send one request and read the whole answer; statuses outside `ok` raise EngineError with its message."""
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn, resp = self._send(method, path, payload, content_type, self.timeout)
        try:
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"the Docker engine at {self.endpoint.label} stopped answering: {exc}") from None
        finally:
            conn.close()
        if resp.status not in ok:
            raise EngineError(f"{method} {path.split('?')[0]}: HTTP {resp.status}: {_message(data)}")
        if resp.getheader("Content-Type", "").startswith("application/json") and data:
            return resp.status, json.loads(data)
        return resp.status, data

    def remove(self, name: str) -> None:
        """Remove a container (running or not) if it exists."""
        self.request("DELETE", f"/containers/{quote(name, safe='')}?force=1&v=1", ok=(200, 204, 404))

    def create(self, name: str, config: dict[str, Any]) -> str:
        _, data = self.request("POST", f"/containers/create?{urlencode({'name': name})}", config)
        return str(data["Id"])

    def put_files(self, container: str, files: dict[str, bytes]) -> None:
        """Copy files (path → content, paths relative to `/`) into a created container, as `docker cp` does."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            dirs = sorted({"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)})
            for d in dirs:
                info = tarfile.TarInfo(d)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            for path, content in sorted(files.items()):
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
        self.request("PUT", f"/containers/{container}/archive?path=%2F", raw=buf.getvalue(),
                     content_type="application/x-tar")

    def start(self, container: str) -> None:
        self.request("POST", f"/containers/{container}/start", ok=(204, 304))

    def wait(self, container: str) -> int:
        conn, resp = self._send("POST", f"/containers/{container}/wait", timeout=None)
        try:
            data = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise EngineError(f"waiting for {container[:12]}: HTTP {resp.status}: {_message(data)}")
        return int(json.loads(data).get("StatusCode", -1))

    def follow(self, container: str) -> Iterator[tuple[int, str]]:
        """(stream, line) of a container's output as it is written (stdout 1, stderr 2), until the container ends.

        Reads the engine's multiplexed log stream: frames of an 8-byte header (stream, 3 zero bytes, big-endian
        length) and the payload. Needs a log driver the engine can read back; the job sets `json-file`."""
        conn, resp = self._send("GET", f"/containers/{container}/logs?follow=1&stdout=1&stderr=1", timeout=None)
        try:
            if resp.status != 200:
                raise EngineError(f"logs of {container[:12]}: HTTP {resp.status}: {_message(resp.read())}")
            yield from split_frames(resp)
        finally:
            conn.close()


def split_frames(stream: Any) -> Iterator[tuple[int, str]]:
    """Lines of a multiplexed Docker log stream (`read(n)` returning fewer bytes only at its end)."""
    pending = {STDOUT: b"", STDERR: b""}
    while True:
        head = _read_exact(stream, 8)
        if len(head) < 8:
            break
        kind, size = head[0], int.from_bytes(head[4:8], "big")
        payload = _read_exact(stream, size)
        key = STDERR if kind == STDERR else STDOUT
        data = pending[key] + payload
        *lines, pending[key] = data.split(b"\n")
        for line in lines:
            yield key, line.decode(errors="replace").rstrip("\r")
        if len(payload) < size:
            break
    for key, rest in pending.items():
        if rest:
            yield key, rest.decode(errors="replace")


def _read_exact(stream: Any, n: int) -> bytes:
    chunks = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)
