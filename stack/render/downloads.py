"""What `pulumi up` downloads on the Docker host, one entry per declared file with a source, without Pulumi types.

Each file (all parts of a split GGUF together) is one download resource, so a changed source replaces that file's
download and the containers that load it, and nothing else. Its identity is where it lands and where it comes
from (the parts' names, URLs and declared digests): never a time stamp, so a second `up` has nothing to do.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from models.config import StackConfig
from models.sources import declared_files, remote_parts
from stack.fetch.remote_part import RemotePart, is_loopback_host
from stack.render.containers import EMBEDDINGS, LABEL_PREFIX, LLAMA_SWAP

MODELS_LABEL = f"{LABEL_PREFIX}.model-files"
"""On each service container: a digest of the downloaded files it loads (names and sha256), so a changed file
replaces the container that has the old one open."""
CONTAINER_MODELS_DIR = "/models"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class DownloadSpec:
    file: str
    """The declared `file` (a split GGUF's first part), relative to models_dir."""
    parts: tuple[RemotePart, ...]
    services: frozenset[str]
    """The services whose container loads it."""
    slug: str
    """`file` made fit for resource and container names, unique within the stack."""
    network_mode: str
    """`host` when a URL is on loopback (a mirror on the Docker host itself), else Docker's `bridge`."""

    @property
    def key(self) -> str:
        return self.parts[0].key


def _slug(file: str) -> str:
    safe = _UNSAFE.sub("-", file).strip("-.") or "model"
    if safe != file:
        safe = f"{safe[:80]}-{hashlib.sha256(file.encode()).hexdigest()[:8]}"
    return safe[:100]


def download_specs(cfg: StackConfig) -> list[DownloadSpec]:
    """One spec per declared file that has a source, in declaration order; a file two keys name is one spec."""
    found: dict[str, tuple[list[RemotePart], set[str]]] = {}
    for entry in declared_files(cfg):
        if entry.source is None:
            continue
        service = EMBEDDINGS if entry.key.startswith("embeddings.") else LLAMA_SWAP
        if entry.file not in found:
            found[entry.file] = (remote_parts(entry.settings_key, entry.file, entry.source, cfg.hf_endpoint), set())
        found[entry.file][1].add(service)
    out = []
    for file, (parts, services) in found.items():
        loopback = any(is_loopback_host(urlsplit(p.url).hostname or "") for p in parts)
        out.append(DownloadSpec(file, tuple(parts), frozenset(services), _slug(file), "host" if loopback else "bridge"))
    return out


def identity(parts: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """What a download is, for its diff: each part's name, URL and declared sha256 (not how it is fetched)."""
    return [[p.get("local"), p.get("url"), p.get("sha256")] for p in parts]


def models_digest(files: Mapping[str, Sequence[str | None]]) -> str:
    """The value of `MODELS_LABEL`: sha256 over each file's name and its parts' verified digests, sorted."""
    text = "\n".join(f"{name}={','.join(d or '' for d in digests)}" for name, digests in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()
