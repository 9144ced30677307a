"""A small HTTP client for model sources: redirects followed by hand, keep-alive, timeouts, byte counts.

Written on `http.client` rather than urllib so that what crosses the wire is decided here: the Hugging Face token
goes only to the endpoint it belongs to (never to the storage host a `resolve` URL redirects to, which gets a
signed URL instead), a redirect never downgrades https to http off loopback, the headers of the first hop
(`X-Linked-Size`, `X-Linked-Etag`, `X-Repo-Commit`) are kept, and every request and body byte is counted.
"""

from __future__ import annotations

import http.client
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from urllib.parse import urljoin, urlsplit

from stack.fetch.remote_part import RemotePart, is_loopback_host

MAX_REDIRECTS = 10
DEFAULT_TIMEOUT_S = 30.0
USER_AGENT = "local-llm-stack"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
"""A 416's Content-Range: the range asked for starts at or past the end; the number is the file's size."""
_SHA256_ETAG = re.compile(r'^(?:W/)?"?([0-9a-f]{64})"?$')


class HttpError(OSError):
    """A request that did not get the answer it needed; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


def http_failure(part: RemotePart, exc: HttpError, token_given: bool) -> str:
    """What went wrong and what to do about it, without the token or a signed URL's query string."""
    where = redacted(part.url)
    if exc.status == 401 or exc.status == 403:
        fix = ("the token was refused or has no access to this repository: check the hf_token secret "
               "(or HF_TOKEN) and that you accepted the model's terms") if token_given else (
            "the repository needs a token: pulumi config set --secret hf_token <token> (python -m stack fetch and "
            "plan also read HF_TOKEN)")
        return f"{where}: HTTP {exc.status}; {fix}"
    if exc.status == 404:
        what = "repo, revision and file" if part.hf else "url"
        return f"{where}: HTTP 404, nothing there; check the source's {what}"
    if exc.status is not None:
        return f"{where}: HTTP {exc.status}; {exc}"
    return f"{exc}"


def origin(url: str) -> tuple[str, str, int]:
    u = urlsplit(url)
    default = 443 if u.scheme == "https" else 80
    return u.scheme, (u.hostname or "").lower(), u.port or default


def redacted(url: str) -> str:
    """A URL fit for a message: no query string (signed storage URLs carry credentials there)."""
    u = urlsplit(url)
    return u._replace(query="", fragment="").geturl() + ("?…" if u.query else "")


@dataclass
class Response:
    status: int
    headers: Message
    url: str
    """The URL that answered, after redirects."""
    first: Message
    """Headers of the first response (a Hugging Face `resolve` redirect carries the file's size and sha256)."""
    raw: http.client.HTTPResponse
    client: HttpClient

    def header(self, name: str) -> str | None:
        for headers in (self.headers, self.first):
            value = headers.get(name)
            if value is not None:
                return str(value)
        return None

    @property
    def content_range(self) -> tuple[int, int, int | None] | None:
        m = _CONTENT_RANGE.fullmatch(self.headers.get("Content-Range", "").strip())
        if m is None:
            return None
        return int(m.group(1)), int(m.group(2)), None if m.group(3) == "*" else int(m.group(3))

    @property
    def total_size(self) -> int | None:
        """The whole file's size: the linked size, the Content-Range total, or a full response's length."""
        linked = self.first.get("X-Linked-Size") or self.headers.get("X-Linked-Size")
        if linked and str(linked).isdigit():
            return int(linked)
        cr = self.content_range
        if cr is not None and cr[2] is not None:
            return cr[2]
        unsatisfied = _UNSATISFIED_RANGE.fullmatch(self.headers.get("Content-Range", "").strip())
        if self.status == 416 and unsatisfied:
            return int(unsatisfied.group(1))
        length = self.headers.get("Content-Length")
        if self.status == 200 and length and str(length).isdigit():
            return int(length)
        return None

    @property
    def etag(self) -> str | None:
        """The storage's ETag of what was served (what `If-Range` must quote back)."""
        value = self.headers.get("ETag")
        return str(value) if value else None

    @property
    def linked_sha256(self) -> str | None:
        """The file's sha256 as Hugging Face publishes it (`X-Linked-Etag` of an LFS file), if it looks like one."""
        for name in ("X-Linked-Etag", "X-Linked-ETag"):
            value = self.first.get(name) or self.headers.get(name)
            if value:
                m = _SHA256_ETAG.match(str(value).strip())
                if m:
                    return m.group(1)
        return None

    @property
    def commit(self) -> str | None:
        value = self.first.get("X-Repo-Commit")
        return str(value) if value else None

    def read(self, n: int) -> bytes:
        try:
            data = self.raw.read(n)
        except TimeoutError:
            self.client.drop(self.url)
            raise HttpError(f"{redacted(self.url)} stopped sending data for {self.client.timeout:g} s",
                            url=self.url) from None
        except (OSError, http.client.HTTPException) as exc:
            self.client.drop(self.url)
            raise HttpError(f"{redacted(self.url)}: connection lost ({exc.__class__.__name__}: {exc})",
                            url=self.url) from None
        self.client.bytes_read += len(data)
        return data

    def close(self) -> None:
        """Keeps the connection when the body was read to its end; drops it otherwise."""
        if not self.raw.isclosed():
            self.client.drop(self.url)


