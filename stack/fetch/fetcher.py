"""Downloads of declared model sources into models_dir: resumable, verified, atomic.

Each part streams into `.lls-fetch/<file>.part` under models_dir. An interrupted transfer resumes from the partial
file's size (`Range`), with `If-Range` quoting the ETag it started with, so a file replaced on the server restarts
from zero instead of being spliced. The sha256 is computed while the bytes arrive and checked against the source's
digest (or, for an unpinned Hugging Face file, the digest the server publishes); the GGUF header is checked too.
Only then is the file renamed onto its final name, on the same filesystem, so no partial or unverified file ever
carries the final name. A verified download leaves a record (`.lls-fetch/<file>.json`: sha256 and source URL):
a file whose record matches the source is never downloaded again, and a file fetch did not put there is never replaced.

Standard library only: `pulumi up` copies this module, `stack.fetch.http_client` and `stack.fetch.remote_part` into a
one-shot container on the Docker host (`stack.fetch.job`), where it downloads the same way. The GGUF check is therefore
injected: the `fetch` command passes the full header and data-extent check (`stack.gguf.header.file_problem`); the
container checks the GGUF signature, its header having been parsed from the same bytes when `plan` sized it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from stack.fetch.http_client import HttpClient, HttpError, http_failure, redacted
from stack.fetch.remote_part import RemotePart

STATE_DIR = ".lls-fetch"
CHUNK = 4 * 1024 * 1024
MIN_STALL_BYTES = 64 * 1024
"""Fewer bytes than this over a whole timeout window count as a stalled server (a trickle never times out a read)."""
HASH_CHUNK = 8 * 1024 * 1024
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)


class FetchFailed(Exception):
    """One part could not be put in place; `key` is the source's config key. Nothing was placed for it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


@dataclass
class Outcome:
    part: RemotePart
    action: str
    """`present` (there and matching its record or digest), `downloaded`, or `kept` (there, nothing to check)."""
    bytes: int = 0
    seconds: float = 0.0
    sha256: str | None = None
    resumed_from: int = 0


