"""Time and peak memory of `python -m stack plan --json` on every crafted GGUF case, one subprocess each.

    python -m bench.hostile_gguf [--filter TEXT] [--timeout S]

Prints one row per case (exit code, wall ms, the child's peak RSS from wait4) and the worst time and memory.
Wall time includes the interpreter's start and imports; the `valid-base` row is that baseline. Exits 1 when a
case answers another exit code than the table expects, prints a traceback, or runs past the timeout.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.hostile_gguf_cases import CASES, Case, prepare

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    case: Case
    exit_code: int
    wall_ms: float
    peak_rss_mib: float
    traceback: bool

    @property
    def ok(self) -> bool:
        return self.exit_code == self.case.exit_code and not self.traceback


def run(case: Case, timeout: float) -> Row:
    with tempfile.TemporaryDirectory(prefix="hostile-gguf-") as tmp:
        config = prepare(case, Path(tmp))
        env = {k: v for k, v in os.environ.items() if k != "LLS_TRACEBACK"}
        env["PYTHONPATH"] = str(REPO)
        start = time.perf_counter()
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen([sys.executable, "-m", "stack", "plan", "--json", "--config", str(config)],
                                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
            deadline = start + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.send_signal(signal.SIGKILL)
                    _, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            text = out.read().decode(errors="replace")
    # ru_maxrss is in KiB on Linux
    return Row(case, proc.returncode, wall * 1000, usage.ru_maxrss / 1024, "Traceback" in text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--filter", default="", help="only cases whose name contains this text")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a case is killed (default 30)")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if args.filter in c.name and not (c.root_cannot_run and os.geteuid() == 0)]
    rows: list[Row] = []
    print(f"{'case':52} {'class':14} {'exit':>4} {'want':>4} {'wall ms':>8} {'peak RSS MiB':>12}")
    for case in cases:
        row = run(case, args.timeout)
        rows.append(row)
        flag = "" if row.ok else "  <-- MISMATCH" + (" (traceback)" if row.traceback else "")
        print(f"{case.name[:52]:52} {case.kind:14} {row.exit_code:>4} {case.exit_code:>4} {row.wall_ms:8.0f} "
              f"{row.peak_rss_mib:12.1f}{flag}", flush=True)
    if not rows:
        return 0
    slowest = max(rows, key=lambda r: r.wall_ms)
    biggest = max(rows, key=lambda r: r.peak_rss_mib)
    failed = [r for r in rows if not r.ok]
    print(f"\n{len(rows)} cases, {len(failed)} mismatched, {sum(r.traceback for r in rows)} tracebacks")
    print(f"worst time: {slowest.wall_ms:.0f} ms ({slowest.case.name}); "
          f"worst peak RSS: {biggest.peak_rss_mib:.1f} MiB ({biggest.case.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