@dataclass
class HttpClient:
    token: str | None = None
    token_origin: tuple[str, str, int] | None = None
    """Where the token may be sent: the `hf_endpoint`'s scheme, host and port, and nowhere else."""
    timeout: float = DEFAULT_TIMEOUT_S
    requests: int = 0
    bytes_read: int = 0
    _conns: dict[tuple[str, str, int], http.client.HTTPConnection] = field(default_factory=dict)
    unreachable: dict[tuple[str, str, int], str] = field(default_factory=dict)
    """Origins that could not be connected to in this run: later requests fail at once instead of waiting again."""

    def _conn(self, url: str) -> http.client.HTTPConnection:
        key = origin(url)
        conn = self._conns.get(key)
        if conn is None:
            scheme, host, port = key
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout,
                                                   context=ssl.create_default_context())
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._conns[key] = conn
        return conn

    def drop(self, url: str) -> None:
        conn = self._conns.pop(origin(url), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _send(self, method: str, url: str, headers: Mapping[str, str]) -> http.client.HTTPResponse:
        u = urlsplit(url)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        hdrs = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if self.token and self.token_origin == origin(url):
            hdrs["Authorization"] = f"Bearer {self.token}"
        if origin(url) in self.unreachable:
            raise HttpError(self.unreachable[origin(url)], url=url)
        for attempt in (1, 2):
            conn = self._conn(url)
            try:
                conn.request(method, path, headers=hdrs)
                self.requests += 1
                return conn.getresponse()
            except TimeoutError:
                connected = conn.sock is not None
                self.drop(url)
                if not connected:
                    message = f"cannot connect to {u.scheme}://{u.netloc} within {self.timeout:g} s"
                    self.unreachable[origin(url)] = message
                    raise HttpError(message, url=url) from None
                raise HttpError(f"{redacted(url)} did not answer within {self.timeout:g} s", url=url) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: one fresh try.
                self.drop(url)
                if attempt == 2:
                    raise HttpError(f"{redacted(url)}: the server closed the connection", url=url) from None
            except ssl.SSLError as exc:
                self.drop(url)
                raise HttpError(f"{redacted(url)}: TLS failed ({exc.reason or exc})", url=url) from None
            except OSError as exc:
                connected = conn.sock is not None
                self.drop(url)
                reason = exc.strerror or str(exc) or exc.__class__.__name__
                message = f"cannot connect to {u.scheme}://{u.netloc}: {reason}"
                if not connected:
                    self.unreachable[origin(url)] = message
                raise HttpError(message, url=url) from None
        raise AssertionError("unreachable")

    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """Send `method` and follow redirects; the caller reads the body and closes the response."""
        first: Message | None = None
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            raw = self._send(method, current, headers or {})
            if first is None:
                first = raw.headers
            if raw.status in (301, 302, 303, 307, 308) and raw.getheader("Location"):
                raw.read()
                target = urljoin(current, raw.getheader("Location", ""))
                scheme, host, _ = origin(target)
                if scheme not in ("http", "https") or (
                    scheme == "http" and origin(current)[0] == "https" and not is_loopback_host(host)
                ):
                    raise HttpError(f"{redacted(current)} redirects to {redacted(target)}, which is not https; "
                                    "refused", raw.status, current)
                current = target
                continue
            return Response(raw.status, raw.headers, current, first, raw, self)
        raise HttpError(f"{redacted(url)}: more than {MAX_REDIRECTS} redirects", url=url)
