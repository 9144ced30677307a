"""Where GGUF headers are read from: the local models directory, or the Docker host over ssh.

When the stack deploys to `ssh://user@host`, the GGUF files live there. We read only the header
bytes (`head -c`, growing until the header parses), never the tensor data, and cache them by
file size and mtime so a second `plan` costs one `stat` per file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shlex
import stat
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

from models.errors import ConfigError
from models.values import ssh_host_problem, ssh_option_problems
from stack.gguf.header import (
    MAX_HEADER_BYTES,
    GgufError,
    GgufHeader,
    GgufTruncated,
    check_file_size,
    read_header,
)

FIRST_READ = 16 * 1024 * 1024
MAX_HEADER = MAX_HEADER_BYTES
"""The same bound over ssh as locally: `head -c` never asks for more."""


class HeaderSource(Protocol):
    def describe(self, file: str) -> str: ...

    def read(self, file: str) -> GgufHeader | None:
        """The header of `file` (relative to models_dir); None when the file is not there.

        Raises GgufError when something other than a complete GGUF file is there (a directory, a FIFO, a
        symlink loop, a file cut short after its header) and OSError when it cannot be read.
        """

    def exists(self, file: str) -> bool:
        """Whether `file` is a regular file (after symlinks) under models_dir."""


_LOOP = "it is a symlink loop, not a file"


def _not_a_file(mode: int) -> str:
    """Never opened: reading a FIFO would block, and a directory is no model."""
    if stat.S_ISDIR(mode):
        return "it is a directory, not a GGUF file"
    return "it is not a regular file (a FIFO, socket or device), so it cannot be a GGUF file"


@dataclass(frozen=True)
class LocalHeaders:
    models_dir: Path

    def describe(self, file: str) -> str:
        return str(self.models_dir / file)

    def read(self, file: str) -> GgufHeader | None:
        path = self.models_dir / file
        try:
            mode = path.stat().st_mode
            if not stat.S_ISREG(mode):
                raise GgufError(_not_a_file(mode))
            with open(path, "rb") as f:
                header = read_header(f)
                check_file_size(header, os.fstat(f.fileno()).st_size)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise GgufError(_LOOP) from None
            raise OSError(exc.strerror or str(exc)) from None
        return header

    def exists(self, file: str) -> bool:
        return (self.models_dir / file).is_file()


@dataclass(frozen=True)
class SshTarget:
    destination: str
    port: int | None = None
    options: tuple[str, ...] = ()

    def argv(self, remote_command: str) -> list[str]:
        """`--` ends ssh's options: the destination is never read as one, whatever it holds."""
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", "-o", "BatchMode=yes", *self.options, *port, "--", self.destination, remote_command]

    @property
    def label(self) -> str:
        return f"ssh://{self.destination}" + (f":{self.port}" if self.port else "")


def ssh_target(docker_host: str | None, ssh_opts: Sequence[str] = ()) -> SshTarget | None:
    """The ssh destination of a `docker:host` such as `ssh://user@gpu-box:22`; None for local sockets.

    `models.load.docker_settings` has checked both keys; checked again here, for callers that did not."""
    if not docker_host or not docker_host.startswith("ssh://"):
        return None
    problem = ssh_host_problem(docker_host)
    option_problems = ssh_option_problems(list(ssh_opts))
    if problem is not None or option_problems:
        raise ConfigError([("docker:host", problem)] if problem else
                          [(f"docker:sshOpts[{i}]", msg) for i, msg in option_problems])
    url = urlsplit(docker_host)
    if not url.hostname:
        return None
    dest = f"{url.username}@{url.hostname}" if url.username else url.hostname
    return SshTarget(dest, url.port, tuple(ssh_opts))


Runner = Callable[[list[str]], bytes]


