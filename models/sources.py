"""Where a model file comes from when it is not in `models_dir` yet: a Hugging Face file or an HTTPS URL.

A source is what lets `plan` size a model from its remote header before any download, and `fetch` (or `pulumi
up`) put the file in place afterwards. The checks here are what can be known without the network: names, a
pinned revision, sha256 digests, and split GGUFs (`name-00001-of-00003.gguf`), whose parts must all be declared
the same way and whose first part is the one llama-server is pointed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Self
from urllib.parse import quote, urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictStr, model_validator
from pydantic_core import PydanticCustomError

from models.values import HttpUrl
from stack.fetch.remote_part import RemotePart, is_loopback_host

if TYPE_CHECKING:
    from models.config import StackConfig

HF_ENDPOINT = "https://huggingface.co"

_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_REVISION_RE = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]{0,127}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_REPO_FILE_RE = re.compile(r"[A-Za-z0-9._+-][A-Za-z0-9._+/-]{0,511}")
SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")
"""llama.cpp's split naming (`llama_split_path`): `<prefix>-%05d-of-%05d.gguf`, parts numbered from 1."""
MAX_SPLIT_PARTS = 999


def _problems(problems: list[tuple[str, str]]) -> PydanticCustomError:
    summary = "; ".join(f"{path}: {msg}" for path, msg in problems)
    return PydanticCustomError("invalid_keys", "{summary}", {"summary": summary, "problems": problems})


def _check_repo(value: str) -> str:
    if not _REPO_RE.fullmatch(value) or ".." in value:
        raise ValueError(f"{value!r} is not a Hugging Face repository: give owner/name, e.g. "
                         "bartowski/Qwen2.5-7B-Instruct-GGUF")
    return value


def _check_revision(value: str) -> str:
    if not _REVISION_RE.fullmatch(value) or ".." in value or "//" in value:
        raise ValueError(f"{value!r} is not a revision: give the 40-hex commit id (pinned), or a branch name")
    return value


