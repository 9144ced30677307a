"""GGUF headers of files that are not downloaded yet, read with HTTP range requests from their declared source.

The streaming header reader (`stack.gguf.header`) asks for bytes as its parse reaches them; here each ask is one
`Range` request, so `plan` reads the header and nothing of the tensor data, within the same bound as a local file
(`MAX_HEADER_BYTES`). The first request goes to the source URL (for Hugging Face, `resolve`, which redirects to
the file's storage and names the file's size and sha256 in `X-Linked-Size` / `X-Linked-Etag`); later ones go
straight to the storage URL, with `If-Range` so that a file replaced between two requests is noticed.

Headers are cached on disk under `~/.cache/local-llm-stack/headers`, keyed by what names the content for good (a
sha256, or a URL with a commit id in it): a second `plan` sends no request. An unpinned source (a branch name,
no sha256) costs one `HEAD` to learn its current ETag.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import ConfigError
from models.sources import declared_files, sourced_parts, split_parts
from stack.fetch.http_client import HttpClient, HttpError, Response, http_failure, origin, redacted
from stack.fetch.remote_part import RemotePart
from stack.gguf.header import MAX_HEADER_BYTES, GgufHeader, check_file_size, read_header
from stack.gguf.sources import HeaderSource
from stack.gguf.split import merge_split

if TYPE_CHECKING:
    from models.config import StackConfig


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "local-llm-stack" / "headers"


@dataclass(frozen=True)
class RemoteFile:
    """What the server says about a file: its size, and what identifies its content."""

    size: int
    etag: str | None = None
    sha256: str | None = None
    """The published sha256 (`X-Linked-Etag`), when the server gives one."""
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "etag": self.etag, "sha256": self.sha256, "commit": self.commit}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RemoteFile:
        return cls(int(d["size"]), d.get("etag"), d.get("sha256"), d.get("commit"))


class _RangeFile:
    """A read-only file over HTTP ranges, as `read_header` consumes it: `read(n)` returns the next n bytes."""

    def __init__(self, client: HttpClient, part: RemotePart) -> None:
        self.client = client
        self.part = part
        self.pos = 0
        self.size: int | None = None
        self.url = part.url
        self.first: Response | None = None
        self.etag: str | None = None
        self.stream: Response | None = None
        """A response without range support, read on sequentially."""
        self.data = bytearray()

    def _get(self, start: int, end: int) -> Response:
        headers = {"Range": f"bytes={start}-{end}"}
        if self.etag is not None:
            headers["If-Range"] = self.etag
        resp = self.client.request("GET", self.url, headers)
        if resp.status not in (200, 206):
            resp.raw.read()
            resp.close()
            raise HttpError(f"HTTP {resp.status} {resp.raw.reason}", resp.status, resp.url)
        if self.first is None:
            self.first = resp
            self.url = resp.url
            self.etag = resp.etag
            self.size = resp.total_size
        elif resp.status != 206:
            resp.close()
            raise HttpError(f"{redacted(resp.url)} changed while its header was read (ETag no longer "
                            f"{self.etag}); run plan again", None, resp.url)
        return resp

    def read(self, n: int) -> bytes:
        if self.size is not None and self.pos >= self.size:
            return b""
        if self.stream is not None:
            data = self.stream.read(n)
        else:
            end = self.pos + n - 1
            if self.size is not None:
                end = min(end, self.size - 1)
            resp = self._get(self.pos, end)
            if resp.status == 200:
                self.stream = resp
                data = resp.read(n)
            else:
                cr = resp.content_range
                if cr is None or cr[0] != self.pos:
                    resp.close()
                    raise HttpError(f"{redacted(resp.url)} answered a range request with the wrong bytes "
                                    f"(Content-Range: {resp.headers.get('Content-Range')!r})", 206, resp.url)
                data = resp.read(end - self.pos + 1)
                resp.read(1)  # consumes the end of the body, so the connection is kept
                resp.close()
        self.pos += len(data)
        self.data += data
        return data

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


@dataclass
class RemoteHeaders:
    """Reads and caches headers of remote parts; counts what it cost."""

    client: HttpClient
    cache_dir: Path = field(default_factory=default_cache_dir)
    header_bytes: int = 0
    """Bytes of remote files read by this object (the tensor data is never asked for)."""
    requests: int = 0
    cache_hits: int = 0

    def _cache_key(self, part: RemotePart) -> str | None:
        """The cache name of a part; one `HEAD` for an unpinned part (its ETag is what names its content)."""
        identity = part.cache_identity
        if identity is None:
            before = self.client.requests
            resp = self.client.request("HEAD", part.url)
            self.requests += self.client.requests - before
            resp.raw.read()
            resp.close()
            if resp.status != 200:
                raise HttpError(f"HTTP {resp.status} {resp.raw.reason}", resp.status, resp.url)
            tag = resp.linked_sha256 or resp.etag
            if tag is None:
                return None
            identity = f"{part.url}|{tag}"
        return hashlib.sha256(identity.encode()).hexdigest()

    def _cached(self, key: str) -> tuple[GgufHeader, RemoteFile] | None:
        head, meta = self.cache_dir / f"{key}.gguf-header", self.cache_dir / f"{key}.json"
        try:
            info = RemoteFile.from_json(json.loads(meta.read_text()))
            header = read_header(io.BytesIO(head.read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return header, info

    def _store(self, key: str, data: bytes, info: RemoteFile) -> None:
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            for name, content in ((f"{key}.gguf-header", data), (f"{key}.json", json.dumps(info.to_json()).encode())):
                tmp = self.cache_dir / f".{name}.{os.getpid()}"
                tmp.write_bytes(content)
                os.replace(tmp, self.cache_dir / name)
        except OSError:
            pass  # a cache that cannot be written only costs the next plan a few requests

    def read(self, part: RemotePart) -> tuple[GgufHeader, RemoteFile]:
        """The part's header and what the server says about the file.

        Raises HttpError (unreachable, refused), GgufError (not a usable GGUF) or ConfigError (the server publishes
        another sha256 than the source declares).
        """
        key = self._cache_key(part)
        if key is not None:
            hit = self._cached(key)
            if hit is not None:
                self.cache_hits += 1
                return hit
        f = _RangeFile(self.client, part)
        before = self.client.requests
        try:
            header = read_header(f)  # type: ignore[arg-type]
        finally:
            f.close()
            self.requests += self.client.requests - before
            self.header_bytes += len(f.data)
        first = f.first
        if f.size is None or first is None:
            raise HttpError(f"{redacted(part.url)} gives no file size (no Content-Range or Content-Length)")
        check_file_size(header, f.size)
        info = RemoteFile(f.size, f.etag, first.linked_sha256, first.commit)
        if part.sha256 and info.sha256 and info.sha256 != part.sha256:
            raise ConfigError([(f"{part.key}.sha256", f"{redacted(part.url)} is published with sha256 {info.sha256}, "
                                                      f"not the declared {part.sha256}; correct the digest, or the "
                                                      "revision if it names another file")])
        if key is not None and len(f.data) <= MAX_HEADER_BYTES:
            self._store(key, bytes(f.data[: header.header_bytes]), info)
        return header, info


@dataclass
class FileStatus:
    """How one declared file was sized, and what downloading it would cost."""

    how: str
    """`local`, `remote header`, or `unavailable` (a source that could not be read; sized another way)."""
    remote_bytes: int | None = None
    download_bytes: int = 0
    """Bytes still to download: the parts that are not in models_dir yet."""
    missing_parts: int = 0
    parts: int = 1
    published_sha256: list[str | None] = field(default_factory=list)
    problem: str | None = None


@dataclass
class SourcedHeaders:
    """A `HeaderSource` that reads each file where it is: in models_dir (through `base`, local or over ssh) when
    every part is there, else from its declared source over HTTP. Split GGUFs are read part by part and merged."""

    base: HeaderSource | None
    parts: dict[str, RemotePart]
    remote: RemoteHeaders | None
    status: dict[str, FileStatus] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """Sources that could not be read; their models are sized from the config or the catalog instead."""

    def describe(self, file: str) -> str:
        if file in self.parts and not self._all_local(file):
            return redacted(self.parts[file].url)
        return self.base.describe(file) if self.base is not None else file

    def _local(self, name: str) -> bool:
        return self.base is not None and self.base.exists(name)

    def _all_local(self, file: str) -> bool:
        return all(self._local(n) for n in split_parts(file))

    def exists(self, file: str) -> bool:
        """A file with a source counts as present: it is sized from its header and downloaded before use."""
        if file in self.parts or self.base is None:
            return True
        return self._all_local(file)

    def read(self, file: str) -> GgufHeader | None:
        names = split_parts(file)
        if self._all_local(file) or (file not in self.parts and self.base is not None):
            if self.base is None:
                return None
            headers = []
            for name in names:
                header = self.base.read(name)
                if header is None:
                    return None
                headers.append(header)
            self.status.setdefault(file, FileStatus("local", parts=len(names)))
            return merge_split(headers, names)
        if file not in self.parts or self.remote is None:
            return None
        return self._read_remote(file, names)

    def _read_remote(self, file: str, names: list[str]) -> GgufHeader | None:
        assert self.remote is not None
        headers: list[GgufHeader] = []
        status = FileStatus("remote header", remote_bytes=0, parts=len(names))
        for name in names:
            part = self.parts.get(name) or self.parts[file]
            try:
                header, info = self.remote.read(part)
            except HttpError as exc:
                message = http_failure(part, exc, self.remote.client.token is not None)
                self.problems.append(f"{part.key}: {message}")
                self.status[file] = FileStatus("unavailable", parts=len(names), problem=message)
                return None
            headers.append(header)
            status.remote_bytes = (status.remote_bytes or 0) + info.size
            status.published_sha256.append(info.sha256)
            if not self._local(name):
                status.download_bytes += info.size
                status.missing_parts += 1
        self.status[file] = status
        return merge_split(headers, names)


OFFLINE_ENV = "LLS_OFFLINE"
"""Set to 1 to keep `plan`, `compose` and the Pulumi program off the network (the test suite sets it)."""


def token_from_env() -> str | None:
    """`HF_TOKEN`, huggingface_hub's variable; empty counts as unset."""
    return os.environ.get("HF_TOKEN") or None


