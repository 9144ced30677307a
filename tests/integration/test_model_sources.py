"""Declared model sources against a real HTTP server: nginx on 127.0.0.1 laid out as Hugging Face serves files.

`python -m stack plan` sizes models from their remote headers (range requests), `python -m stack fetch` downloads
them (resumable, sha256-verified, atomic). What the server sent is counted from nginx's own access log.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.hf_mirror import TOKEN, HfMirror, HubFile, nginx_binary, running_mirror, sha256_of
from bench.local import write_stack_file
from stack.gguf.header import read_header_file
from stack.gguf.writers import chat_model, minilm_model
from tests.harness import binaries
from tests.harness.llama_server import cpu_args, start_llama_server
from tests.unit.helpers import REPO

pytestmark = pytest.mark.integration

COMMIT = "5d0f1c2b3a4e5f60718293a4b5c6d7e8f9012345"
MIB = 1 << 20


@dataclass(frozen=True)
class Models:
    chat: Path
    embed: Path
    split: list[Path]
    """The chat model cut into three parts by the real llama-gguf-split."""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    if nginx_binary() is None:
        pytest.fail("nginx is missing: run scripts/install-tools.sh (installs Debian's nginx)")
    chat, _ = chat_model()
    embed, _ = minilm_model()
    out = tmp_path_factory.mktemp("split")
    n_tensors = len(read_header_file(chat).tensors)
    tool = Path(binaries.llama_server()).with_name("llama-gguf-split")
    subprocess.run([str(tool), "--split", "--split-max-tensors", str(math.ceil(n_tensors / 3)), str(chat),
                    str(out / "chat-split")], check=True, capture_output=True)
    split = sorted(out.glob("chat-split-*-of-00003.gguf"))
    assert len(split) == 3
    return Models(chat, embed, split)


def _hub(models: Models, **chat_kw: Any) -> list[HubFile]:
    return [
        HubFile("org/chat-GGUF", COMMIT, "chat-f16.gguf", models.chat, **chat_kw),
        HubFile("org/embed-GGUF", "main", "minilm-f16.gguf", models.embed),
        *[HubFile("org/big-GGUF", COMMIT, p.name, p) for p in models.split],
    ]


def _stack(tmp: Path, mirror: HfMirror, models: Models, **chat_source: Any) -> Path:
    cfg = {
        "models_dir": str(tmp / "models"),
        "hf_endpoint": mirror.endpoint,
        "gpu": {"profile": "cpu"},
        "models": {
            "chat": {"file": "chat-f16.gguf", "ctx_size": 2048, "source": {
                "repo": "org/chat-GGUF", "revision": COMMIT, "sha256": sha256_of(models.chat), **chat_source}},
            "big": {"file": "big/chat-split-00001-of-00003.gguf", "ctx_size": 2048, "source": {
                "repo": "org/big-GGUF", "revision": COMMIT, "file": "chat-split-00001-of-00003.gguf"}},
        },
        "embeddings": {"file": "minilm-f16.gguf", "source": {"repo": "org/embed-GGUF", "revision": "main"}},
    }
    return write_stack_file(tmp / "Pulumi.sources.yaml", cfg)


def _env(tmp: Path) -> dict[str, str]:
    """The test environment without a token and without LLS_OFFLINE (these tests serve their sources here)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "LLS_OFFLINE")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    return env


def _cli(tmp: Path, *args: str, token: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = _env(tmp)
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "stack", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout, check=False)


