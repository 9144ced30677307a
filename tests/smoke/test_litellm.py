"""LiteLLM lists every public name and routes each local one to its own model, not to a cloud fallback.

Collected only when the targets have a LiteLLM endpoint."""

from __future__ import annotations

from tests.smoke.checks import chat_body, check_litellm_route
from tests.smoke.conftest import Deployment
from tests.smoke.targets import LITELLM, LLAMA_SWAP


def test_litellm_lists_every_public_name(deployment: Deployment) -> None:
    svc = deployment.service(LITELLM)
    names = deployment.targets.litellm
    assert names is not None
    listed = {str(d.get("id")) for d in svc.json("GET", "/v1/models").get("data", [])}
    expected = {*names.chat, *names.embedding, *names.cloud}
    svc.check(expected <= listed, f"/v1/models lacks {sorted(expected - listed)} (lists {sorted(listed)})")


def test_litellm_routes_public_name(litellm_chat_name: str, deployment: Deployment) -> None:
    """The answer comes from the name's own deployment group without a fallback; behind it, the right model
    serves it: llama-swap's `/running` shows that model ready."""
    t = deployment.targets
    svc = deployment.service(LITELLM)
    r = svc.ok("POST", "/v1/chat/completions", chat_body(litellm_chat_name, max_tokens=4))
    check_litellm_route(svc, r, litellm_chat_name)
    model_id = t.model_of(litellm_chat_name)
    svc.check(model_id is not None, f"{litellm_chat_name!r} is no llama-swap model id or alias in the targets")
    if LLAMA_SWAP in t.endpoints:
        swap = deployment.service(LLAMA_SWAP)
        running = {e.get("model"): e.get("state") for e in swap.json("GET", "/running").get("running", [])}
        swap.check(running.get(model_id) == "ready",
                   f"after LiteLLM served {litellm_chat_name!r}, /running shows {running}, not {model_id!r} ready")