def with_sources(
    cfg: StackConfig, base: HeaderSource | None, *, token: str | None = None, offline: bool = False,
    client: HttpClient | None = None, cache_dir: Path | None = None,
) -> HeaderSource | None:
    """`base` extended with the stack's declared sources and split files; `base` itself when it has neither.

    `offline` (or `LLS_OFFLINE=1` in the environment) reads no remote header: files not in models_dir are sized
    from the config or the catalog.
    """
    offline = offline or os.environ.get(OFFLINE_ENV, "") not in ("", "0")
    parts = sourced_parts(cfg)
    split = any(len(split_parts(d.file)) > 1 for d in declared_files(cfg))
    if not parts and not split:
        return base
    remote = None
    if parts and not offline:
        client = client or HttpClient(token=token, token_origin=origin(cfg.hf_endpoint))
        remote = RemoteHeaders(client, cache_dir or default_cache_dir())
    return SourcedHeaders(base, parts, remote)


def pending_downloads(headers: HeaderSource | None) -> list[str]:
    """`key: message` for each sourced file sized from its remote header but not in models_dir yet."""
    if not isinstance(headers, SourcedHeaders):
        return []
    out = []
    for file, status in headers.status.items():
        if status.how == "remote header" and status.missing_parts:
            key = headers.parts[file].key
            out.append(f"{key}: {file} is not in models_dir yet: pulumi up downloads it ({status.download_bytes:,} "
                       "bytes) on the Docker host before the containers that load it")
    return out