class Progress:
    """Progress on stderr: a redrawn bar on a terminal, otherwise a line per tenth, and one at least every
    `interval_s` when given (what `pulumi up` shows, so a slow multi-GB transfer is seen moving)."""

    def __init__(self, stream: IO[str] | None = None, enabled: bool = True, interval_s: float | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.interval_s = interval_s
        self.label = ""
        self.total: int | None = None
        self.start = 0.0
        self.first = 0
        self.last_step = -1
        self.last_line = 0.0

    def begin(self, label: str, done: int, total: int | None) -> None:
        self.label, self.total, self.first = label, total, done
        self.start = time.monotonic()
        self.last_step = -1
        self.update(done)

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        elapsed = max(now - self.start, 1e-6)
        rate = (done - self.first) / elapsed
        if self.total:
            frac = min(done / self.total, 1.0)
            step = int(frac * 10)
            due = self.interval_s is not None and now - self.last_line >= self.interval_s
            if not self.tty and step == self.last_step and not due:
                return
            self.last_step = step
            self.last_line = now
            bar = ("#" * int(frac * 30)).ljust(30, ".")
            eta = (self.total - done) / rate if rate > 0 else 0
            text = (f"{self.label} [{bar}] {frac * 100:5.1f}% {done / 2**20:,.0f}/{self.total / 2**20:,.0f} MiB "
                    f"{rate / 2**20:,.1f} MiB/s" + (f" eta {eta:,.0f} s" if rate > 0 and done < self.total else ""))
        else:
            text = f"{self.label} {done / 2**20:,.0f} MiB {rate / 2**20:,.1f} MiB/s"
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _state_paths(models_dir: Path, local: str) -> tuple[Path, Path, Path, Path]:
    """(partial file, its resume metadata, the verified record, the lock) of `local`."""
    base = models_dir / STATE_DIR / local
    return (base.with_name(base.name + ".part"), base.with_name(base.name + ".part.json"),
            base.with_name(base.name + ".json"), base.with_name(base.name + ".lock"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, progress: Progress | None = None, label: str = "") -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    if progress is not None:
        progress.begin(label, 0, size)
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress.update(done)
    if progress is not None:
        progress.end()
    return h.hexdigest()


@contextlib.contextmanager
def _locked(lock: Path, key: str) -> Iterator[None]:
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise FetchFailed(key, f"another fetch is writing {lock.name.removesuffix('.lock')} now; wait for it "
                                       "to finish") from None
            raise
        yield


class _BackgroundHash:
    """sha256 on a second thread: hashlib releases the GIL on large updates, so the digest is computed while the
    next bytes are received and written (on loopback, hashing in line costs about a fifth of the throughput)."""

    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self.thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            self.hasher.update(chunk)

    def update(self, chunk: bytes) -> None:
        self.queue.put(chunk)

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()


def gguf_signature_problem(path: Path) -> str | None:
    """Why `path` does not start as a GGUF file does (magic and a version llama.cpp reads); None when it does."""
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[:4] != GGUF_MAGIC:
        return f"it does not start with the GGUF signature (first bytes {head[:4]!r})"
    version = int.from_bytes(head[4:8], "little")
    if version not in GGUF_VERSIONS:
        return f"GGUF version {version} is not one llama.cpp reads ({', '.join(map(str, GGUF_VERSIONS))})"
    return None


@dataclass
class Fetcher:
    client: HttpClient
    models_dir: Path
    progress: Progress = field(default_factory=Progress)
    min_stall_bytes: int = MIN_STALL_BYTES
    check: Callable[[Path], str | None] = gguf_signature_problem
    """Why a verified download is not a usable GGUF, or None; nothing is placed when it gives a reason."""

    def fetch(self, part: RemotePart) -> Outcome:
        """Put `part` in place under models_dir, or raise FetchFailed naming its key with nothing placed."""
        final = self.models_dir / part.local
        partial, meta, record, lock = _state_paths(self.models_dir, part.local)
        try:
            partial.parent.mkdir(parents=True, exist_ok=True)
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FetchFailed(part.key, f"cannot create {exc.filename}: {exc.strerror}; make models_dir writable "
                                        "(or give --models-dir)") from None
        with _locked(lock, part.key):
            present = self._present(part, final, record)
            if present is not None:
                return present
            return self._download(part, final, partial, meta, record)

    def _present(self, part: RemotePart, final: Path, record: Path) -> Outcome | None:
        """The outcome when `final` needs no download; None when it is to be (re)downloaded."""
        if not final.is_file():
            return None
        rec = _read_json(record)
        if rec:
            matches = rec.get("sha256") == part.sha256 if part.sha256 else rec.get("url") == part.url
            if matches:
                return Outcome(part, "present", sha256=rec.get("sha256"))
            return None  # fetch put it there for another declaration: replaced once the new one is verified
        if part.sha256 is None:
            return Outcome(part, "kept")
        digest = sha256_file(final, self.progress, f"checking {part.local}")
        if digest != part.sha256:
            raise FetchFailed(part.key, f"{final} is already there with sha256 {digest}, not the declared "
                                        f"{part.sha256}, and fetch did not put it there, so it is left alone: move "
                                        "it away to download the declared file, or correct the source's sha256")
        _write_json(record, {"sha256": digest, "url": part.url})
        return Outcome(part, "present", sha256=digest)

    def _download(self, part: RemotePart, final: Path, partial: Path, meta: Path, record: Path) -> Outcome:
        started = time.monotonic()
        state = _read_json(meta)
        have = partial.stat().st_size if partial.is_file() else 0
        resumable = have > 0 and state.get("url") == part.url and (state.get("etag") or part.sha256)
        headers: dict[str, str] = {}
        if resumable:
            headers["Range"] = f"bytes={have}-"
            if state.get("etag"):
                headers["If-Range"] = str(state["etag"])
        else:
            have = 0
        try:
            resp = self.client.request("GET", part.url, headers)
        except HttpError as exc:
            raise FetchFailed(part.key, http_failure(part, exc, self.client.token is not None)) from None
        try:
            if resp.status == 416 and resumable and resp.total_size == have:
                resp.raw.read()
                size, published, etag = have, resp.linked_sha256, state.get("etag")
                hasher = self._hash_existing(partial, part)
                resumed = have
            else:
                if resp.status not in (200, 206):
                    body = resp.raw.read(4096)
                    del body
                    raise FetchFailed(part.key, http_failure(
                        part, HttpError(f"{resp.raw.reason}", resp.status, resp.url), self.client.token is not None))
                cr = resp.content_range
                append = resp.status == 206 and cr is not None and cr[0] == have and have > 0
                if resp.status == 206 and not append:
                    raise FetchFailed(part.key, f"{redacted(resp.url)} answered with bytes {cr} instead of the "
                                                f"ones asked for from {have}; run fetch again")
                size = resp.total_size if resp.total_size is not None else -1
                published, etag = resp.linked_sha256, resp.etag
                _write_json(meta, {"url": part.url, "etag": etag, "size": size})
                hasher = self._hash_existing(partial, part) if append else hashlib.sha256()
                resumed = have if append else 0
                self._stream(resp, partial, hasher, append, resumed, size, part)
        finally:
            resp.close()
        got = partial.stat().st_size
        if size >= 0 and got != size:
            raise FetchFailed(part.key, f"the transfer ended at {got:,} of {size:,} bytes; run fetch again to resume "
                                        "(the partial file is kept)")
        digest = hasher.hexdigest()
        expected = part.sha256 or published
        if expected is not None and digest != expected:
            partial.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            origin = "the source declares" if part.sha256 else "the server publishes"
            raise FetchFailed(part.key, f"the downloaded file's sha256 is {digest}, but {origin} {expected}: "
                                        f"nothing was placed at {final}; check the source's "
                                        f"{'sha256' if part.sha256 else 'revision'}")
        self._check_gguf(partial, meta, part, final)
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(partial, 0o644)
        os.replace(partial, final)
        _fsync_dir(final.parent)
        _write_json(record, {"sha256": digest, "url": part.url, "size": got, "etag": etag})
        meta.unlink(missing_ok=True)
        return Outcome(part, "downloaded", got - resumed, time.monotonic() - started, digest, resumed)

    def _hash_existing(self, partial: Path, part: RemotePart) -> Any:
        h = hashlib.sha256()
        with open(partial, "rb") as f:
            while chunk := f.read(HASH_CHUNK):
                h.update(chunk)
        return h

    def _stream(self, resp: Any, partial: Path, hasher: Any, append: bool, done: int, size: int,
                part: RemotePart) -> None:
        label = f"{part.local}" + (f" (part {part.part}/{part.parts})" if part.parts > 1 else "")
        self.progress.begin(label, done, size if size >= 0 else None)
        window_start, window_bytes = time.monotonic(), done
        last_draw = 0.0
        background = _BackgroundHash(hasher)
        try:
            with open(partial, "ab" if append else "wb") as f:
                while True:
                    try:
                        chunk = resp.raw.read1(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        self.client.drop(resp.url)
                        raise FetchFailed(part.key, f"{redacted(resp.url)} stopped sending data "
                                                    f"({exc.__class__.__name__}) after {done:,} bytes, with no byte "
                                                    f"for {self.client.timeout:g} s; run fetch again to resume "
                                                    "(the partial file is kept)") from None
                    if not chunk:
                        break
                    self.client.bytes_read += len(chunk)
                    background.update(chunk)
                    f.write(chunk)
                    done += len(chunk)
                    now = time.monotonic()
                    if now - window_start >= self.client.timeout:
                        if done - window_bytes < self.min_stall_bytes:
                            self.client.drop(resp.url)
                            raise FetchFailed(part.key, f"{redacted(resp.url)} sent only {done - window_bytes:,} "
                                                        f"bytes in {now - window_start:.0f} s: the server is "
                                                        "stalling; run fetch again to resume (the partial file is "
                                                        "kept)")
                        window_start, window_bytes = now, done
                    if now - last_draw >= 0.5:
                        self.progress.update(done)
                        last_draw = now
        finally:
            background.finish()
            self.progress.update(done)
            self.progress.end()

    def _check_gguf(self, partial: Path, meta: Path, part: RemotePart, final: Path) -> None:
        problem = self.check(partial)
        if problem is not None:
            partial.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            raise FetchFailed(part.key, f"the downloaded file is not a usable GGUF ({problem}); nothing was placed "
                                        f"at {final}")


def hf_token(stack_path: Path | None, secret_keys: frozenset[str]) -> tuple[str | None, str | None]:
    """(token, note): `HF_TOKEN` if set; else the stack's `hf_token` secret through `pulumi config get`, when the
    stack declares one and the Pulumi CLI can decrypt it. The note says why no token was found; never the value."""
    env = os.environ.get("HF_TOKEN")
    if env:
        return env, None
    if "hf_token" not in secret_keys or stack_path is None:
        return None, None
    name = stack_path.name
    if not (name.startswith("Pulumi.") and name.endswith((".yaml", ".yml"))):
        return None, "hf_token is a secret of a stack file pulumi cannot name; set HF_TOKEN"
    stack = name.removeprefix("Pulumi.").rsplit(".", 1)[0]
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return None, "hf_token is a Pulumi secret and no pulumi CLI is on PATH to decrypt it; set HF_TOKEN"
    try:
        proc = subprocess.run(
            [pulumi, "config", "get", "hf_token", "--stack", stack, "--cwd", str(stack_path.parent or ".")],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"pulumi config get hf_token failed ({exc.__class__.__name__}); set HF_TOKEN"
    token = proc.stdout.strip()
    if proc.returncode != 0 or not token:
        return None, (f"pulumi config get hf_token --stack {stack} failed (exit {proc.returncode}; a passphrase "
                      "stack needs PULUMI_CONFIG_PASSPHRASE); set HF_TOKEN")
    return token, None


def fetch_all(fetcher: Fetcher, parts: list[RemotePart]) -> tuple[list[Outcome], list[FetchFailed]]:
    """Every part in turn; a failed part leaves nothing in place and does not stop the others."""
    done: list[Outcome] = []
    failed: list[FetchFailed] = []
    for part in parts:
        try:
            done.append(fetcher.fetch(part))
        except FetchFailed as exc:
            failed.append(exc)
    return done, failed
