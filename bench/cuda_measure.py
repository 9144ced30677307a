"""What llama-server allocates on a real CUDA GPU for the sizing panel, written as one JSON file.

CI and the development machines have no GPU, so the CPU panel (bench/sizing_benchmark.py) calibrates the
compute rules and the CUDA figures of stack/sizing/compute_buffer.py and models/gpu_profiles.py still rest on public
logs. This script is the measurement to run where a GPU is: build the pinned server with `bench/cuda_build.sh`,
then run it; the JSON keeps each full log, so the comparison with `stack.sizing.process_size` can be made on any
machine.

Each case starts llama-server with the argv the stack renders for a GPU profile (`-ngl 999 --fit off`, the
panel's settings, `-lv 4` for the buffer lines), waits for /health, reads the GPU memory the process holds,
sends one request of a full ubatch (so that what CUDA allocates lazily, the cuBLAS workspace and the ggml pool,
exists), reads it again, and stops the server (its exit log has llama.cpp's memory breakdown with the
`unaccounted` per-process overhead). The JSON is rewritten after every case, so a run cut short by its
deadline keeps what it measured.

Usage: python -m bench.cuda_measure --server PATH --out results.json [--deadline SECONDS] [--all-production]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.local import LOOPBACK, free_port
from bench.sizing_panel import (
    Case,
    Layout,
    layouts,
    panel,
    production_ci_panel,
    production_panel,
    server_settings,
    stop_process_group,
)
from models.config import EmbeddingConfig, ModelConfig
from stack.render.paths import RenderPaths
from stack.render.server_args import PORT_MACRO, embedding_argv, model_argv

GPU_LAYERS = 999


def _smi(query: str, kind: str = "gpu") -> list[list[str]]:
    """Rows of `nvidia-smi --query-<kind>=<query>` (empty when nvidia-smi is missing or fails)."""
    try:
        out = subprocess.run(["nvidia-smi", f"--query-{kind}={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


def gpu_used_mib() -> int | None:
    rows = _smi("memory.used")
    return int(rows[0][0]) if rows else None


def process_used_mib(pid: int) -> int | None:
    """The process's own GPU memory, as the driver accounts it (context, buffers, workspace, pool)."""
    for row in _smi("pid,used_memory", kind="compute-apps"):
        if row and row[0] == str(pid):
            with contextlib.suppress(ValueError):
                return int(row[1])
    return None


def gpu_argv(server: Path, layout: Layout, path: Path, case: Case, port: int) -> list[str]:
    """The argv the stack renders for this case on a GPU profile."""
    paths = RenderPaths(llama_server_bin=str(server), models_dir=str(path.parent), model_host=LOOPBACK,
                        embedding_host=LOOPBACK, embedding_port=port)
    settings = server_settings(layout, path, case.setting).model_copy(update={"n_gpu_layers": GPU_LAYERS})
    if isinstance(settings, EmbeddingConfig):
        return embedding_argv(settings, paths, cpu_only=False)
    assert isinstance(settings, ModelConfig)
    return [str(port) if a == PORT_MACRO else a for a in model_argv("m", settings, paths, cpu_only=False)]


def _post(port: int, route: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(f"http://{LOOPBACK}:{port}{route}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return -1


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    return False


def run_case(server: Path, case: Case, log_dir: Path) -> dict[str, Any]:
    layout = layouts()[case.layout]
    path = layout.build()
    port = free_port()
    argv = gpu_argv(server, layout, path, case, port)
    log_path = log_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", case.id) + ".log")
    baseline = gpu_used_mib()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMA_ARG_")}
    t0 = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    result: dict[str, Any] = {"case": case.id, "layout": case.layout, "setting": vars(case.setting), "argv": argv,
                              "gpu_used_before_mib": baseline}
    try:
        result["healthy"] = _wait_healthy(proc, port, 120)
        result["start_s"] = round(time.monotonic() - t0, 2)
        if result["healthy"]:
            result["process_loaded_mib"] = process_used_mib(proc.pid)
            result["gpu_used_loaded_mib"] = gpu_used_mib()
            tokens = [1 + i % 500 for i in range(min(case.setting.ubatch, case.setting.ctx // case.setting.parallel
                                                     - 8))]
            if layout.embedding:
                result["request_status"] = _post(port, "/embedding", {"content": "hello world " * 40})
            else:
                result["request_status"] = _post(port, "/completion", {"prompt": tokens, "n_predict": 2,
                                                                       "cache_prompt": False})
            result["process_after_request_mib"] = process_used_mib(proc.pid)
            result["gpu_used_after_request_mib"] = gpu_used_mib()
    finally:
        stop_process_group(proc, timeout=15)
    result["seconds"] = round(time.monotonic() - t0, 2)
    result["exit_code"] = proc.returncode
    result["log"] = log_path.read_text(errors="replace")
    return result


def cases(all_production: bool) -> list[Case]:
    """The fixture panel, then the production rows the CI test runs, then (optionally) the rest of the grid."""
    out = panel() + production_ci_panel()
    if all_production:
        out += [c for c in production_panel() if c not in out]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline", type=float, default=600.0, help="start no case after this many seconds")
    ap.add_argument("--all-production", action="store_true")
    args = ap.parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="lls-cuda-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    gpu = _smi("name,memory.total,driver_version")
    doc: dict[str, Any] = {"gpu": gpu[0] if gpu else None, "server": str(args.server), "cases": []}
    for case in cases(args.all_production):
        if time.monotonic() - t0 > args.deadline:
            doc["cut_at_deadline"] = True
            break
        try:
            row = run_case(args.server, case, log_dir)
        except Exception as exc:  # a measurement script keeps going; the row says what failed
            row = {"case": case.id, "error": f"{type(exc).__name__}: {exc}"}
        doc["cases"].append(row)
        print(f"{time.monotonic() - t0:7.1f}s {case.id}: healthy={row.get('healthy')} "
              f"proc={row.get('process_loaded_mib')}->{row.get('process_after_request_mib')} MiB", flush=True)
        args.out.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
