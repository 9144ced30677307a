"""Every service is up: its published port listens on the host, its health path answers, and it refuses
requests without a key where the deployment configured one."""

from __future__ import annotations

import json
from typing import Any

from tests.smoke.conftest import Deployment
from tests.smoke.targets import EMBEDDINGS, LITELLM, LLAMA_SWAP, Targets


def test_published_port_listens(host: Any, published_service: str, targets: Targets) -> None:
    """On the host itself (testinfra `host.socket`, needs `ss` or `netstat` there). With Docker's userland
    proxy this proves the port is published, not that the service answers: the HTTP checks do that."""
    address, port = targets.published(published_service)
    spec = f"tcp://{address}:{port}"
    where = host.backend.get_pytest_id()
    assert host.socket(spec).is_listening, f"{published_service}: nothing listens on {spec} of {where}"


def test_health(health_service: str, deployment: Deployment) -> None:
    svc = deployment.service(health_service, need_key=False)
    path = deployment.health_path(health_service)
    r = svc.wait_healthy(path, deployment.ready_timeout)
    body = r.body.decode("utf-8", errors="replace").strip()
    if health_service == LLAMA_SWAP:
        svc.check(body == "OK", f"GET {path} answered {body[:200]!r}, expected OK")
    elif health_service == LITELLM:
        svc.check("alive" in body, f"GET {path} answered {body[:200]!r}, expected \"I'm alive!\"")
    else:
        try:
            status = json.loads(body).get("status")
        except (ValueError, AttributeError):
            status = None
        svc.check(status == "ok", f"GET {path} answered {body[:200]!r}, expected {{\"status\": \"ok\"}}")


def _protected_requests(service: str, targets: Targets) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Requests that must need the key; none of them would load a model when refused."""
    model = next(iter(targets.models), "none")
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    if service == EMBEDDINGS:
        name = targets.embedding.name if targets.embedding else "embed"
        return [("POST", "/v1/embeddings", {"model": name, "input": ["hi"]})]
    return [("GET", "/v1/models", None), ("POST", "/v1/chat/completions", chat)]


def test_requests_without_key_are_refused(keyed_service: str, deployment: Deployment) -> None:
    svc = deployment.service(keyed_service)
    for method, path, body in _protected_requests(keyed_service, deployment.targets):
        for how, kw in (("without a key", {"anonymous": True}), ("with a wrong key", {"key": "sk-not-the-key-0"})):
            r = svc.request(method, path, body, **kw)
            svc.check(r.status >= 400, f"{method} {path} {how} answered HTTP {r.status}; it must be refused")
    # The same request with the key is accepted, so the refusals above were about the key.
    method, path, body = _protected_requests(keyed_service, deployment.targets)[0]
    svc.ok(method, path, body)