def _run(argv: list[str]) -> bytes:
    proc = subprocess.run(argv, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise OSError(proc.stderr.decode(errors="replace").strip() or f"{argv[0]} exited {proc.returncode}")
    return proc.stdout


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "local-llm-stack" / "gguf-headers"


@dataclass
class SshHeaders:
    """Reads headers of files under `models_dir` on an ssh host; caches them keyed by size and mtime."""

    target: SshTarget
    models_dir: str
    cache_dir: Path = field(default_factory=default_cache_dir)
    run: Runner = _run
    first_read: int = FIRST_READ
    fetched_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    """Files that could not be read over ssh; their models fall back to the config or the catalog."""
    seen: dict[str, bool] = field(default_factory=dict)
    """Path → whether the last `read` found it (an unreachable host counts as found: `problems` says why), so
    `exists` after `read` costs no second ssh round trip."""

    def describe(self, file: str) -> str:
        return f"{self.target.label}{PurePosixPath(self.models_dir) / file}"

    def _stat(self, path: str) -> tuple[int, int, int] | None:
        """(size, mtime, mode) after symlinks; None when nothing is there. A symlink loop is a GgufError."""
        quoted = shlex.quote(path)
        out = self.run(self.target.argv(f"LC_ALL=C stat -L -c '%s %Y %f' -- {quoted} 2>&1 || true")).decode(
            errors="replace")
        parts = out.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            try:
                return int(parts[0]), int(parts[1]), int(parts[2], 16)
            except ValueError:
                pass
        if "Too many levels of symbolic links" in out:
            raise GgufError(_LOOP)
        if "No such file or directory" in out or not out.strip():
            return None
        raise OSError(out.strip()[:200])

    def read(self, file: str) -> GgufHeader | None:
        path = str(PurePosixPath(self.models_dir) / file)
        try:
            return self._read(path)
        except OSError as exc:
            self.seen[path] = True
            self.problems.append(f"{self.describe(file)}: {exc}")
            return None

    def exists(self, file: str) -> bool:
        """An unreachable host counts as present: `read` already recorded that problem."""
        path = str(PurePosixPath(self.models_dir) / file)
        if path not in self.seen:
            try:
                self.seen[path] = self._stat(path) is not None
            except (OSError, GgufError):
                self.seen[path] = True
        return self.seen[path]

    def _read(self, path: str) -> GgufHeader | None:
        self.seen[path] = True
        found = self._stat(path)
        self.seen[path] = found is not None
        if found is None:
            return None
        size, mtime, mode = found
        if not stat.S_ISREG(mode):
            raise GgufError(_not_a_file(mode))
        key = hashlib.sha256(f"{self.target.label}|{path}|{size}|{mtime}".encode()).hexdigest()
        cached = self.cache_dir / f"{key}.gguf-header"
        if cached.is_file():
            try:
                header = read_header(io.BytesIO(cached.read_bytes()))
            except GgufError:
                cached.unlink()
            else:
                check_file_size(header, size)
                return header
        want = min(self.first_read, size, MAX_HEADER)
        while True:
            data = self.run(self.target.argv(f"head -c {want} -- {shlex.quote(path)}"))
            self.fetched_bytes += len(data)
            try:
                header = read_header(io.BytesIO(data[:want]))
            except GgufTruncated:
                if want >= min(size, MAX_HEADER):
                    raise
                want = min(want * 4, size, MAX_HEADER)
                continue
            check_file_size(header, size)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(data[: header.header_bytes])
            return header


def header_source_for(
    models_dir: str, docker_host: str | None = None, ssh_opts: Sequence[str] = (), override: Path | None = None
) -> HeaderSource | None:
    """`--models-dir` if given; the Docker host's directory over ssh; the local directory if it exists."""
    if override is not None:
        return LocalHeaders(override)
    target = ssh_target(docker_host, ssh_opts)
    if target is not None:
        return SshHeaders(target, models_dir)
    local = Path(models_dir)
    return LocalHeaders(local) if local.is_dir() else None
