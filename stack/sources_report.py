"""Where each model file's sizing came from, and what is still to download: `plan`'s "Model files" section.

Every file llama-server loads is marked `local` (its header read from models_dir), `remote header` (read with
range requests from its declared source: the exact sizing of the file that will be downloaded), `catalog` or
`config` (no header readable: the built-in catalog or the config's `arch`/`weights_mib`), with its source and
whether a sha256 pins it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.config import StackConfig
from models.sources import DeclaredFile, ModelSource, declared_files, split_parts
from stack.fetch.http_client import redacted
from stack.gguf.remote import SourcedHeaders
from stack.gguf.sources import HeaderSource
from stack.sizing.plan import Plan
from stack.units import MIB


@dataclass(frozen=True)
class FileRow:
    key: str
    file: str
    sized_from: str
    source: str | None
    pinned: str | None
    parts: int
    remote_bytes: int | None
    download_bytes: int | None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "file": self.file, "sized_from": self.sized_from, "source": self.source,
            "pinned": self.pinned, "parts": self.parts, "remote_bytes": self.remote_bytes,
            "download_bytes": self.download_bytes, "problem": self.problem,
        }


def describe_source(source: ModelSource, file: str) -> str:
    if source.url is not None:
        return redacted(source.url)
    return f"hf {source.repo}@{source.revision}:{source.file or file}"


def pin_state(source: ModelSource) -> str:
    """`sha256` when a digest pins the content; otherwise `unpinned`, with what is missing."""
    if source.sha256:
        return "sha256"
    return "unpinned (no sha256)" if source.pinned_revision else f"unpinned (revision {source.revision}, no sha256)"


def _fallback_origin(plan: Plan, entry: DeclaredFile) -> str:
    """`catalog` or `config` for a file whose header was not read, from the source the sizing used."""
    settings_key = entry.settings_key
    for p in plan.processes.values():
        if settings_key == p.key:
            source = p.arch.source
        elif settings_key == f"{p.key}.draft" and p.extras.draft_arch is not None:
            source = p.extras.draft_arch.source
        elif settings_key == f"{p.key}.mmproj":
            return "config"
        else:
            continue
        return source.split(":", 1)[0] if source.startswith(("catalog:", "config:")) else "local"
    return "catalog"


def file_rows(cfg: StackConfig, plan: Plan, headers: HeaderSource | None) -> list[FileRow]:
    rows: list[FileRow] = []
    status = headers.status if isinstance(headers, SourcedHeaders) else {}
    for entry in declared_files(cfg):
        parts = len(split_parts(entry.file))
        src = describe_source(entry.source, entry.file) if entry.source is not None else None
        pinned = pin_state(entry.source) if entry.source is not None else None
        st = status.get(entry.file)
        if st is not None and st.how != "unavailable":
            download = st.download_bytes if st.how == "remote header" else 0
            rows.append(FileRow(entry.key, entry.file, st.how, src, pinned, parts, st.remote_bytes, download))
            continue
        how = _fallback_origin(plan, entry)
        problem = st.problem if st is not None else None
        rows.append(FileRow(entry.key, entry.file, how, src, pinned, parts, None,
                            0 if how == "local" else None, problem))
    return rows


def downloads_json(rows: list[FileRow], headers: HeaderSource | None) -> dict[str, Any]:
    remote = headers.remote if isinstance(headers, SourcedHeaders) else None
    pending = [r for r in rows if r.download_bytes]
    return {
        "files": len({r.file for r in pending}),
        "bytes": sum({r.file: r.download_bytes or 0 for r in pending}.values()),
        "unknown_size": sorted(r.key for r in rows if r.download_bytes is None and r.source is not None),
        "header_bytes_read": remote.header_bytes if remote is not None else 0,
        "header_requests": remote.requests if remote is not None else 0,
        "header_cache_hits": remote.cache_hits if remote is not None else 0,
    }


def _size(n: int | None) -> str:
    return "?" if n is None else f"{n / MIB:,.1f} MiB"


def render_files_text(rows: list[FileRow], downloads: dict[str, Any]) -> str:
    lines = ["Model files (sized from: local header, remote header, catalog or config):"]
    width = max((len(r.key) for r in rows), default=0)
    for r in rows:
        parts = f" ({r.parts} parts)" if r.parts > 1 else ""
        line = f"  {r.key:<{width}}  {r.sized_from:<13} {r.file}{parts}"
        if r.download_bytes:
            line += f", {_size(r.download_bytes)} to download"
        lines.append(line)
        if r.source is not None:
            lines.append(f"  {'':<{width}}  source: {r.source}; {r.pinned}")
        if r.problem:
            lines.append(f"  {'':<{width}}  not read: {r.problem}")
    total = downloads["bytes"]
    unknown = downloads["unknown_size"]
    if total:
        summary = f"Still to download: {downloads['files']} file(s), {_size(total)} (python -m stack fetch)"
    else:
        summary = "Still to download: " + ("no file of known size" if unknown else "nothing")
    if unknown:
        summary += f"; size unknown (header not read) for {', '.join(unknown)}"
    lines.append(summary)
    if downloads["header_requests"] or downloads["header_cache_hits"]:
        lines.append(f"Remote headers: {downloads['header_bytes_read']:,} bytes in {downloads['header_requests']} "
                     f"request(s), {downloads['header_cache_hits']} from the cache")
    return "\n".join(lines) + "\n"
