"""`source` keys: what each kind requires, split GGUFs, and the URLs and parts they expand to."""

from __future__ import annotations

from typing import Any

import pytest

from models import ConfigError, parse_stack_config
from models.sources import declared_files, hf_url, sourced_parts, split_info, split_parts
from tests.unit.helpers import stack

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SHA = "ab" * 32


def _model(**keys: Any) -> dict[str, Any]:
    return {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096, **keys}


def _problems(**overrides: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        stack(**overrides)
    return info.value.problems


def test_hf_source_defaults_its_file_to_the_model_file_and_pins_by_commit() -> None:
    cfg = stack(models={"chat": _model(source={"repo": "bartowski/Qwen2.5-7B-Instruct-GGUF", "revision": COMMIT})})
    (part,) = sourced_parts(cfg).values()
    assert part.url == f"https://huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF/resolve/{COMMIT}/" \
                       "Qwen2.5-7B-Instruct-Q4_K_M.gguf"
    assert part.key == "models.chat.source" and part.local == "Qwen2.5-7B-Instruct-Q4_K_M.gguf"
    assert part.pinned_revision and part.sha256 is None and part.cache_identity == part.url


def test_branch_revision_is_unpinned_and_percent_encoded() -> None:
    assert hf_url("https://hf.example/", "a/b", "refs/pr/1", "dir/x.gguf") == \
        "https://hf.example/a/b/resolve/refs%2Fpr%2F1/dir/x.gguf"
    cfg = stack(models={"chat": _model(source={"repo": "a/b", "revision": "main"})})
    (part,) = sourced_parts(cfg).values()
    assert not part.pinned_revision and part.cache_identity is None


def test_sha256_names_the_content_for_the_cache_whatever_the_url() -> None:
    cfg = stack(models={"chat": _model(source={"url": "https://cdn.example/x.gguf?sig=1", "sha256": SHA})})
    (part,) = sourced_parts(cfg).values()
    assert part.cache_identity == f"sha256:{SHA}" and not part.hf


@pytest.mark.parametrize(("source", "key", "fragment"), [
    ({"repo": "a/b"}, "models.chat.source.revision", "commit id"),
    ({"revision": COMMIT}, "models.chat.source.repo", "give repo"),
    ({"url": "https://x.example/m.gguf"}, "models.chat.source.sha256", "required with url"),
    ({"url": "https://x.example/m.gguf", "sha256": SHA, "repo": "a/b"}, "models.chat.source.repo", "either a url"),
    ({"url": "http://x.example/m.gguf", "sha256": SHA}, "models.chat.source.url", "https://"),
    ({"url": "ftp://x.example/m.gguf", "sha256": SHA}, "models.chat.source.url", "http"),
    ({"repo": "no-slash", "revision": COMMIT}, "models.chat.source.repo", "owner/name"),
    ({"repo": "a/b", "revision": "../main"}, "models.chat.source.revision", "not a revision"),
    ({"repo": "a/b", "revision": COMMIT, "file": "../x.gguf"}, "models.chat.source.file", "inside the repository"),
    ({"repo": "a/b", "revision": COMMIT, "sha256": SHA.upper()}, "models.chat.source.sha256", "lowercase hex"),
    ({"repo": "a/b", "revision": COMMIT, "sha256": [SHA, SHA]}, "models.chat.source.sha256", "2 digest(s) for 1"),
    ({"repo": "a/b", "revision": COMMIT, "token": "x"}, "models.chat.source.token", "unknown key"),
])
def test_bad_sources_are_refused_at_their_key(source: dict[str, Any], key: str, fragment: str) -> None:
    problems = _problems(models={"chat": _model(source=source)})
    assert any(k == key and fragment in m for k, m in problems), problems


def test_plain_http_is_accepted_on_loopback_only() -> None:
    cfg = stack(hf_endpoint="http://127.0.0.1:8099/", models={"chat": _model(source={
        "url": "http://localhost:8099/m.gguf", "sha256": SHA})})
    assert cfg.hf_endpoint == "http://127.0.0.1:8099"
    assert any(k == "hf_endpoint" for k, _ in _problems(hf_endpoint="http://mirror.lan"))


def test_split_files_are_named_by_their_first_part_and_expand_to_every_part() -> None:
    assert split_info("m-00002-of-00003.gguf") == ("m", 2, 3)
    assert split_parts("d/m-00001-of-00003.gguf") == [f"d/m-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split_parts("m.gguf") == ["m.gguf"]
    problems = _problems(models={"chat": _model(file="m-00002-of-00003.gguf")})
    assert problems[0][0] == "models.chat.file" and "m-00001-of-00003.gguf" in problems[0][1]
    cfg = stack(models={"chat": _model(file="m-00001-of-00002.gguf", source={
        "url": "https://cdn.example/p/big-00001-of-00002.gguf?download=1", "sha256": [SHA, "cd" * 32]})})
    parts = sourced_parts(cfg)
    assert list(parts) == ["m-00001-of-00002.gguf", "m-00002-of-00002.gguf"]
    second = parts["m-00002-of-00002.gguf"]
    assert second.url == "https://cdn.example/p/big-00002-of-00002.gguf?download=1"
    assert (second.sha256, second.part, second.parts) == ("cd" * 32, 2, 2)


@pytest.mark.parametrize(("file", "source", "fragment"), [
    ("m.gguf", {"repo": "a/b", "revision": COMMIT, "file": "m-00001-of-00002.gguf"}, "is a split GGUF but file"),
    ("m-00001-of-00002.gguf", {"repo": "a/b", "revision": COMMIT, "file": "m.gguf"}, "point the source at"),
    ("m-00001-of-00002.gguf", {"repo": "a/b", "revision": COMMIT, "file": "m-00001-of-00003.gguf"}, "3 parts"),
    ("m-00001-of-00002.gguf", {"repo": "a/b", "revision": COMMIT, "file": "m-00002-of-00002.gguf"}, "part 00001"),
])
def test_split_source_must_match_the_split_file(file: str, source: dict[str, Any], fragment: str) -> None:
    problems = _problems(models={"chat": _model(file=file, source=source)})
    assert any(k == "models.chat.source.file" and fragment in m for k, m in problems), problems


def test_every_loaded_file_can_have_a_source() -> None:
    src = {"repo": "a/b", "revision": COMMIT}
    cfg = stack(
        models={"chat": _model(source=src, draft={"file": "d.gguf", "source": src},
                               mmproj={"file": "p.gguf", "source": src})},
        embeddings={"file": "e.gguf", "source": src},
    )
    assert [d.key for d in declared_files(cfg)] == [
        "models.chat.file", "models.chat.draft.file", "models.chat.mmproj.file", "embeddings.file"]
    assert [p.key for p in sourced_parts(cfg).values()] == [
        "models.chat.source", "models.chat.draft.source", "models.chat.mmproj.source", "embeddings.source"]


def test_one_file_two_different_sources_is_refused_and_equal_sources_are_fine() -> None:
    a = {"repo": "a/b", "revision": COMMIT}
    ok = stack(models={"chat": _model(source=a), "agent": _model(source=a)})
    assert len(sourced_parts(ok)) == 1
    problems = _problems(models={"chat": _model(source=a), "agent": _model(source={**a, "repo": "c/d"})})
    assert problems[0][0] == "models.agent.source" and "models.chat.file" in problems[0][1]


def test_hf_token_is_a_secret_only() -> None:
    assert parse_stack_config({"models_dir": "/srv/models", "models": {"chat": _model()}},
                              frozenset({"hf_token"})) is not None
    assert _problems(hf_token="hf_x")[0][0] == "hf_token"
