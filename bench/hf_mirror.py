"""A real nginx on 127.0.0.1 serving GGUF files the way Hugging Face does, for the source and fetch tests and
`bench/fetch_vs_curl.py`. It lives in `bench/` because the benchmark imports only the product and itself; the
tests import it from here.

Layout, as the hub answers `huggingface_hub`:
- `/{repo}/resolve/{revision}/{file}`: a 302 to the file's blob on a storage host (here `localhost`, another host
  name for the same server, so that a token sent past the redirect would be seen), with `X-Linked-Size`,
  `X-Linked-Etag` (the sha256, quoted) and `X-Repo-Commit`; gated files answer 401 without the bearer token;
- `/blobs/{sha256}`: the bytes, with nginx's own `Range`, `If-Range` and `ETag` handling; a request carrying an
  `Authorization` header is refused (400), so the tests prove the token never reaches storage;
- `/files/{name}`: plain HTTP files for `url` sources; `/slow/{name}`: the same bytes after a stall (the first
  64 KiB, then one byte per second).

Every request is counted from nginx's own access log: method, URI, status, bytes sent, `Range`, token presence.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
TOKEN = "hf_test_token_0123456789"


def nginx_binary() -> str | None:
    for name in NGINX_CANDIDATES:
        found = shutil.which(name) or (name if os.path.isfile(name) else None)
        if found:
            return found
    return None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class HubFile:
    repo: str
    revision: str
    file: str
    path: Path
    gated: bool = False
    linked_sha256: str | None = None
    """What `X-Linked-Etag` says; the file's real digest unless a test wants the server to lie."""


@dataclass(frozen=True)
class LogEntry:
    method: str
    uri: str
    status: int
    bytes_sent: int
    body_bytes: int
    range: str
    auth: bool
    host: str


@dataclass
class HfMirror:
    root: Path
    port: int = 0
    files: list[HubFile] = field(default_factory=list)
    plain: dict[str, Path] = field(default_factory=dict)
    blob_rate: str | None = None
    """nginx `limit_rate` for blobs and plain files (e.g. `20m`), so a test can interrupt a transfer mid-way."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str, slow: bool = False) -> str:
        return f"{self.endpoint}/{'slow' if slow else 'files'}/{name}"

    def _blob(self, path: Path) -> str:
        digest = sha256_of(path)
        blob = self.root / "blobs" / digest
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, blob)
            except OSError:
                shutil.copyfile(path, blob)
        return digest

    def _config(self) -> str:
        r = self.root
        user = "user root;\n" if os.geteuid() == 0 else ""
        locations = []
        for f in self.files:
            digest = self._blob(f.path)
            linked = f.linked_sha256 or digest
            size = f.path.stat().st_size
            guard = "    if ($token_ok = 0) { return 401; }\n" if f.gated else ""
            locations.append(
                f"  location = /{f.repo}/resolve/{f.revision}/{f.file} {{\n{guard}"
                f"    add_header X-Linked-Size {size} always;\n"
                f"    add_header X-Linked-Etag '\"{linked}\"' always;\n"
                f"    add_header X-Repo-Commit {'0' * 40 if len(f.revision) != 40 else f.revision} always;\n"
                f"    return 302 http://localhost:{self.port}/blobs/{digest};\n  }}\n"
            )
        (r / "files").mkdir(parents=True, exist_ok=True)
        for name, path in self.plain.items():
            target = r / "files" / name
            if not target.exists():
                try:
                    os.link(path, target)
                except OSError:
                    shutil.copyfile(path, target)
        rate = f"limit_rate {self.blob_rate};" if self.blob_rate else ""
        return f"""{user}worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 256; }}
http {{
  map $http_authorization $auth_sent {{ "" 0; default 1; }}
  map $http_authorization $token_ok {{ "Bearer {TOKEN}" 1; default 0; }}
  log_format counted '$request_method $request_uri $status $bytes_sent $body_bytes_sent "$http_range" $auth_sent $host';
  access_log {r}/access.log counted;
  client_body_temp_path {r}/tmp/body;
  proxy_temp_path {r}/tmp/proxy;
  fastcgi_temp_path {r}/tmp/fastcgi;
  uwsgi_temp_path {r}/tmp/uwsgi;
  scgi_temp_path {r}/tmp/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  server {{
    listen 127.0.0.1:{self.port};
    server_name 127.0.0.1 localhost;
{"".join(locations)}
    location /blobs/ {{
      if ($auth_sent = 1) {{ return 400; }}
      alias {r}/blobs/;
      {rate}
    }}
    location /files/ {{
      alias {r}/files/;
      {rate}
    }}
    location /slow/ {{
      alias {r}/files/;
      limit_rate_after 64k;
      limit_rate 1;
    }}
  }}
}}
"""

    def start(self) -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is missing: run scripts/install-tools.sh (installs Debian's nginx)")
        if not self.port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = int(s.getsockname()[1])
        for sub in ("tmp", "blobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "nginx.conf").write_text(self._config())
        self.proc = subprocess.Popen(
            [binary, "-p", str(self.root), "-c", str(self.root / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"nginx exited: {err}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("nginx did not listen within 10 s")

    def reload(self) -> None:
        """Rewrite the config (after adding files) and have nginx re-read it."""
        assert self.proc is not None
        (self.root / "nginx.conf").write_text(self._config())
        subprocess.run([nginx_binary() or "nginx", "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
                        "-s", "reload"], check=True, capture_output=True)
        time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log(self) -> list[LogEntry]:
        """Every request so far, from nginx's access log (written as each request completes)."""
        entries = []
        path = self.root / "access.log"
        if not path.exists():
            return []
        for line in path.read_text().splitlines():
            method, uri, status, sent, body, rest = line.split(" ", 5)
            rng, _, tail = rest[1:].partition('" ')
            auth, host = tail.split(" ")
            entries.append(LogEntry(method, uri, int(status), int(sent), int(body), "" if rng == "-" else rng,
                                    auth == "1", host))
        return entries

    def clear_log(self) -> None:
        (self.root / "access.log").write_text("")
        with contextlib.suppress(OSError):
            subprocess.run([nginx_binary() or "nginx", "-p", str(self.root), "-c", str(self.root / "nginx.conf"),
                            "-s", "reopen"], check=True, capture_output=True)


@contextlib.contextmanager
def running_mirror(
    root: Path, files: list[HubFile], plain: dict[str, Path] | None = None, blob_rate: str | None = None,
) -> Iterator[HfMirror]:
    mirror = HfMirror(root, files=files, plain=plain or {}, blob_rate=blob_rate)
    mirror.start()
    try:
        yield mirror
    finally:
        mirror.stop()
