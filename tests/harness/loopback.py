"""A loopback deployment of a stack: the rendered configs run by the real programs on 127.0.0.1.

What runs is what the containers would run. The config to render is `stack.sizing.plan.build_plan`'s (with
`groups: auto` it carries the matrix), with free loopback ports put into `ports` and `llama_swap.start_port`;
the files, argv and environments come from `stack.render.containers` rendered with local `RenderPaths`
(the real `llama-swap` and `llama-server` binaries, the fixture models directory, 127.0.0.1), so nothing is
string-patched:

* the **embedding server** runs its container's entrypoint (`embedding_argv`) with the container's
  environment (`LLAMA_API_KEY` when the `api_key` secret is set); ready when `/health` answers 200;
* **llama-swap** (v250, built from source: `binaries.llama_swap()`) runs its container's entrypoint
  (`llama-swap -config <rendered file> -listen 127.0.0.1:<port>`) with the container's environment
  (`LLAMA_SWAP_API_KEY`, which it expands into `apiKeys` and the embedding peer's `apiKey`); it loads the
  rendered config itself and starts and stops each model's llama-server on demand from its `cmd`, and it
  forwards the embedding names to the embedding server (its peer). Ready when `/health` answers 200;
* **LiteLLM** runs `litellm` with its container's command and environment (a strong random master key,
  `LLAMA_SWAP_API_KEY`, cloud keys), its chat routes pointing at llama-swap's loopback URL, and is ready when
  `/health/liveliness` answers 200.

Every process gets its own process group; `stop()` (always reached through the context manager) sends
SIGTERM to each group, then SIGKILL, and kills whatever llama-swap started that outlived it (llama-swap puts
each llama-server into a process group of its own); each started process is asked to receive SIGTERM if the
test process dies without reaching `stop()` (killed by a CI timeout), and llama-swap stops its models on SIGTERM,
so no server outlives a run.

The deployment writes a targets JSON with what `pulumi stack output --json` prints for the same stack
(`stack.deployment.Deployment.outputs`, without container names: nothing runs in a container), which `tests/smoke`
reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.local import LOOPBACK
from models.config import LlamaSwapConfig, PortsConfig, StackConfig
from stack.deployment import build_deployment
from stack.gguf.sources import LocalHeaders
from stack.render.containers import LITELLM, ContainerSpec
from stack.render.paths import RenderPaths
from stack.sizing.plan import Plan, build_plan
from tests.harness import binaries
from tests.harness.llama_server import http_request

_INHERITED_SECRETS = ("LLAMA_API_KEY", "LLAMA_SWAP_API_KEY", "LITELLM_MASTER_KEY", "OPENAI_API_KEY", "DATABASE_URL")


class LoopbackError(RuntimeError):
    """A process of the loopback deployment did not start or did not become ready; carries its log tail."""


def random_key() -> str:
    """A key LiteLLM accepts as strong (`sk-` + 48 hex digits), never a published example key."""
    return "sk-" + secrets.token_hex(24)


def _port_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(n: int, *, consecutive: bool = False, exclude: Sequence[int] = ()) -> list[int]:
    """`n` ports free a moment ago on 127.0.0.1, none in `exclude`; `consecutive` for a `startPort` range."""
    taken = set(exclude)
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK, 0))
            base = int(s.getsockname()[1])
        if consecutive:
            span = range(base, base + n)
            if base + n <= 65000 and not taken & set(span) and all(_port_free(p) for p in span):
                return list(span)
        elif base not in taken:
            taken.add(base)
            n -= 1
            if n == 0:
                return sorted(taken - set(exclude))
    raise LoopbackError("not enough free loopback ports")


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux `/proc/<pid>/task/<tid>/children`); empty once it is gone."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, whatever its process group (llama-swap starts each model in a group of its own)."""
    out: list[int] = []
    todo = _children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += _children(child)
    return out


