"""`pulumi up` from an empty models directory: the declared sources are downloaded on the Docker host, by the real
Pulumi engine, before the containers that load them; the model server is a real nginx on 127.0.0.1 laid out as
Hugging Face (bench/hf_mirror.py), and what it sent is counted from its own access log.

The download containers reach nginx on the host's loopback with host networking (a source on 127.0.0.1 is, for
the stack, a mirror on the Docker host itself); the service containers stay on the stack's bridge network. One
stack, in file order, as a user's session:

1. preview plans one download per file, the downloader image and the usual resources, reading only headers;
2. up downloads both files (the chat model from a gated repository, with the `hf_token` secret), shows progress,
   places verified files, and the smoke suite passes on them;
3. a second up has nothing to do and nginx sends no byte of a model;
4. a new revision and sha256 of the chat model replaces its download and the llama-swap container only;
5. a wrong sha256 fails `up` naming the key, places nothing and changes no container; the next preview plans the
   retry, and the corrected digest downloads;
6. destroy keeps the downloaded models and says so; the token is nowhere in the state in plain text.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.hf_mirror import TOKEN, HfMirror, HubFile, nginx_binary, running_mirror, sha256_of
from stack.gguf import writers as gm
from stack.render.containers import EMBEDDINGS, LLAMA_SWAP
from tests.deploy.pulumi_project import PulumiFailed, PulumiProject, smoke_on_outputs
from tests.docker import support
from tests.docker.fixtures import image_of
from tests.docker.support import LITELLM as LITELLM_IMAGE
from tests.docker.support import LLAMA_SERVER
from tests.docker.support import LLAMA_SWAP as LLAMA_SWAP_IMAGE
from tests.harness import binaries
from tests.harness.loopback import free_ports, random_key

pytestmark = [pytest.mark.docker, pytest.mark.deploy]

STACK = "downloads-e2e"
COMMIT = "1f0e2d3c4b5a69788796a5b4c3d2e1f001122334"
COMMIT_2 = "2a1b0c9d8e7f60514233241506f7e8d9c0b1a2b3"
CHAT_FILE, EMB_FILE = "chat-f16.gguf", "minilm-f16.gguf"
DOWNLOAD = "pulumi-python:dynamic/local-llm-stack:ModelDownload"
CHAT_DL, EMB_DL = "local-llm-stack-model-chat-f16.gguf", "local-llm-stack-model-minilm-f16.gguf"
SWAP_CONTAINER = "local-llm-stack-llama-swap-container"


@dataclass
class Session:
    project: PulumiProject
    mirror: HfMirror
    network: str
    models_dir: Path
    secrets: dict[str, str]
    tmp: Path
    chat: Path
    chat_2: Path
    emb: Path
    timings: dict[str, float]
    served: dict[str, int]
    """Bytes of model files nginx sent, per step (printed at the end)."""

    def container(self, service: str) -> str:
        return f"{self.network}-{service}"

    def blob_bytes(self) -> int:
        """Bytes of model files nginx sent since the last `clear_log` (blobs and plain files, not redirects)."""
        return sum(e.body_bytes for e in self.mirror.log() if e.uri.startswith(("/blobs/", "/files/")))

    def smoke(self, label: str) -> None:
        smoke_on_outputs(self.project, self.tmp, self.secrets, label)


def python_image(local_images: dict[str, str]) -> str:
    """An image with Python for the downloads: the Debian python base the LiteLLM image is built on (a sixth of
    its size: each container costs a full copy on the engine's vfs storage), else the LiteLLM image itself."""
    tags = support.docker("image", "ls", "local/lls-rootfs", "--format", "{{.Tag}}").stdout.split()
    python = sorted(t for t in tags if t.startswith("python-"))
    return f"local/lls-rootfs:{python[-1]}" if python else image_of(local_images, LITELLM_IMAGE)


def _source(repo: str, revision: str, sha: str | None = None) -> dict[str, Any]:
    return {"repo": repo, "revision": revision, **({"sha256": sha} if sha else {})}


def _config(images: dict[str, str], s: Session) -> dict[str, Any]:
    swap, emb, lite = free_ports(3)
    start = free_ports(2, consecutive=True, exclude=[swap, emb, lite])[0]
    return {
        "gpu": {"profile": "cpu"},
        "models_dir": str(s.models_dir),
        "hf_endpoint": s.mirror.endpoint,
        "network": {"name": s.network},
        "ports": {"llama_swap": swap, "embeddings": emb, "litellm": lite},
        "images": {
            "llama_swap": image_of(images, LLAMA_SWAP_IMAGE),
            "llama_server": image_of(images, LLAMA_SERVER),
            "litellm": image_of(images, LITELLM_IMAGE),
            "downloader": python_image(images),
        },
        "llama_swap": {"start_port": start, "health_check_timeout": 120},
        "models": {
            "chat": {"file": CHAT_FILE, "ctx_size": 2048, "aliases": ["chatbot"], "jinja": True,
                     "source": _source("org/chat-GGUF", COMMIT, sha256_of(s.chat))},
            "helper": {"file": CHAT_FILE, "ctx_size": 1024, "aliases": ["classify"],
                       "source": _source("org/chat-GGUF", COMMIT, sha256_of(s.chat))},
        },
        "groups": {"main": {"swap": True, "exclusive": True, "members": ["chat", "helper"]}},
        "embeddings": {"name": "minilm", "aliases": ["embed-small"], "file": EMB_FILE, "ctx_size": 512,
                       "ubatch": 512, "batch": 512, "pooling": "mean", "source": _source("org/embed-GGUF", "main")},
        "litellm": {"enabled": False, "num_retries": 0},
    }


@pytest.fixture(scope="module")
def session(local_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    binaries.require(binaries.pulumi)
    if nginx_binary() is None:
        pytest.fail("nginx is missing: run scripts/install-tools.sh (installs Debian's nginx)")
    tmp = tmp_path_factory.mktemp("pulumi-downloads")
    chat, _ = gm.chat_model()
    chat_2, _ = gm.chat_model(gm.ChatModelSpec(seed=7))
    emb, _ = gm.minilm_model()
    hub = [
        HubFile("org/chat-GGUF", COMMIT, CHAT_FILE, chat, gated=True),
        HubFile("org/chat-GGUF", COMMIT_2, CHAT_FILE, chat_2, gated=True),
        HubFile("org/embed-GGUF", "main", EMB_FILE, emb),
    ]
    models_dir = tmp / "models"
    models_dir.mkdir()
    network = f"lls-dl-{uuid.uuid4().hex[:6]}"
    secrets = {"api_key": random_key(), "litellm_master_key": random_key(), "hf_token": TOKEN}
    with running_mirror(tmp / "srv", hub, plain={"chat.gguf": chat}) as mirror:
        project = PulumiProject(tmp / "project", STACK, extra_env={
            "LLS_OFFLINE": "0", "HF_TOKEN": "", "XDG_CACHE_HOME": str(tmp / "cache")})
        project.workdir.mkdir()
        s = Session(project, mirror, network, models_dir, secrets, tmp, chat, chat_2, emb, {}, {})
        project.create(_config(local_images, s), secrets)
        try:
            yield s
        finally:
            with contextlib.suppress(Exception):
                project.destroy()
            for service in (LLAMA_SWAP, EMBEDDINGS):
                support.remove_container(s.container(service))
            for slug in ("chat-f16.gguf", "minilm-f16.gguf"):
                support.remove_container(f"{network}-download-{slug}")
            support.docker("network", "rm", network, check=False)
            times = json.dumps({k: round(v, 1) for k, v in s.timings.items()})
            print(f"\npulumi downloads e2e wall times (s): {times}; model bytes served: {json.dumps(s.served)}")


def _changed(out: Any) -> dict[str, str]:
    """The resources a step changes; the dynamic provider's own config update (it gets the stack's config, which
    changed) touches nothing."""
    providers = {s.name for s in out.steps if s.type.startswith("pulumi:providers:")}
    return {name: op for name, op in out.changed().items() if name not in providers}


def _downloads(out: Any) -> dict[str, str]:
    names = {s.name for s in out.steps if s.type == DOWNLOAD}
    return {name: op for name, op in out.changed().items() if name in names}


def test_1_preview_plans_a_download_per_file_reading_only_headers(session: Session) -> None:
    out = session.project.preview()
    session.timings["preview"] = out.seconds
    session.served["preview (all bytes, headers)"] = sum(e.bytes_sent for e in session.mirror.log())
    assert _downloads(out) == {CHAT_DL: "create", EMB_DL: "create"}
    assert out.summary.get("create") == 13, out.summary  # 10 as without sources, 2 downloads, the downloader image
    # The Automation API's diff display leaves out the program's messages; the CLI, as a user runs it, shows them.
    cli = session.project.cli("preview")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert f"models.chat.source: {CHAT_FILE} is not in models_dir yet: pulumi up downloads it" in cli.stdout, cli.stdout
    log = session.mirror.log()
    assert sum(e.bytes_sent for e in log) < 4 << 20, "preview read more than headers"
    assert not any(p.name.endswith(".gguf") for p in session.models_dir.rglob("*"))


def test_2_up_downloads_then_deploys_and_the_smoke_suite_passes(session: Session) -> None:
    session.mirror.clear_log()
    out = session.project.up()
    session.timings["first up"] = out.seconds
    assert out.summary.get("create") == 13, out.summary
    served = session.served["first up"] = session.blob_bytes()
    sizes = session.chat.stat().st_size + session.emb.stat().st_size
    assert sizes <= served < sizes + (4 << 20), f"served {served:,} bytes for {sizes:,} bytes of models"
    assert not any(e.auth for e in session.mirror.log() if e.host == "localhost"), "token sent past the redirect"
    assert sha256_of(session.models_dir / CHAT_FILE) == sha256_of(session.chat)
    assert sha256_of(session.models_dir / EMB_FILE) == sha256_of(session.emb)
    assert "100.0%" in out.output and "minilm-f16.gguf downloaded" in out.output, out.output[-3000:]
    assert TOKEN not in out.output
    for service in (LLAMA_SWAP, EMBEDDINGS):
        state = support.container_state(session.container(service))
        assert state["Running"] and state.get("Health", {}).get("Status") == "healthy", (service, state)
    left = support.docker("ps", "-a", "--filter", "label=local-llm-stack.service=download", "-q").stdout.split()
    assert left == [], "a download container was left behind"
    session.smoke("first-up")


def test_3_second_up_downloads_nothing(session: Session) -> None:
    session.mirror.clear_log()
    assert session.project.preview(expect_no_changes=True).changed() == {}
    up = session.project.up()
    assert up.changed() == {}, up.output[-3000:]
    session.served["second preview and up"] = session.blob_bytes()
    assert session.blob_bytes() == 0


def test_4_new_revision_replaces_only_its_download_and_the_container_that_loads_it(session: Session) -> None:
    digest = sha256_of(session.chat_2)
    for model in ("chat", "helper"):
        session.project.set_value("models", model, "source", value=_source("org/chat-GGUF", COMMIT_2, digest))
    out = session.project.preview()
    assert _changed(out) == {CHAT_DL: "replace", SWAP_CONTAINER: "replace"}, out.changed()
    before = support.container_state(session.container(EMBEDDINGS))["StartedAt"]
    session.mirror.clear_log()
    up = session.project.up()
    assert _changed(up) == {CHAT_DL: "replace", SWAP_CONTAINER: "replace"}, up.changed()
    session.served["new revision"] = session.blob_bytes()
    assert session.blob_bytes() == session.chat_2.stat().st_size
    assert sha256_of(session.models_dir / CHAT_FILE) == digest
    assert support.container_state(session.container(EMBEDDINGS))["StartedAt"] == before
    support.wait_healthy(session.container(LLAMA_SWAP), 120)


def test_5_wrong_sha256_places_nothing_and_changes_no_container(session: Session) -> None:
    url = session.mirror.url("chat.gguf")
    wrong = "0" * 64
    for model in ("chat", "helper"):
        session.project.set_value("models", model, "source", value={"url": url, "sha256": wrong})
    swap_started = support.container_state(session.container(LLAMA_SWAP))["StartedAt"]
    with pytest.raises(PulumiFailed) as failed:
        session.project.up()
    text = failed.value.output + failed.value.error
    assert "models.chat.source" in text and wrong in text, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert sha256_of(session.models_dir / CHAT_FILE) == sha256_of(session.chat_2), "the verified file was replaced"
    assert not list((session.models_dir / ".lls-fetch").glob("*.part")), "a partial file was kept after a mismatch"
    assert support.container_state(session.container(LLAMA_SWAP))["StartedAt"] == swap_started
    retry = session.project.preview()
    ops = {s.op for s in retry.steps if s.name == CHAT_DL}
    assert _downloads(retry) == {CHAT_DL: "replace"} and "create-replacement" in ops, ops
    for model in ("chat", "helper"):
        session.project.set_value("models", model, "source", value={"url": url, "sha256": sha256_of(session.chat)})
    session.mirror.clear_log()
    up = session.project.up()
    assert _changed(up) == {CHAT_DL: "replace", SWAP_CONTAINER: "replace"}, up.changed()
    assert session.blob_bytes() == session.chat.stat().st_size
    assert session.project.preview(expect_no_changes=True).changed() == {}


def test_6_destroy_keeps_the_models_and_the_token_stays_secret(session: Session) -> None:
    export = json.dumps(session.project.export())
    assert TOKEN not in export, "hf_token in plain text in pulumi stack export"
    out = session.project.destroy()
    session.timings["destroy"] = out.seconds
    assert "stays in models_dir" in out.output, out.output[-3000:]
    assert (session.models_dir / CHAT_FILE).is_file() and (session.models_dir / EMB_FILE).is_file()
    assert TOKEN not in out.output
    with contextlib.suppress(OSError):
        shutil.rmtree(session.models_dir / ".lls-fetch")
