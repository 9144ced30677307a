"""Time and peak memory of `python -m stack plan --json` on every crafted GGUF case, one subprocess each.

    python -m bench.hostile_gguf [--filter TEXT] [--timeout S]

Prints one row per case and the worst time and memory: the exit code; `plan` ms and CPU ms, the time
`stack.cli.main(["plan", "--json", ...])` takes in the child once its imports are done (CPU time is what a
busy machine does not inflate); the whole child's wall ms (interpreter start and imports included); and the
child's peak RSS (VmHWM of its own address space: wait4's ru_maxrss would include this process's RSS at fork
time). Exits 1 when a case answers another exit code than the table expects, prints a traceback, or runs past
the timeout.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.hostile_gguf_cases import CASES, Case, prepare

REPO = Path(__file__).resolve().parents[1]
_CHILD = (
    "import sys, time\n"
    "from stack.cli import main\n"
    "t, c = time.perf_counter(), time.process_time()\n"
    "rc = main(sys.argv[1:])\n"
    "ms = f'{(time.perf_counter() - t) * 1e3:.1f} {(time.process_time() - c) * 1e3:.1f}'\n"
    "hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]\n"
    "sys.stderr.write(f'\\nplan-ms {ms} hwm-kib {hwm}\\n')\n"
    "sys.exit(rc)\n"
)


@dataclass(frozen=True)
class Row:
    case: Case
    exit_code: int
    plan_ms: float
    plan_cpu_ms: float
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
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, "plan", "--json", "--config", str(config)],
                                    cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            wall = time.perf_counter() - start
            out.seek(0)
            text = out.read().decode(errors="replace")
    nan = float("nan")
    m = re.search(r"plan-ms ([\d.]+) ([\d.]+) hwm-kib (\d+)", text)
    plan_ms, cpu_ms, rss_mib = (float(m.group(1)), float(m.group(2)), int(m.group(3)) / 1024) if m else (nan,) * 3
    return Row(case, proc.returncode, plan_ms, cpu_ms, wall * 1000, rss_mib, "Traceback" in text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--filter", default="", help="only cases whose name contains this text")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a case is killed (default 30)")
    args = ap.parse_args(argv)
    cases = [c for c in CASES if args.filter in c.name and not (c.root_cannot_run and os.geteuid() == 0)]
    rows: list[Row] = []
    print(f"{'case':52} {'class':14} {'exit':>4} {'want':>4} {'plan ms':>8} {'CPU ms':>7} {'wall ms':>8} "
          f"{'peak RSS MiB':>12}")
    for case in cases:
        row = run(case, args.timeout)
        rows.append(row)
        flag = "" if row.ok else "  <-- MISMATCH" + (" (traceback)" if row.traceback else "")
        print(f"{case.name[:52]:52} {case.kind:14} {row.exit_code:>4} {case.exit_code:>4} {row.plan_ms:8.1f} "
              f"{row.plan_cpu_ms:7.1f} {row.wall_ms:8.0f} {row.peak_rss_mib:12.1f}{flag}", flush=True)
    if not rows:
        return 0
    timed = [r for r in rows if not math.isnan(r.plan_ms)]
    failed = [r for r in rows if not r.ok or math.isnan(r.plan_ms)]
    print(f"\n{len(rows)} cases, {len(failed)} mismatched or killed, {sum(r.traceback for r in rows)} tracebacks")
    for label, attr in (("plan", "plan_ms"), ("plan CPU", "plan_cpu_ms"), ("child wall", "wall_ms")):
        worst = max(timed, key=lambda r: float(getattr(r, attr)))
        print(f"worst {label} time: {getattr(worst, attr):.0f} ms ({worst.case.name})")
    biggest = max(timed, key=lambda r: r.peak_rss_mib)
    print(f"worst peak RSS: {biggest.peak_rss_mib:.1f} MiB ({biggest.case.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