def _sha256_list(value: Any) -> tuple[str, ...]:
    """One digest, or a list of them (one per part of a split GGUF), each 64 lowercase hex digits."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or len(items) > MAX_SPLIT_PARTS:
        raise ValueError(f"expected a sha256 digest, or a list of 1 to {MAX_SPLIT_PARTS} (one per part); got {value!r}")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not _SHA256_RE.fullmatch(item):
            where = "" if isinstance(value, str) else f"item {i}: "
            raise ValueError(f"{where}{item!r} is not a sha256 digest: give 64 lowercase hex digits (sha256sum's "
                             "output)")
    return tuple(items)


def _check_repo_file(value: str) -> str:
    parts = value.split("/")
    if not _REPO_FILE_RE.fullmatch(value) or ".." in parts or "" in parts or not value.endswith(".gguf"):
        raise ValueError(f"{value!r} is not a .gguf file path inside the repository (letters, digits, '.', '_', "
                         "'-', '+', '/')")
    return value


def _check_download_url(value: str) -> str:
    """https only: a model file is code-adjacent input. Plain http is accepted on loopback (a local mirror)."""
    url = urlsplit(value)
    if url.scheme != "https" and not (url.scheme == "http" and is_loopback_host(url.hostname or "")):
        raise ValueError(f"{value!r} must be an https:// URL (http:// is accepted only on 127.0.0.1 or localhost)")
    if url.fragment:
        raise ValueError(f"{value!r} has a #fragment, which no server sees; remove it")
    return value


HfRepo = Annotated[StrictStr, AfterValidator(_check_repo)]
Revision = Annotated[StrictStr, AfterValidator(_check_revision)]
Sha256s = Annotated[tuple[str, ...], BeforeValidator(_sha256_list)]
RepoFile = Annotated[StrictStr, AfterValidator(_check_repo_file)]
DownloadUrl = Annotated[HttpUrl, AfterValidator(_check_download_url)]


def _check_endpoint(value: str) -> str:
    _check_download_url(value)
    url = urlsplit(value)
    if url.query:
        raise ValueError(f"{value!r} has a query string; give the endpoint's base URL, e.g. {HF_ENDPOINT}")
    return value.rstrip("/")


HfEndpoint = Annotated[HttpUrl, AfterValidator(_check_endpoint)]
"""`hf_endpoint`: the Hugging Face server or a mirror serving its layout (`HF_ENDPOINT` in huggingface_hub)."""


class ModelSource(BaseModel):
    """`source` of a model, draft, projector or embedding file.

    A Hugging Face file: `repo`, `revision` (the 40-hex commit pins it; a branch name is accepted and reported as
    unpinned), optional `file` (its path in the repository; default: the model's `file`) and `sha256`.
    An HTTPS file: `url` and `sha256` (required: a URL pins nothing). For a split GGUF, `sha256` lists one
    digest per part.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)

    repo: HfRepo | None = None
    revision: Revision | None = None
    file: RepoFile | None = None
    url: DownloadUrl | None = None
    sha256: Sha256s | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        problems: list[tuple[str, str]] = []
        if self.url is not None:
            for key in ("repo", "revision", "file"):
                if getattr(self, key) is not None:
                    problems.append((key, "a source is either a url or a Hugging Face repo; remove one of them"))
            if self.sha256 is None:
                problems.append(("sha256", "required with url: a URL pins nothing, so the download is checked "
                                           "against this digest (sha256sum of the file)"))
        elif self.repo is None:
            problems.append(("repo", "give repo (with revision) for a Hugging Face file, or url (with sha256)"))
        elif self.revision is None:
            problems.append(("revision", "required with repo: the commit id the file is taken from (40 hex digits, "
                                         "shown on the file's page under 'History'), or a branch name such as main"))
        if problems:
            raise _problems(problems)
        return self

    @property
    def pinned_revision(self) -> bool:
        return self.url is not None or bool(self.revision and _COMMIT_RE.fullmatch(self.revision))

    @property
    def digests(self) -> list[str]:
        return list(self.sha256 or ())


def split_info(name: str) -> tuple[str, int, int] | None:
    """(stem, part number, part count) of a split GGUF name, or None for a single file."""
    m = SPLIT_RE.match(name)
    if m is None:
        return None
    return m.group("stem"), int(m.group("no")), int(m.group("count"))


def split_parts(name: str) -> list[str]:
    """Every part of a split GGUF named by its first part, in order; `[name]` for a single file."""
    info = split_info(name)
    if info is None:
        return [name]
    stem, _, count = info
    return [f"{stem}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def file_problems(file: str) -> list[tuple[str, str]]:
    """A split GGUF is named by its first part: llama-server loads the others from it."""
    info = split_info(file)
    if info is None:
        return []
    _, no, count = info
    if count < 1 or count > MAX_SPLIT_PARTS or no > count:
        return [("file", f"{file!r} is not a valid split name (part {no} of {count})")]
    if no != 1:
        first = split_parts(file)[0]
        return [("file", f"{file!r} is part {no} of a split model; name its first part, {first!r}, which "
                         "llama-server loads the others from")]
    return []


def source_problems(file: str, source: ModelSource | None) -> list[tuple[str, str]]:
    """Key-path problems (relative to the settings holding `file` and `source`) of a file and its source."""
    problems = file_problems(file)
    if source is None or problems:
        return problems
    remote = source.file or file if source.url is None else urlsplit(source.url).path.rsplit("/", 1)[-1]
    local_split, remote_split = split_info(file), split_info(remote)
    where = "source.url" if source.url is not None else "source.file"
    if (local_split is None) != (remote_split is None):
        if local_split is None:
            return [(where, f"{remote!r} is a split GGUF but file {file!r} is not; name file after its first part "
                            "(…-00001-of-0000N.gguf) so that every part lands beside it")]
        return [(where, f"file {file!r} is a split GGUF but the source {remote!r} is not; point the source at "
                        "the first part")]
    if local_split is not None and remote_split is not None:
        if remote_split[1] != 1:
            return [(where, f"{remote!r} is part {remote_split[1]}; point the source at part 00001")]
        if remote_split[2] != local_split[2]:
            return [(where, f"{remote!r} has {remote_split[2]} parts but file {file!r} has {local_split[2]}; "
                            "give file and source the same number of parts")]
    parts = local_split[2] if local_split is not None else 1
    digests = source.digests
    if digests and len(digests) != parts:
        return [("source.sha256", f"gives {len(digests)} digest(s) for {parts} part(s); give one per part, in order"
                                  + (" (a single file takes one digest)" if parts == 1 else ""))]
    return []


def hf_url(endpoint: str, repo: str, revision: str, file: str) -> str:
    """huggingface_hub's `hf_hub_url`: `{endpoint}/{repo}/resolve/{revision}/{file}`, revision percent-encoded."""
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(file, safe='/')}"


