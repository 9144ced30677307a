"""Download throughput of `python -m stack fetch` against `curl` on the same file, over loopback.

A real nginx on 127.0.0.1 (bench/hf_mirror.py) serves a GGUF with Llama-3.2-1B's shapes (q8_0, about
1.3 GB; zero weights, so building it costs no disk) in the Hugging Face layout. Each tool downloads it into the
same directory (tmpfs by default, so the disk does not set the pace), several times; the table gives the median:

* curl: `curl -s -o FILE URL` (no verification);
* curl + sha256sum: `curl -s -o FILE URL && sha256sum FILE`, what a careful user runs;
* fetch (Fetcher): the in-process transfer of `stack.fetch.fetcher.Fetcher` (stream, sha256 while streaming, GGUF check,
  fsync, rename);
* fetch (CLI): `python -m stack fetch` end to end: interpreter start, config, plan (remote header), download.

Usage: python -m bench.fetch_vs_curl [--runs 3] [--dest /dev/shm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.hf_mirror import HubFile, running_mirror, sha256_of
from bench.local import REPO, write_stack_file
from stack.fetch.fetcher import Fetcher, Progress
from stack.fetch.http_client import HttpClient
from stack.fetch.remote_part import RemotePart
from stack.gguf.header import file_problem
from stack.gguf.writers import LLAMA32_1B_SPEC, production_shape_model

REV = "0" * 40


def _timed(run: Callable[[], None], clean: Callable[[], None], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        clean()
        start = time.perf_counter()
        run()
        out.append(time.perf_counter() - start)
    clean()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dest", default="/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
    args = parser.parse_args(argv)
    curl = shutil.which("curl")
    if curl is None:
        print("curl is missing", file=sys.stderr)
        return 1
    model, _ = production_shape_model(LLAMA32_1B_SPEC)
    size = model.stat().st_size
    digest = sha256_of(model)
    with tempfile.TemporaryDirectory(dir=model.parent) as srv, \
            tempfile.TemporaryDirectory(dir=args.dest) as dest_dir, \
            running_mirror(Path(srv), [HubFile("bench/llama-GGUF", REV, model.name, model)]) as mirror:
        dest = Path(dest_dir)
        url = f"{mirror.endpoint}/bench/llama-GGUF/resolve/{REV}/{model.name}"
        out_file = dest / "curl.gguf"
        models_dir = dest / "models"

        def clean() -> None:
            out_file.unlink(missing_ok=True)
            shutil.rmtree(models_dir, ignore_errors=True)

        def run_curl() -> None:
            subprocess.run([curl, "-s", "-L", "-o", str(out_file), url], check=True)

        def run_curl_sha() -> None:
            run_curl()
            out = subprocess.run(["sha256sum", str(out_file)], check=True, capture_output=True, text=True)
            assert out.stdout.split()[0] == digest

        part = RemotePart("models.bench.source", model.name, url, digest, True, True)

        def run_fetcher() -> None:
            client = HttpClient(timeout=30)
            outcome = Fetcher(client, models_dir, Progress(enabled=False), check=file_problem).fetch(part)
            assert outcome.action == "downloaded" and outcome.sha256 == digest

        stack_file = write_stack_file(dest / "Pulumi.bench.yaml", {
            "models_dir": str(models_dir), "hf_endpoint": mirror.endpoint, "gpu": {"profile": "cpu"},
            "models": {"bench": {"file": model.name, "ctx_size": 2048, "source": {
                "repo": "bench/llama-GGUF", "revision": REV, "sha256": digest}}}})
        env = {**os.environ, "XDG_CACHE_HOME": str(dest / "cache"), "LLS_OFFLINE": "0"}

        def run_cli() -> None:
            subprocess.run([sys.executable, "-m", "stack", "fetch", "--quiet", "--config", str(stack_file)],
                           check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)

        rows = [
            ("curl", _timed(run_curl, clean, args.runs)),
            ("curl + sha256sum", _timed(run_curl_sha, clean, args.runs)),
            ("fetch (Fetcher)", _timed(run_fetcher, clean, args.runs)),
            ("fetch (CLI)", _timed(run_cli, clean, args.runs)),
        ]
    base = statistics.median(rows[0][1])
    print(f"file: {model.name}, {size:,} bytes, served by nginx on 127.0.0.1, written to {args.dest}; "
          f"median of {args.runs} runs, {os.cpu_count()} CPUs")
    print()
    print("| tool | seconds | MiB/s | time vs curl |")
    print("|---|---:|---:|---:|")
    for name, times in rows:
        t = statistics.median(times)
        print(f"| {name} | {t:.2f} | {size / t / 2**20:,.0f} | {t / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
