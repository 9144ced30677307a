"""A small HTTP client for the smoke suite whose every failure names the service it talked to.

Requests go from the machine that runs pytest straight to the endpoint URLs (stdlib `urllib`, proxies from
the environment ignored: the endpoints are your own host, usually through an ssh tunnel). Keys travel in
headers only, never on a command line.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

TUNNEL_HINT = (
    "if the ports are published on 127.0.0.1 of a remote host, open an ssh tunnel first "
    "(ssh -N -L PORT:127.0.0.1:PORT user@host for each port) or pass --endpoint-host"
)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-cased header names."""

    def text(self, limit: int = 600) -> str:
        return self.body[:limit].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Service:
    """One HTTP service of the deployment; `name` starts every failure message about it."""

    name: str
    url: str
    key: str | None = None
    timeout: float = 600.0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.url})"

    def fail(self, msg: str) -> NoReturn:
        raise AssertionError(f"{self.label}: {msg}")

    def check(self, ok: object, msg: str) -> None:
        if not ok:
            self.fail(msg)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        anonymous: bool = False,
        timeout: float | None = None,
    ) -> Response:
        """One request; `anonymous` sends no key, `key` overrides the service's own."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else {}
        token = None if anonymous else (key or self.key)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with _OPENER.open(req, timeout=timeout or self.timeout) as resp:
                return Response(resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()})
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read(), {k.lower(): v for k, v in (exc.headers or {}).items()})
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
        # Outside the except block: the message says it all, a chained urllib traceback would bury it.
        self.fail(f"{method} {path} got no HTTP answer ({reason}); {TUNNEL_HINT}")

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Response:
        r = self.request(method, path, body, **kw)
        self.check(r.status == 200, f"{method} {path} answered HTTP {r.status}, expected 200: {r.text()}")
        return r

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        r = self.ok(method, path, body, **kw)
        try:
            return json.loads(r.body)
        except ValueError:
            self.fail(f"{method} {path} answered 200 but not JSON: {r.text()}")

    def wait_healthy(self, path: str, timeout: float) -> Response:
        """GET `path` until 200: llama-server answers 503 while it loads, a restarting container refuses."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = self.request("GET", path, timeout=10)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            else:
                if r.status == 200:
                    return r
                if time.monotonic() > deadline:
                    self.fail(f"GET {path} still HTTP {r.status} after {timeout:.0f}s: {r.text()}")
            time.sleep(1.0)

    def stream(self, path: str, body: Mapping[str, Any]) -> tuple[Response, list[dict[str, Any]]]:
        """POST with `stream: true`; the server-sent `data:` events as JSON, checked to end with `[DONE]`."""
        r = self.ok("POST", path, {**body, "stream": True})
        ctype = r.headers.get("content-type", "")
        self.check("text/event-stream" in ctype, f"streamed {path} came back as {ctype!r}, not text/event-stream")
        events = list(_sse_data(r.body))
        self.check(events and events[-1] == "[DONE]", f"stream of {path} did not end with data: [DONE]")
        chunks: list[dict[str, Any]] = []
        for ev in events[:-1]:
            try:
                chunk = json.loads(ev)
            except ValueError:
                self.fail(f"stream of {path} carried a non-JSON event: {ev[:300]!r}")
            if "error" in chunk:
                self.fail(f"stream of {path} carried an error event: {ev[:300]}")
            chunks.append(chunk)
        return r, chunks


def _sse_data(body: bytes) -> Iterator[str]:
    """`data:` payloads of a server-sent-event stream; comments (`:` keep-alive pings) are skipped."""
    for block in body.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")]
        if data:
            yield "\n".join(data)
