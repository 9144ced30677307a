"""A real Kubernetes control plane on 127.0.0.1 for the kubernetes target's tests.

etcd, kube-apiserver and kube-controller-manager (the toolchain's builds, `../shared/toolchain/build.sh etcd
kube-apiserver kube-controller-manager`, or the same programs on PATH) run from a temporary directory on free
loopback ports: token authentication, RBAC, `--endpoint-reconciler-type=none` (the API server otherwise refuses to
advertise a loopback address). The controller manager is there so a deleted Namespace is finalized and Deployments
get their ReplicaSets and Pods.

There are no kubelets and no nodes: every Pod stays Pending, no container ever runs. The tests check what the API
server stores and accepts (server-side validation, RBAC), not a running stack; that is the Docker target's job.

Missing programs skip the tests with the reason, except under CI=true, where they fail: a CI without its control
plane must not pass as green. Everything started is stopped at session end (each process group: SIGTERM, then
SIGKILL after 10 s).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NoReturn

import pytest
import yaml

from tests.harness import binaries
from tests.harness.loopback import free_ports

PROGRAMS = ("etcd", "kube-apiserver", "kube-controller-manager")
READY_TIMEOUT_S = 90.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """A program the tests need is not here: a failure under CI, a skip elsewhere."""
    if in_ci():
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(f"{reason} (not in CI, so skipping; CI fails instead)")


def program(name: str) -> Path:
    """`name` from the toolchain directory, else PATH."""
    built = binaries.toolchain_bin_dir() / name
    if built.is_file() and os.access(built, os.X_OK):
        return built
    if found := shutil.which(name):
        return Path(found)
    missing(f"{name} is not in {binaries.toolchain_bin_dir()} or on PATH; build it with "
            "`bash ../shared/toolchain/build.sh etcd kube-apiserver kube-controller-manager "
            "pulumi-resource-kubernetes` (scripts/install-tools.sh does)")


@dataclass(frozen=True)
class ControlPlane:
    """A running API server: its URL, the admin token, a kubeconfig for it, and how long it took to answer."""

    server: str
    token: str
    kubeconfig: Path
    start_seconds: float


def _ready(server: str, token: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=3, context=ctx) as resp:
            return bool(resp.status == 200 and resp.read().strip() == b"ok")
    except (urllib.error.URLError, OSError):
        return False


def _kubeconfig(path: Path, server: str, token: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "loopback", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "admin"}}],
        "current-context": "loopback",
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in reversed(procs):
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver and kube-controller-manager on 127.0.0.1, as ../shared/toolchain/README.md runs them."""
    etcd, apiserver, controllers = (program(name) for name in PROGRAMS)
    if shutil.which("openssl") is None:
        missing("openssl is needed to make the service-account key")
    d = tmp_path_factory.mktemp("control-plane")
    etcd_client, etcd_peer, secure, controller_port = free_ports(4)
    token = secrets.token_hex(16)
    (d / "tokens.csv").write_text(f"{token},admin,1,system:masters\n")
    subprocess.run(["openssl", "genrsa", "-out", str(d / "sa.key"), "2048"], check=True, capture_output=True)
    server = f"https://127.0.0.1:{secure}"
    _kubeconfig(d / "kubeconfig", server, token)
    commands = {
        "etcd": [str(etcd), "--data-dir", str(d / "etcd"), "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                 "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}"],
        "kube-apiserver": [
            str(apiserver), f"--etcd-servers=http://127.0.0.1:{etcd_client}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none", f"--secure-port={secure}",
            f"--cert-dir={d / 'certs'}", f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc", f"--service-account-key-file={d / 'sa.key'}",
            f"--service-account-signing-key-file={d / 'sa.key'}", "--service-cluster-ip-range=10.96.0.0/16"],
        "kube-controller-manager": [
            str(controllers), f"--kubeconfig={d / 'kubeconfig'}", f"--service-account-private-key-file={d / 'sa.key'}",
            "--bind-address=127.0.0.1", f"--secure-port={controller_port}", "--leader-elect=false",
            "--controllers=*,-nodeipam,-nodelifecycle"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []
    t0 = time.monotonic()
    try:
        for name, argv in commands.items():
            log = (d / f"{name}.log").open("wb")
            logs.append(log)
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=d, start_new_session=True))
            if name == "kube-apiserver":
                _wait_ready(server, token, procs, d)
        elapsed = time.monotonic() - t0
        print(f"\n[control plane] ready in {elapsed:.1f} s at {server}")
        yield ControlPlane(server, token, d / "kubeconfig", elapsed)
    finally:
        _stop(procs)
        for handle in logs:
            handle.close()


def _wait_ready(server: str, token: str, procs: list[subprocess.Popen[bytes]], d: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _ready(server, token):
            return
        for proc in procs:
            if proc.poll() is not None:
                logs = "\n".join(p.read_text()[-3000:] for p in sorted(d.glob("*.log")))
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{logs}")
        time.sleep(0.5)
    raise RuntimeError(f"kube-apiserver did not answer /readyz with ok within {READY_TIMEOUT_S:.0f} s")