def _totals(plan: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    return {pid: (m["weights_mib"], m["kv_mib"], m["total_mib"]) for pid, m in plan["models"].items()}


@pytest.fixture
def mirror(tmp_path: Path, models: Models) -> Iterator[HfMirror]:
    with running_mirror(tmp_path / "srv", _hub(models)) as m:
        yield m


def test_plan_sizes_from_remote_headers_exactly_as_from_the_files(tmp_path: Path, mirror: HfMirror,
                                                                    models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models)
    remote = _cli(tmp_path, "plan", "--json", "--config", str(stack_file))
    assert remote.returncode == 0, remote.stderr
    remote_plan = json.loads(remote.stdout)
    log = mirror.log()
    served = sum(e.bytes_sent for e in log)
    assert served < 4 * MIB, f"plan read {served:,} bytes"
    assert not any(e.auth for e in log)
    embed_bytes = sum(e.body_bytes for e in log if e.uri.startswith("/blobs/") and e.host == "localhost"
                      and e.uri.endswith(sha256_of(models.embed)))
    assert 0 < embed_bytes <= 1 * MIB < models.embed.stat().st_size // 40, "only the embedder's header is read"
    rows = {r["key"]: r for r in remote_plan["files"]}
    assert {r["sized_from"] for r in rows.values()} == {"remote header"}
    assert rows["models.big.file"]["parts"] == 3
    assert rows["models.big.file"]["download_bytes"] == sum(p.stat().st_size for p in models.split)
    assert rows["embeddings.file"]["pinned"].startswith("unpinned") and rows["models.chat.file"]["pinned"] == "sha256"
    downloads = remote_plan["downloads"]
    assert downloads["bytes"] == sum(p.stat().st_size for p in [models.chat, models.embed, *models.split])
    assert downloads["header_bytes_read"] == sum(e.body_bytes for e in log if e.status == 206)

    # The same stack with the files in models_dir: the split model as its parts, the others as they are.
    local = tmp_path / "models"
    (local / "big").mkdir(parents=True)
    for p in models.split:
        os.link(p, local / "big" / p.name)
    os.link(models.chat, local / "chat-f16.gguf")
    os.link(models.embed, local / "minilm-f16.gguf")
    mirror.clear_log()
    here = _cli(tmp_path, "plan", "--json", "--config", str(stack_file))
    assert here.returncode == 0, here.stderr
    local_plan = json.loads(here.stdout)
    assert _totals(local_plan) == _totals(remote_plan)
    assert {r["sized_from"] for r in local_plan["files"]} == {"local"}
    assert local_plan["downloads"]["bytes"] == 0
    assert mirror.log() == [], "nothing is read remotely when every file is local"
    # The split model sizes as the single file it was cut from.
    assert remote_plan["models"]["big"]["weights_mib"] == remote_plan["models"]["chat"]["weights_mib"]


def test_second_plan_reads_headers_from_the_cache(tmp_path: Path, mirror: HfMirror, models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models)
    assert _cli(tmp_path, "plan", "--config", str(stack_file)).returncode == 0
    mirror.clear_log()
    again = _cli(tmp_path, "plan", "--config", str(stack_file))
    assert again.returncode == 0, again.stderr
    log = mirror.log()
    # Pinned parts (a commit or a sha256) cost nothing; the unpinned embedder costs one HEAD (and its redirect).
    assert [e.method for e in log] == ["HEAD", "HEAD"]
    assert all(e.body_bytes == 0 for e in log)
    assert "from the cache" in again.stdout


def test_fetch_downloads_verifies_and_a_second_fetch_downloads_nothing(tmp_path: Path, mirror: HfMirror,
                                                                        models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models)
    first = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert first.returncode == 0, first.stderr
    placed = tmp_path / "models"
    assert sha256_of(placed / "chat-f16.gguf") == sha256_of(models.chat)
    assert sha256_of(placed / "minilm-f16.gguf") == sha256_of(models.embed)
    for p in models.split:
        assert sha256_of(placed / "big" / p.name) == sha256_of(p)
    assert f"record it as embeddings.source.sha256: {sha256_of(models.embed)}" in first.stdout
    assert "(100.0%" not in first.stderr and "100.0%" in first.stderr, "progress on stderr"
    assert not list((placed / ".lls-fetch").rglob("*.part")), "no partial file is left"
    mirror.clear_log()
    second = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert second.returncode == 0, second.stderr
    assert sum(e.body_bytes for e in mirror.log() if e.uri.startswith("/blobs/")) == 0
    assert second.stdout.count("already there and verified") == 5


def test_llama_server_loads_the_fetched_split_model(tmp_path: Path, mirror: HfMirror, models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models)
    assert _cli(tmp_path, "fetch", "--config", str(stack_file)).returncode == 0
    first_part = tmp_path / "models" / "big" / models.split[0].name
    with start_llama_server(first_part, cpu_args(ctx=256, parallel=1, ubatch=64),
                            log_path=tmp_path / "server.log") as server:
        out = server.post_json("/completion", {"prompt": "hello", "n_predict": 4})
        assert isinstance(out.get("content"), str)
    assert "split" in server.log_text() or "00003" in server.log_text()


def test_interrupted_download_resumes_and_serves_about_one_file(tmp_path: Path, models: Models) -> None:
    with running_mirror(tmp_path / "srv", _hub(models), blob_rate="15m") as mirror:
        stack_file = _stack(tmp_path, mirror, models)
        env = _env(tmp_path)
        partial = tmp_path / "models" / ".lls-fetch" / "minilm-f16.gguf.part"
        proc = subprocess.Popen([sys.executable, "-m", "stack", "fetch", "--quiet", "--config", str(stack_file)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        size = models.embed.stat().st_size
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size < size // 3):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        cut = partial.stat().st_size
        assert size // 3 <= cut < size, "killed mid-way"
        assert not (tmp_path / "models" / "minilm-f16.gguf").exists(), "no partial file under the final name"
        mirror.clear_log()
        resumed = _cli(tmp_path, "fetch", "--config", str(stack_file))
        assert resumed.returncode == 0, resumed.stderr
        assert f"resumed at {cut:,} bytes" in resumed.stdout
        assert sha256_of(tmp_path / "models" / "minilm-f16.gguf") == sha256_of(models.embed)
        blob = [e for e in mirror.log() if e.uri == f"/blobs/{sha256_of(models.embed)}" and e.method == "GET"]
        assert [e.range for e in blob] == [f"bytes={cut}-"]
        assert blob[0].body_bytes == size - cut


def test_a_wrong_sha256_for_a_hub_file_is_refused_before_any_download(tmp_path: Path, mirror: HfMirror,
                                                                       models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models, sha256="0" * 64)
    plan = _cli(tmp_path, "plan", "--config", str(stack_file))
    assert plan.returncode == 1
    assert "models.chat.source.sha256:" in plan.stderr and sha256_of(models.chat) in plan.stderr
    mirror.clear_log()
    out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 1 and "models.chat.source.sha256:" in out.stderr
    assert not (tmp_path / "models").exists(), "nothing downloaded, not even the other files"
    assert sum(e.body_bytes for e in mirror.log()) < 2 * MIB


def test_a_wrong_sha256_of_a_download_is_refused_naming_the_key_and_places_nothing(
        tmp_path: Path, mirror: HfMirror, models: Models) -> None:
    mirror.plain = {"chat-f16.gguf": models.chat, "minilm-f16.gguf": models.embed}
    mirror.reload()
    cfg = {"models_dir": str(tmp_path / "models"), "gpu": {"profile": "cpu"},
           "models": {"chat": {"file": "chat-f16.gguf", "ctx_size": 2048, "source": {
               "url": mirror.url("chat-f16.gguf"), "sha256": "0" * 64}}},
           "embeddings": {"file": "minilm-f16.gguf", "source": {
               "url": mirror.url("minilm-f16.gguf"), "sha256": sha256_of(models.embed)}}}
    stack_file = write_stack_file(tmp_path / "Pulumi.url.yaml", cfg)
    out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 1
    assert "models.chat.source:" in out.stderr and "0" * 64 in out.stderr and sha256_of(models.chat) in out.stderr
    assert not (tmp_path / "models" / "chat-f16.gguf").exists()
    assert not list((tmp_path / "models" / ".lls-fetch").rglob("chat-f16.gguf.part")), "a wrong file is not kept"
    assert sha256_of(tmp_path / "models" / "minilm-f16.gguf") == sha256_of(models.embed), "the others still arrive"


def test_a_server_publishing_another_sha256_is_refused(tmp_path: Path, models: Models) -> None:
    with running_mirror(tmp_path / "srv", _hub(models, linked_sha256="1" * 64)) as mirror:
        cfg = {"models_dir": str(tmp_path / "models"), "hf_endpoint": mirror.endpoint, "gpu": {"profile": "cpu"},
               "models": {"chat": {"file": "chat-f16.gguf", "ctx_size": 2048,
                                   "source": {"repo": "org/chat-GGUF", "revision": COMMIT}}}}
        stack_file = write_stack_file(tmp_path / "Pulumi.lie.yaml", cfg)
        out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 1
    assert "models.chat.source:" in out.stderr and "the server publishes" in out.stderr
    assert not (tmp_path / "models" / "chat-f16.gguf").exists()


def test_404_is_a_clear_error(tmp_path: Path, mirror: HfMirror, models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models, file="nope.gguf")
    plan = _cli(tmp_path, "plan", "--config", str(stack_file))
    assert "warning: models.chat.source:" in plan.stderr and "HTTP 404" in plan.stderr
    # No header, no arch block, no catalog entry for this fixture: the model cannot be sized, so plan refuses.
    assert plan.returncode == 1 and "models.chat.file: cannot size" in plan.stderr
    out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 1 and "HTTP 404" in out.stderr
    assert not (tmp_path / "models").exists()
    # With the model sized from its arch block, plan passes with the warning and fetch names the 404 itself.
    cfg = yaml.safe_load(stack_file.read_text())
    cfg["config"]["local-llm-stack:models"]["chat"]["arch"] = {
        "n_layer": 2, "n_embd": 64, "n_head": 4, "n_head_kv": 2, "head_dim": 16, "n_ff": 128, "n_vocab": 1000,
        "weights_mib": 0.7}
    stack_file.write_text(yaml.safe_dump(cfg))
    out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 1
    assert "models.chat.source: " in out.stderr and "HTTP 404" in out.stderr and "repo, revision and file" in out.stderr
    assert not (tmp_path / "models" / "chat-f16.gguf").exists()
    assert (tmp_path / "models" / "minilm-f16.gguf").exists()


def test_gated_file_needs_the_token_which_never_reaches_storage(tmp_path: Path, models: Models) -> None:
    with running_mirror(tmp_path / "srv", _hub(models, gated=True)) as mirror:
        stack_file = _stack(tmp_path, mirror, models)
        denied = _cli(tmp_path, "fetch", "--config", str(stack_file))
        assert denied.returncode == 1
        assert "models.chat.source:" in denied.stderr and "HTTP 401" in denied.stderr
        assert "hf_token" in denied.stderr and TOKEN not in denied.stderr + denied.stdout
        assert not (tmp_path / "models" / "chat-f16.gguf").exists()
        mirror.clear_log()
        ok = _cli(tmp_path, "fetch", "--config", str(stack_file), token=TOKEN)
        assert ok.returncode == 0, ok.stderr
        assert TOKEN not in ok.stderr + ok.stdout
        log = mirror.log()
    assert sha256_of(tmp_path / "models" / "chat-f16.gguf") == sha256_of(models.chat)
    assert any(e.auth and "/resolve/" in e.uri for e in log)
    assert not any(e.auth for e in log if e.host == "localhost"), "the token stays with the endpoint"


def test_a_stalled_server_is_a_clear_error_with_nothing_placed(tmp_path: Path, mirror: HfMirror,
                                                               models: Models) -> None:
    mirror.plain = {"chat-f16.gguf": models.chat}
    mirror.reload()
    cfg = {"models_dir": str(tmp_path / "models"), "gpu": {"profile": "cpu"},
           "models": {"chat": {"file": "chat-f16.gguf", "ctx_size": 2048, "source": {
               "url": mirror.url("chat-f16.gguf", slow=True), "sha256": sha256_of(models.chat)}}}}
    stack_file = write_stack_file(tmp_path / "Pulumi.stall.yaml", cfg)
    started = time.monotonic()
    out = _cli(tmp_path, "fetch", "--timeout", "2", "--config", str(stack_file))
    assert time.monotonic() - started < 30
    assert out.returncode == 1
    assert "models.chat.source:" in out.stderr and "stopped sending data" in out.stderr
    assert not (tmp_path / "models" / "chat-f16.gguf").exists()


def test_files_fetch_did_not_place_are_never_replaced(tmp_path: Path, mirror: HfMirror, models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models)
    placed = tmp_path / "models"
    placed.mkdir()
    (placed / "chat-f16.gguf").write_bytes(models.chat.read_bytes() + b"mine")
    (placed / "minilm-f16.gguf").write_bytes(models.chat.read_bytes())
    out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 1
    assert "models.chat.source:" in out.stderr and "fetch did not put it there, so it is left alone" in out.stderr
    assert (placed / "chat-f16.gguf").read_bytes().endswith(b"mine"), "a user's file is untouched"
    assert "embeddings.source: minilm-f16.gguf is already there (no sha256 declared: not checked)" in out.stdout
    assert (placed / "minilm-f16.gguf").read_bytes() == models.chat.read_bytes()


def test_a_changed_source_replaces_only_its_file(tmp_path: Path, models: Models) -> None:
    newer = tmp_path / "chat-newer.gguf"
    newer.write_bytes(models.chat.read_bytes() + bytes(64))
    commit2 = "f" * 40
    with running_mirror(tmp_path / "srv", [*_hub(models), HubFile("org/chat-GGUF", commit2, "chat-f16.gguf",
                                                                  newer)]) as mirror:
        stack_file = _stack(tmp_path, mirror, models)
        assert _cli(tmp_path, "fetch", "--config", str(stack_file)).returncode == 0
        embed_inode = (tmp_path / "models" / "minilm-f16.gguf").stat().st_ino
        stack_file = _stack(tmp_path, mirror, models, revision=commit2, sha256=sha256_of(newer))
        mirror.clear_log()
        out = _cli(tmp_path, "fetch", "--config", str(stack_file))
        assert out.returncode == 0, out.stderr
        fetched = [e.uri for e in mirror.log() if e.uri.startswith("/blobs/") and e.method == "GET"
                   and not e.range.startswith("bytes=0-1048575")]
    assert sha256_of(tmp_path / "models" / "chat-f16.gguf") == sha256_of(newer)
    assert fetched == [f"/blobs/{sha256_of(newer)}"], "only the changed file is downloaded"
    assert (tmp_path / "models" / "minilm-f16.gguf").stat().st_ino == embed_inode


def test_plan_offline_reads_nothing_remote(tmp_path: Path, mirror: HfMirror, models: Models) -> None:
    stack_file = _stack(tmp_path, mirror, models)
    out = _cli(tmp_path, "plan", "--offline", "--config", str(stack_file))
    assert "models.chat.file: cannot size" in out.stderr, "the fixture has no catalog entry"
    assert mirror.log() == []


def test_a_complete_partial_file_is_verified_and_placed_without_download(tmp_path: Path, mirror: HfMirror,
                                                                          models: Models) -> None:
    """A fetch that died between the last byte and the rename: the server answers 416 and nothing is resent."""
    mirror.plain = {"chat-f16.gguf": models.chat}
    mirror.reload()
    url = mirror.url("chat-f16.gguf")
    etag = subprocess.run(["curl", "-sI", url], capture_output=True, text=True, check=True).stdout
    etag = next(line.split(":", 1)[1].strip() for line in etag.splitlines() if line.lower().startswith("etag:"))
    state = tmp_path / "models" / ".lls-fetch"
    state.mkdir(parents=True)
    (state / "chat-f16.gguf.part").write_bytes(models.chat.read_bytes())
    size = models.chat.stat().st_size
    (state / "chat-f16.gguf.part.json").write_text(json.dumps({"url": url, "etag": etag, "size": size}))
    cfg = {"models_dir": str(tmp_path / "models"), "gpu": {"profile": "cpu"},
           "models": {"chat": {"file": "chat-f16.gguf", "ctx_size": 2048, "source": {
               "url": url, "sha256": sha256_of(models.chat)}}}}
    stack_file = write_stack_file(tmp_path / "Pulumi.done.yaml", cfg)
    mirror.clear_log()
    out = _cli(tmp_path, "fetch", "--config", str(stack_file))
    assert out.returncode == 0, out.stderr
    assert sha256_of(tmp_path / "models" / "chat-f16.gguf") == sha256_of(models.chat)
    gets = [e for e in mirror.log() if e.method == "GET" and e.range == f"bytes={size}-"]
    assert [(e.status, e.body_bytes) for e in gets] == [(416, gets[0].body_bytes)] and gets[0].body_bytes < 1024