def remote_parts(key: str, file: str, source: ModelSource, endpoint: str = HF_ENDPOINT) -> list[RemotePart]:
    """The parts of `file` (relative to models_dir) and their URLs; `key` is the settings key (`models.chat`)."""
    locals_ = split_parts(file)
    digests = source.digests
    out: list[RemotePart] = []
    if source.url is not None:
        split = urlsplit(source.url)
        remotes = [split._replace(path=path).geturl() for path in split_parts(split.path)]
    else:
        assert source.repo is not None and source.revision is not None
        remotes = [hf_url(endpoint, source.repo, source.revision, name) for name in split_parts(source.file or file)]
    for i, (local, url) in enumerate(zip(locals_, remotes, strict=True)):
        out.append(RemotePart(
            key=f"{key}.source", local=local, url=url, sha256=digests[i] if i < len(digests) else None,
            pinned_revision=source.pinned_revision, hf=source.url is None, part=i + 1, parts=len(locals_),
        ))
    return out


@dataclass(frozen=True)
class DeclaredFile:
    """A model file the stack loads: its config key (`models.chat.file`), its name, and its source if any."""

    key: str
    file: str
    source: ModelSource | None

    @property
    def settings_key(self) -> str:
        return self.key.removesuffix(".file")


def declared_files(cfg: StackConfig) -> Iterator[DeclaredFile]:
    """Every file llama-server loads: each model's, draft's and projector's, and the embedding server's."""
    for mid, model in cfg.models.items():
        yield DeclaredFile(f"models.{mid}.file", model.file, model.source)
        if model.draft is not None:
            yield DeclaredFile(f"models.{mid}.draft.file", model.draft.file, model.draft.source)
        if model.mmproj is not None:
            yield DeclaredFile(f"models.{mid}.mmproj.file", model.mmproj.file, model.mmproj.source)
    if cfg.embedding is not None:
        yield DeclaredFile("embeddings.file", cfg.embedding.file, cfg.embedding.source)


def conflicting_sources(cfg: StackConfig) -> list[tuple[str, str]]:
    """One file under models_dir can come from one place only: two keys that name it must not disagree."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, DeclaredFile] = {}
    for entry in declared_files(cfg):
        for part in split_parts(entry.file):
            first = seen.setdefault(part, entry)
            if first is entry or first.source is None or entry.source is None:
                if first.source is None and entry.source is not None:
                    seen[part] = entry
                continue
            if first.source != entry.source:
                problems.append((f"{entry.settings_key}.source", f"{part!r} is also {first.key} with another source "
                                 f"({first.settings_key}.source); give both the same source"))
                break
    return problems


def sourced_parts(cfg: StackConfig) -> dict[str, RemotePart]:
    """Local part name → where to fetch it, for every declared file that has a source."""
    out: dict[str, RemotePart] = {}
    for entry in declared_files(cfg):
        if entry.source is not None:
            for part in remote_parts(entry.settings_key, entry.file, entry.source, cfg.hf_endpoint):
                out.setdefault(part.local, part)
    return out
