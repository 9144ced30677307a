"""`stack.render.downloads`: one download per sourced file, with the services that load it and how it is reached."""

from __future__ import annotations

from typing import Any

from stack.render.containers import EMBEDDINGS, LLAMA_SWAP
from stack.render.downloads import download_specs
from tests.unit.helpers import stack

SHA_A, SHA_B = "a" * 64, "b" * 64


def _sourced() -> Any:
    return stack(
        hf_endpoint="http://127.0.0.1:8999",
        models={
            "chat": {"file": "chat.gguf", "ctx_size": 2048,
                     "source": {"repo": "org/chat", "revision": "main", "sha256": SHA_A},
                     "draft": {"file": "draft.gguf", "source": {"repo": "org/draft", "revision": "main"}}},
            "helper": {"file": "chat.gguf", "ctx_size": 1024,
                       "source": {"repo": "org/chat", "revision": "main", "sha256": SHA_A}},
            "big": {"file": "big/m-00001-of-00002.gguf", "ctx_size": 1024,
                    "source": {"url": "https://example.org/m-00001-of-00002.gguf", "sha256": [SHA_A, SHA_B]}},
            "local": {"file": "mine.gguf", "ctx_size": 1024},
        },
        embeddings={"file": "emb.gguf", "source": {"repo": "org/emb", "revision": "main"}},
    )


def test_one_download_per_sourced_file_with_the_services_that_load_it() -> None:
    specs = {s.file: s for s in download_specs(_sourced())}
    assert list(specs) == ["chat.gguf", "draft.gguf", "big/m-00001-of-00002.gguf", "emb.gguf"]
    assert specs["chat.gguf"].services == {LLAMA_SWAP} and specs["chat.gguf"].key == "models.chat.source"
    assert specs["emb.gguf"].services == {EMBEDDINGS}
    big = specs["big/m-00001-of-00002.gguf"]
    assert [p.local for p in big.parts] == ["big/m-00001-of-00002.gguf", "big/m-00002-of-00002.gguf"]
    assert [p.sha256 for p in big.parts] == [SHA_A, SHA_B]
    assert big.slug.startswith("big-m-00001-of-00002.gguf-") and "/" not in big.slug
    assert specs["chat.gguf"].slug == "chat.gguf"
    assert specs["chat.gguf"].network_mode == "host", "a loopback mirror is on the Docker host: host networking"
    assert big.network_mode == "bridge"