@dataclass
class Process:
    """One started program; `name` is the service it plays, used in every error message."""

    name: str
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM to the process group, SIGKILL after `grace` seconds (the group: LiteLLM forks workers); then
        SIGKILL to any descendant in another group that outlived it (a model llama-swap could not stop)."""
        below = descendants(self.proc.pid)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=grace)
        # Children may outlive the leader; the group id is the leader's pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for pid in below:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _base_env() -> dict[str, str]:
    """The runner's environment minus anything that would change a program's behaviour behind our back."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith(("LLAMA_ARG_", "LITELLM_")) or k in _INHERITED_SECRETS or k.lower().endswith("_proxy"))
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def container_env(spec: ContainerSpec, secret_values: Mapping[str, str]) -> dict[str, str]:
    """What the container's process sees: its plain env plus each secret env var's value."""
    missing = sorted(key for key in spec.secret_env.values() if key not in secret_values)
    if missing:
        raise LoopbackError(f"{spec.service} needs the secrets {missing}")
    return {**spec.env, **{env: secret_values[key] for env, key in spec.secret_env.items()}}


@dataclass
class LoopbackDeployment:
    """A running loopback deployment; `targets` is what `targets_path` holds."""

    plan: Plan
    paths: RenderPaths
    workdir: Path
    secret_values: dict[str, str]
    targets: dict[str, Any]
    targets_path: Path
    processes: list[Process] = field(default_factory=list)

    @property
    def config(self) -> StackConfig:
        return self.plan.config

    @property
    def llama_swap_url(self) -> str:
        return self.paths.llama_swap_url

    def process(self, service: str) -> Process:
        return next(p for p in self.processes if p.name == service)

    def smoke_env(self) -> dict[str, str]:
        """The variables the smoke suite reads its keys from (the names the containers use)."""
        env: dict[str, str] = {}
        if "litellm_master_key" in self.secret_values:
            env["LITELLM_MASTER_KEY"] = self.secret_values["litellm_master_key"]
        if "api_key" in self.secret_values:
            env["LLAMA_SWAP_API_KEY"] = self.secret_values["api_key"]
        return env

    def write_targets(self, path: Path, targets: Mapping[str, Any]) -> Path:
        path.write_text(json.dumps(targets, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return path

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()


def local_paths(cfg: StackConfig, workdir: Path) -> RenderPaths:
    """Where the rendered files point when the programs run here instead of in their containers."""
    return RenderPaths(
        llama_server_bin=str(binaries.llama_server()),
        llama_swap_bin=str(binaries.llama_swap()),
        models_dir=cfg.models_dir,
        llama_swap_config=str(workdir / "llama-swap.yaml"),
        litellm_config=str(workdir / "litellm.yaml"),
        llama_swap_listen_host=LOOPBACK,
        llama_swap_port=cfg.ports.llama_swap,
        model_host=LOOPBACK,
        embedding_host=LOOPBACK,
        embedding_port=cfg.ports.embeddings,
        litellm_host=LOOPBACK,
        litellm_port=cfg.ports.litellm,
        llama_swap_url=f"http://{LOOPBACK}:{cfg.ports.llama_swap}",
        embedding_url=f"http://{LOOPBACK}:{cfg.ports.embeddings}",
    )


def loopback_config(cfg: StackConfig) -> StackConfig:
    """`cfg` with free loopback ports for every service and a free `startPort` range for the models."""
    model_ports = free_ports(len(cfg.models), consecutive=True)
    names = list(PortsConfig.model_fields)
    ports = PortsConfig(**dict(zip(names, free_ports(len(names), exclude=model_ports), strict=True)))
    swap_settings = LlamaSwapConfig.model_validate({**cfg.llama_swap.model_dump(), "start_port": model_ports[0]})
    return cfg.model_copy(update={"bind_address": LOOPBACK, "ports": ports, "llama_swap": swap_settings})


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the test process dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_process(name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path) -> Process:
    """Own session (so `stop` can signal the whole group), output to `log_path`, tied to this process's life."""
    with open(log_path, "wb") as log:
        log.write(("$ " + shlex.join(argv) + "\n").encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env), cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent,
        )
    return Process(name, list(argv), log_path, proc)


def wait_ready(process: Process, url: str, timeout: float) -> None:
    """Poll `url` until 200; 503 (llama-server loading) and refused connections mean 'not yet'."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if not process.running():
            raise LoopbackError(
                f"{process.name} exited with {process.proc.returncode} before {url} answered; log tail:\n"
                + process.log_tail()
            )
        try:
            r = http_request("GET", url, timeout=5)
            if r.status == 200:
                return
            last = f"HTTP {r.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise LoopbackError(f"{process.name} not ready at {url} after {timeout:.0f}s ({last}); log tail:\n"
                                + process.log_tail())
        time.sleep(0.2)


def local_argv(spec: ContainerSpec) -> list[str]:
    """The container's process as run here: llama-swap and llama-server have their binaries' paths in the
    entrypoint already; LiteLLM's image starts `litellm` with the spec's command."""
    prefix = [str(binaries.litellm())] if spec.service == LITELLM else []
    return [*prefix, *spec.entrypoint, *spec.command]


def ready_url(spec: ContainerSpec) -> str:
    """The URL the container's healthcheck polls (on 127.0.0.1 and the port it listens on here)."""
    found = re.search(r"http://127\.0\.0\.1:\d+[^'\s]*", " ".join(spec.healthcheck.test))
    if found is None:
        raise LoopbackError(f"{spec.service}: no URL in its healthcheck {spec.healthcheck.test}")
    return found.group(0)


@contextlib.contextmanager
def loopback_deployment(
    cfg: StackConfig,
    workdir: Path,
    *,
    api_key: bool = True,
    extra_targets: Mapping[str, Any] | None = None,
    adjust_paths: Callable[[RenderPaths], RenderPaths] | None = None,
    ready_timeout: float = 120.0,
    litellm_timeout: float = 180.0,
) -> Iterator[LoopbackDeployment]:
    """Render, start, wait for readiness, yield; every process is stopped on the way out, whatever happened.

    `adjust_paths` changes the render paths after they are computed: the way a test renders a deliberately
    broken deployment (e.g. LiteLLM pointed at the wrong port) through the real renderers.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(loopback_config(cfg), LocalHeaders(Path(cfg.models_dir)))
    if not plan.fits:
        raise LoopbackError(f"the loopback stack does not fit: {plan.to_json()['scenarios']}")
    local = plan.config
    paths = local_paths(local, workdir)
    if adjust_paths is not None:
        paths = adjust_paths(paths)
    stack = build_deployment(plan, frozenset({"api_key"} if api_key else ()), paths)
    values = {key: random_key() for key in stack.secret_keys}
    for spec in stack.specs:
        for upload in spec.uploads:
            Path(upload.path).write_text(upload.content, encoding="utf-8")

    targets_path = workdir / "targets.json"
    deployment = LoopbackDeployment(
        plan=plan, paths=paths, workdir=workdir, secret_values=values,
        targets={**stack.outputs(container_names=None), **(extra_targets or {})},
        targets_path=targets_path,
    )
    base = _base_env()
    timeouts = {LITELLM: litellm_timeout}
    try:
        pending = list(stack.services)
        started: set[str] = set()
        while pending:
            wave = [svc for svc in pending if set(svc.after) <= started]
            if not wave:
                raise LoopbackError(f"no service can start: {[(s.key, s.after) for s in pending]}")
            waits = []
            for svc in wave:
                p = start_process(svc.key, local_argv(svc.spec), {**base, **container_env(svc.spec, values)},
                                  workdir / f"{svc.key}.log", workdir)
                deployment.processes.append(p)
                waits.append((p, ready_url(svc.spec), timeouts.get(svc.key, ready_timeout)))
            for p, url, timeout in waits:
                wait_ready(p, url, timeout)
            started |= {svc.key for svc in wave}
            pending = [svc for svc in pending if svc.key not in started]
        deployment.write_targets(targets_path, deployment.targets)
        yield deployment
    finally:
        deployment.stop()


def with_targets(deployment: LoopbackDeployment, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the deployment's targets, changed by `change`, written next to it (for broken-target tests)."""
    targets = json.loads(json.dumps(deployment.targets))
    change(targets)
    return deployment.write_targets(deployment.workdir / name, targets)
