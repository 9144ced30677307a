"""llama-swap: lists every model id and alias (and the embedding names it forwards), swaps models on demand
(`/running` shows it) while the always-on embedding server stays up.

Collected only when the targets have a llama-swap endpoint, i.e. on a real deployment: llama-swap cannot be
installed on the machine that runs this project's CI, so these checks have never run there.
"""

from __future__ import annotations

import json
from typing import Any

from tests.smoke.checks import EMBED_TEXTS, chat_body, check_chat_answer
from tests.smoke.client import Service
from tests.smoke.conftest import Deployment
from tests.smoke.targets import EMBEDDINGS, LLAMA_SWAP


def _listed(data: Any) -> set[str]:
    """Ids of `/v1/models`, plus the aliases each record carries (`meta.llamaswap.aliases` in v250; aliases are
    records of their own only with `includeAliasesInList`)."""
    names: set[str] = set()
    for rec in data.get("data", []):
        names.add(str(rec.get("id")))
        meta = (rec.get("meta") or {}).get("llamaswap") or {}
        names.update(str(a) for a in meta.get("aliases") or ())
        names.update(str(a) for a in rec.get("aliases") or ())
    return names


def test_llama_swap_lists_every_id_and_alias(deployment: Deployment) -> None:
    svc = deployment.service(LLAMA_SWAP)
    t = deployment.targets
    expected = {name for m in t.models.values() for name in (m.id, *m.aliases)}
    if t.embedding is not None:
        expected |= set(t.embedding.names)
    listed = _listed(svc.json("GET", "/v1/models"))
    svc.check(expected <= listed, f"/v1/models lacks {sorted(expected - listed)} (lists {sorted(listed)})")


def _running(svc: Service) -> dict[str, str]:
    return {str(e.get("model")): str(e.get("state")) for e in svc.json("GET", "/running").get("running", [])}


def test_swap_keeps_embedder_loaded(swap_pair: tuple[str, str], deployment: Deployment) -> None:
    """A request to model A, then to model B: B is loaded (`ready` in `/running`), A is evicted when the sizing
    never lets the two coexist, and the embedding server (its own container, beside llama-swap) still answers
    `/health` with 200 at once and serves an embedding: a swap that pushed it out of VRAM would show here."""
    a, b = swap_pair
    t = deployment.targets
    svc = deployment.service(LLAMA_SWAP)
    emb = deployment.service(EMBEDDINGS) if EMBEDDINGS in t.endpoints and t.embedding else None
    if emb is not None:
        emb.wait_healthy("/health", deployment.ready_timeout)
    for model in (a, b):
        r = svc.ok("POST", "/v1/chat/completions", chat_body(model, max_tokens=4))
        check_chat_answer(svc, json.loads(r.body), f"chat with {model!r}")
        running = _running(svc)
        svc.check(running.get(model) == "ready", f"after a request to {model!r}, /running shows {running}")
    if not t.may_coexist(a, b):
        svc.check(a not in _running(svc), f"{a!r} and {b!r} never fit together, yet {a!r} is still running")
    if emb is not None and t.embedding is not None:
        r = emb.request("GET", "/health", timeout=5)
        emb.check(r.status == 200, f"after swapping {a!r} → {b!r}, GET /health answered {r.status} (reloading?)")
        emb.ok("POST", "/v1/embeddings", {"model": t.embedding.name, "input": EMBED_TEXTS[:1]}, timeout=30)
