"""One file to download and where it lands: standard library only.

The downloader (`stack.fetch.fetcher`, `stack.fetch.http_client`, `stack.fetch.job`) also runs inside a one-shot
container on the Docker host during `pulumi up`, where only Python's standard library can be counted on; these
definitions are shared by that code and by the config schema (`models.sources`), which builds them from declared
sources.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass
from typing import Any


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class RemotePart:
    """One file to fetch: where it lands under models_dir and where it comes from."""

    key: str
    """The config key of the source, e.g. `models.chat.source`; errors name it."""
    local: str
    url: str
    """The URL asked first (for Hugging Face, the `resolve` URL that redirects to the file's storage)."""
    sha256: str | None
    pinned_revision: bool
    hf: bool
    part: int = 1
    parts: int = 1

    @property
    def cache_identity(self) -> str | None:
        """What names the file's content for good: its digest, or a URL with a commit in it; None otherwise."""
        if self.sha256:
            return f"sha256:{self.sha256}"
        return self.url if self.pinned_revision else None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RemotePart:
        """The inverse of `to_json`; a missing `sha256` is none (Pulumi drops null values from resource inputs)."""
        return cls(str(data["key"]), str(data["local"]), str(data["url"]), data.get("sha256"),
                   bool(data.get("pinned_revision")), bool(data.get("hf")), int(data.get("part", 1)),
                   int(data.get("parts", 1)))
