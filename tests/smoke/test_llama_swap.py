"""llama-swap: lists exactly the model ids, aliases and embedding peer names the stack outputs say, swaps models on
demand (`/running` shows it) while the always-on embedding server stays up, and, with a matrix (`groups: auto`),
keeps loaded exactly what the sizing's sets allow.

Collected when the targets have a llama-swap endpoint: a real deployment, or CI's loopback deployment
(`tests/integration/test_smoke_loopback.py`), which runs the real llama-swap v250 on the rendered config.
"""

from __future__ import annotations

import json
from typing import Any

from tests.smoke.checks import EMBED_TEXTS, chat_body, check_chat_answer
from tests.smoke.client import Service
from tests.smoke.conftest import Deployment
from tests.smoke.targets import EMBEDDINGS, LLAMA_SWAP


def _listing(data: Any) -> dict[str, list[str]]:
    """`/v1/models` as record id → the aliases v250 puts in `meta.llamaswap.aliases` (aliases are records of their
    own only with `includeAliasesInList`, which the stack does not set)."""
    out: dict[str, list[str]] = {}
    for rec in data.get("data", []):
        meta = (rec.get("meta") or {}).get("llamaswap") or {}
        out[str(rec.get("id"))] = sorted(str(a) for a in meta.get("aliases") or ())
    return out


def test_llama_swap_lists_every_id_and_alias(deployment: Deployment) -> None:
    """Exactly the llama-swap models (each with its aliases) and the embedding names as llama-swap lists them,
    `embeddings/<name>` (the stack outputs' `models.embedding.llama_swap_ids`); nothing else."""
    svc = deployment.service(LLAMA_SWAP)
    t = deployment.targets
    expected = {m.id: sorted(m.aliases) for m in t.models.values()}
    if t.embedding is not None:
        expected |= {fqn: [] for fqn in t.embedding.llama_swap_ids}
    listed = _listing(svc.json("GET", "/v1/models"))
    svc.check(listed == expected, f"/v1/models lists {listed}, expected {expected} (id → aliases)")


def _running(svc: Service) -> dict[str, str]:
    return {str(e.get("model")): str(e.get("state")) for e in svc.json("GET", "/running").get("running", [])}


def _request(svc: Service, model: str) -> dict[str, str]:
    """A short chat with `model` through llama-swap; `/running` right after it."""
    r = svc.ok("POST", "/v1/chat/completions", chat_body(model, max_tokens=4))
    check_chat_answer(svc, json.loads(r.body), f"chat with {model!r}")
    return _running(svc)


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
        running = _request(svc, model)
        svc.check(running.get(model) == "ready", f"after a request to {model!r}, /running shows {running}")
    if not t.may_coexist(a, b):
        svc.check(a not in _running(svc), f"{a!r} and {b!r} never fit together, yet {a!r} is still running")
    if emb is not None and t.embedding is not None:
        r = emb.request("GET", "/health", timeout=5)
        emb.check(r.status == 200, f"after swapping {a!r} → {b!r}, GET /health answered {r.status} (reloading?)")
        emb.ok("POST", "/v1/embeddings", {"model": t.embedding.name, "input": EMBED_TEXTS[:1]}, timeout=30)


def test_matrix_keeps_what_the_sizing_allows(matrix_request_order: tuple[str, ...], deployment: Deployment) -> None:
    """With the matrix the sizing chose (`groups: auto`): after each request in turn, `/running` holds exactly the
    models llama-swap's matrix rule predicts from the sizing's sets: those sharing the cheapest set with the
    requested model stay loaded, every other one is evicted. Starts from nothing loaded (`GET /unload`)."""
    t = deployment.targets
    assert t.matrix is not None
    svc = deployment.service(LLAMA_SWAP)
    svc.ok("GET", "/unload")
    svc.check(_running(svc) == {}, f"after GET /unload, /running shows {_running(svc)}")
    loaded: frozenset[str] = frozenset()
    steps: list[str] = []
    for model in matrix_request_order:
        allowed = t.matrix.after_request(loaded, model)
        running = _request(svc, model)
        steps.append(f"{model} → {sorted(running)}")
        svc.check(
            any(running == dict.fromkeys(s, "ready") for s in allowed),
            f"after requests {' ; '.join(steps)}: expected exactly {' or '.join(str(sorted(s)) for s in allowed)} "
            f"ready (matrix sets {({k: sorted(v) for k, v in sorted(t.matrix.sets.items())})})",
        )
        loaded = frozenset(running)
        svc.check(not t.scenarios or any(loaded <= s for s in t.scenarios),
                  f"{sorted(loaded)} is loaded together, but no sizing scenario holds that set")
