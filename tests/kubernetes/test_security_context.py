"""llama-swap and the llama-server it starts work under the securityContext the kubernetes target gives them.

No kubelet runs the pods here, so this reproduces their restrictions on this machine: the rendered llama-swap
argv and config, run as the UID/GID of `SECURITY["llama-swap"]` with no capabilities and `no_new_privs`, in a
private mount namespace where `/` is read-only and `/tmp` is a fresh tmpfs (the pod's `emptyDir`). The real
llama-swap v250 and llama-server b11434 then answer `/health` and a chat completion on 127.0.0.1: neither needs
root or a writable root filesystem (the claim behind `runAsNonRoot` and `readOnlyRootFilesystem` in
`stack.targets.kubernetes.manifests`). The model, binaries and config are staged world-readable outside /tmp.

Needs root and permission to create mount namespaces (`unshare --mount`); skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.load import parse_stack_config
from stack.gguf.writers import write_qwen2_chat
from stack.render.llama_swap import llama_swap_argv, render_llama_swap_config
from stack.render.paths import RenderPaths
from stack.targets.kubernetes.manifests import SECURITY
from tests.harness import binaries
from tests.harness.loopback import free_ports

pytestmark = pytest.mark.integration


def _can_isolate() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a mount namespace and drop to the pod's UID"
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                            "mount -o remount,bind,ro / && mount -t tmpfs tmpfs /tmp"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"cannot remount / read-only in a mount namespace: {probe.stderr}"


def _uid(pid: str) -> str:
    """The real UID of a process (`Uid:` real, effective, saved, fs)."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("Uid:"))
    return line.split()[1]


@pytest.fixture
def staged() -> Iterator[Path]:
    """A world-readable directory outside /tmp (which the namespace hides under its tmpfs)."""
    root = Path(tempfile.mkdtemp(prefix="lls-k8s-ro-", dir="/var/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_llama_swap_serves_as_non_root_on_a_read_only_root(staged: Path) -> None:
    reason = _can_isolate()
    if reason:
        pytest.skip(reason)
    security = SECURITY["llama-swap"]
    assert security.non_root and security.read_only_root and security.user
    app = staged / "app"
    shutil.copytree(binaries.llama_server().parent, app, symlinks=True)
    shutil.copy2(binaries.llama_swap(), app / "llama-swap")
    (staged / "models").mkdir()
    write_qwen2_chat(staged / "models" / "chat.gguf")
    swap_port, start = free_ports(2)
    cfg = parse_stack_config({"gpu": {"profile": "cpu"}, "models_dir": str(staged / "models"),
                              "llama_swap": {"start_port": start, "health_check_timeout": 60},
                              "models": {"chat": {"file": "chat.gguf", "ctx_size": 512}}}, frozenset())
    paths = RenderPaths(llama_server_bin=str(app / "llama-server"), llama_swap_bin=str(app / "llama-swap"),
                        models_dir=str(staged / "models"), llama_swap_config=str(staged / "config.yaml"),
                        llama_swap_listen_host="127.0.0.1", llama_swap_port=swap_port, model_host="127.0.0.1")
    (staged / "config.yaml").write_text(render_llama_swap_config(cfg, paths, api_key_enabled=False))
    subprocess.run(["chmod", "-R", "a+rX", str(staged)], check=True)
    uid = str(security.user)
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--no-new-privs"]
    script = ("mount -o remount,bind,ro / && mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp && exec "
              + shlex.join([*drop, *llama_swap_argv(paths)]))
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{swap_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, "llama-swap did not come up"
            time.sleep(0.3)
        body = json.dumps({"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        req = urllib.request.Request(f"{base}/v1/chat/completions", data=body.encode(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=90) as resp:
            answer = json.load(resp)
        assert answer["choices"][0]["message"]["content"] is not None
        children = [c for task in Path(f"/proc/{proc.pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]  # Go forks from any of its threads
        assert children, "llama-swap started no llama-server"
        for pid in [str(proc.pid), *children]:
            assert _uid(pid) == uid, (pid, Path(f"/proc/{pid}/cmdline").read_bytes())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
