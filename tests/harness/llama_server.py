"""Start a real ``llama-server`` on 127.0.0.1, wait for it, talk to it, stop it.

Only loopback addresses are used.  Every process is started in its own session
and :meth:`LlamaServer.stop` terminates the whole process group (SIGTERM, then
SIGKILL after a grace period), so a pytest finalizer can always clean up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.local import LOOPBACK, free_port
from stack.sizing.llama_log import LlamaLog, parse_llama_log
from tests.harness import binaries


@dataclass
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


def http_request(
    method: str, url: str, body: Any = None, *, timeout: float = 60.0, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """Small stdlib HTTP client: JSON body in, status/bytes out (no exception on 4xx/5xx)."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, resp.read(), dict(resp.headers))
    except urllib.error.HTTPError as e:
        return HttpResponse(e.code, e.read(), dict(e.headers or {}))


class LlamaServerError(RuntimeError):
    pass


@dataclass
class LlamaServer:
    """A running llama-server; ``log_path`` has its combined stdout/stderr."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    cmd: list[str]
    health_statuses: list[int] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def parsed_log(self) -> LlamaLog:
        return parse_llama_log(self.log_text())

    def get(self, path: str, *, timeout: float = 60.0) -> HttpResponse:
        return http_request("GET", self.base_url + path, timeout=timeout)

    def post(self, path: str, body: Any, *, timeout: float = 120.0) -> HttpResponse:
        return http_request("POST", self.base_url + path, body, timeout=timeout)

    def post_json(self, path: str, body: Any, *, timeout: float = 120.0) -> Any:
        r = self.post(path, body, timeout=timeout)
        if r.status != 200:
            raise LlamaServerError(f"POST {path} -> {r.status}: {r.body[:2000]!r}")
        return r.json()

    def token_id(self, text: str) -> int:
        """Id of ``text`` if it tokenizes to exactly one token (special tokens parsed)."""
        toks = self.post_json("/tokenize", {"content": text, "parse_special": True})["tokens"]
        if len(toks) != 1:
            raise LlamaServerError(f"{text!r} is {len(toks)} tokens: {toks}")
        return int(toks[0])

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds; returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _clean_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    # LLAMA_ARG_* / LLAMA_API_KEY in the caller's environment would silently change the
    # flags under test; start from the environment without them.
    env = {k: v for k, v in os.environ.items() if not (k.startswith("LLAMA_ARG_") or k == "LLAMA_API_KEY")}
    env.update(extra or {})
    return env


def start_llama_server(
    model: str | os.PathLike[str],
    args: Sequence[str],
    *,
    log_path: str | os.PathLike[str],
    host: str = LOOPBACK,
    port: int | None = None,
    verbosity: int = 4,
    startup_timeout: float = 180.0,
    env: Mapping[str, str] | None = None,
) -> LlamaServer:
    """Start llama-server and wait until ``GET /health`` is 200.

    ``verbosity`` 4 (``-lv 4``) is needed for the ``load_tensors`` / ``llama_kv_cache`` /
    ``sched_reserve`` lines: at the default 3 this build prints only server lines.
    While loading the server answers 503; a process that exits or a timeout raises
    :class:`LlamaServerError` with the log tail (and the process is stopped).
    """
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        raise ValueError("tests only bind llama-server to loopback")
    port = port or free_port(host)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(binaries.llama_server()),
        "-m", str(model),
        "--host", host,
        "--port", str(port),
        "-lv", str(verbosity),
        *args,
    ]
    with open(log_path, "wb") as logf:
        logf.write(("$ " + " ".join(cmd) + "\n").encode())
        logf.flush()
        proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_clean_env(env), start_new_session=True,
        )
    server = LlamaServer(proc=proc, host=host, port=port, log_path=log_path, cmd=cmd)
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if proc.poll() is not None:
                raise LlamaServerError(
                    f"llama-server exited with {proc.returncode} during startup; log tail:\n"
                    + "\n".join(server.log_text().splitlines()[-40:])
                )
            try:
                r = http_request("GET", server.base_url + "/health", timeout=5)
                server.health_statuses.append(r.status)
                if r.status == 200:
                    return server
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LlamaServerError(
                    f"llama-server not healthy after {startup_timeout}s; log tail:\n"
                    + "\n".join(server.log_text().splitlines()[-40:])
                )
            time.sleep(0.1)
    except BaseException:
        server.stop()
        raise


def cpu_args(
    *,
    ctx: int,
    parallel: int | None,
    ubatch: int,
    batch: int | None = None,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    flash_attn: str = "off",
    threads: int = 2,
    extra: Sequence[str] = (),
) -> list[str]:
    """Explicit CPU flags (``-ngl 0``, ``-c``, ``-np``, ``-ub``, ``-ctk/-ctv``, ``-fa``, ``--fit off``).

    ``parallel=None`` leaves ``-np`` out on purpose (server default: 4 slots, unified KV).
    """
    a = ["-ngl", "0", "-c", str(ctx), "-ub", str(ubatch), "-b", str(batch or max(ubatch, 512)),
         "-ctk", cache_type_k, "-ctv", cache_type_v, "-fa", flash_attn, "-t", str(threads), "--no-ui"]
    if parallel is not None:
        a += ["-np", str(parallel)]
    if binaries.llama_server_supports("--fit"):
        a += ["--fit", "off"]
    return [*a, *extra]
