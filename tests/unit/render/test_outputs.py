"""The stack outputs the smoke suite reads: every name each service answers to, and where a key is required."""

from __future__ import annotations

from stack.render.llama_swap import EMBEDDING_PEER, render_llama_swap_config
from stack.render.outputs import embedding_answers, peer_model_ids
from tests.unit.render_samples import ALL_SECRETS, config, deployment


def test_model_outputs_name_every_model_alias_and_public_name() -> None:
    """The embedder's dimension is the catalog's n_embd of nomic-embed-text-v1.5 (768)."""
    assert deployment().outputs(None)["models"] == {
        "llama_swap": {
            "chat": {"aliases": ["chatbot"], "tools": True},
            "small": {"aliases": ["classify", "tiny"], "tools": False},
        },
        "embedding": {
            "name": "embed",
            "aliases": ["text-embedding"],
            "dimension": 768,
            "llama_swap_ids": ["embeddings/embed", "embeddings/text-embedding"],
        },
        "litellm": {
            "chat": ["chat", "chatbot", "classify", "small", "tiny"],
            "embedding": ["embed", "text-embedding"],
            "cloud": ["cloud-chat"],
        },
    }


def test_llama_swap_ids_of_the_embedder_are_its_peer_names() -> None:
    """llama-swap v250 lists a peer's models as `<peer id>/<name>` (config.PeerModelFQN): the peer id is the one the
    rendered config uses, and every name the peer forwards is there once."""
    cfg = config()
    assert peer_model_ids(["b", "a"]) == [f"{EMBEDDING_PEER}/a", f"{EMBEDDING_PEER}/b"]
    ids = deployment(cfg).outputs(None)["models"]["embedding"]["llama_swap_ids"]
    assert embedding_answers(cfg, None)["llama_swap_ids"] == ids
    text = render_llama_swap_config(cfg, api_key_enabled=False)
    assert f"peers:\n  {EMBEDDING_PEER}:\n" in text
    assert ids == [f"{EMBEDDING_PEER}/{n}" for n in ("embed", "text-embedding")]


def test_no_embedding_no_litellm() -> None:
    out = deployment(embeddings=None, litellm=None).outputs(None)["models"]
    assert out["embedding"] is None and out["litellm"] is None
    assert set(out["llama_swap"]) == {"chat", "small"}


def test_auth_outputs_follow_the_api_key() -> None:
    assert deployment().outputs(None)["auth_required"] == {"llama-swap": True, "embeddings": True, "litellm": True}
    no_key = deployment(embeddings=None, litellm=None, secret_keys=ALL_SECRETS - {"api_key"})
    assert no_key.outputs(None)["auth_required"] == {"llama-swap": False}
