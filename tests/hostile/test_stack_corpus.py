"""The hostile stack-file corpus: every file in `tests/hostile/stacks/` goes through `python -m stack plan`.

Each file starts with its expectation, `# expect: exit=<code> [key=<key path>]...` (`key=<file>` for a problem with
the file itself, named by its path), then `# class: <class>` and a line saying what is hostile about it. A case
passes when, in `--json` and in text mode: the exit code is the expected one; no traceback is printed; `--json`
prints one JSON object; a refusal (exit 1) names every expected key path, each message says what to do, and no
program is started (an ssh option cannot run a command while `plan` reads headers); a value marked as a secret
is never echoed; the text output holds no control character but newlines; `plan` finishes within `TIME_LIMIT_S`.
A valid file is also written out with `compose`, which must succeed the same way.
A key path with a control character is written escaped (`key=models.chat\\n`).

The corpus assumes `/srv/models`, the models_dir most files use, does not exist here: sizing then uses the catalog
and `arch` blocks, as on a machine that only plans.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from models.values import control_chars
from stack.cli import main, printable

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forks a child per case and reads /proc for memory")

STACKS = Path(__file__).resolve().parent / "stacks"
CASES = sorted(STACKS.glob("*.yaml"))
FILE_KEY = "<file>"
TIME_LIMIT_S = 5.0
"""Per `plan` run; the issue asks for about a second on any input, with room for a slow CI machine."""
MEMORY_LIMIT = 1 << 30
"""Address space a `plan` run may add to what the test process already maps."""

FIX = re.compile(
    r"\b(should|must|use|expect|give|set|add|remove|check|save|quote|choose|pick|lower|raise|rename|fix|write|turn|"
    r"keep|replace|accept|instead|enable|drop|split|put|shorten|known|the limit|limited to|needs|at most|at least|"
    r"cannot exceed|letters)",
    re.IGNORECASE,
)
"""A message names a fix: what to do, or the valid form (the known names, the limit, the rule), not only what is
wrong."""

SECRET = re.compile(r"sk-[A-Za-z-]*SECRET-[0-9]+")
"""Plain-text secret values planted in the corpus; no output may repeat them."""

PENDING: dict[str, str] = {}
"""Cases whose rule has not landed yet, with what is missing: expected to fail, strictly, so each turns into a
failure when its rule lands and is then removed from here."""


@dataclass(frozen=True)
class Expectation:
    exit: int
    keys: tuple[str, ...]
    cls: str


def _header_text(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="replace")
    return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace")


def expectation(path: Path) -> Expectation:
    lines = _header_text(path.read_bytes()).splitlines()
    assert len(lines) >= 3 and lines[0].startswith("# expect: ") and lines[1].startswith("# class: "), (
        f"{path.name} must start with '# expect: exit=N [key=...]' and '# class: ...'"
    )
    fields = lines[0].removeprefix("# expect: ").split(" key=")
    code = fields[0].strip()
    assert code.startswith("exit="), path.name
    keys = tuple(codecs.decode(k, "unicode_escape") if "\\" in k else k for k in fields[1:])
    return Expectation(int(code.removeprefix("exit=")), keys, lines[1].removeprefix("# class: ").strip())


@dataclass(frozen=True)
class Run:
    rc: int
    out: str
    err: str
    seconds: float
    grown_mib: float
    """Peak resident memory of the run above what the forked child started with."""
    started: list[Any]
    """Programs `plan` tried to start (none is: ssh header reads fail and fall back)."""


def _status_kib(field: str) -> int:
    return int(Path("/proc/self/status").read_text().split(f"{field}:")[1].split()[0])


def _child(argv: list[str], write_fd: int) -> None:
    """In the forked child: cap memory, block programs, run the CLI in-process and send back what it printed."""
    started: list[Any] = []

    class Blocked(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, args: Any, *_: Any, **__: Any) -> None:
            started.append(args)
            raise OSError(f"the hostile-corpus test starts no programs: {args!r}")

    vm = _status_kib("VmSize") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_LIMIT, vm + MEMORY_LIMIT))
    rss_kib = _status_kib("VmRSS")
    subprocess.Popen = Blocked  # type: ignore[misc]
    os.environ.pop("LLS_TRACEBACK", None)
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc: object = main(argv)
    except BaseException as exc:
        rc = f"raised {type(exc).__name__}: {exc}"
    result = {"rc": rc, "out": out.getvalue(), "err": err.getvalue(), "seconds": time.perf_counter() - start,
              "grown_mib": (_status_kib("VmHWM") - rss_kib) / 1024, "started": [repr(a) for a in started]}
    with os.fdopen(write_fd, "w", encoding="utf-8") as pipe:
        json.dump(result, pipe)


def run_plan(path: Path, *flags: str) -> Run:
    """`plan` on `path`; see `run_cli`."""
    return run_cli(path, ["plan", *flags, "--config", str(path)])


def run_cli(path: Path, argv: list[str]) -> Run:
    """The CLI with `argv` in a forked child: a run past `TIME_LIMIT_S` (even inside C code, where no signal handler
    runs) is killed and fails the case, and one that allocates past `MEMORY_LIMIT` gets a MemoryError."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            _child(argv, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIME_LIMIT_S
    with os.fdopen(read_fd, "rb") as pipe:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pipe], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"{path.name}: {' '.join(argv[:2])} ran longer than {TIME_LIMIT_S} s; killed")
            chunk = os.read(pipe.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    os.waitpid(pid, 0)
    assert chunks, f"{path.name}: the child died without a result"
    result = json.loads(b"".join(chunks))
    assert isinstance(result["rc"], int), f"{path.name}: {result['rc']}"
    return Run(result["rc"], result["out"], result["err"], result["seconds"], result["grown_mib"], result["started"])


def _key(key: str, path: Path) -> str:
    return str(path) if key == FILE_KEY else key


def check_case(path: Path, out_dir: Path) -> list[Run]:
    """Run one corpus file in both output modes (and `compose` into `out_dir` when it is valid) and assert its
    expectation; returns the runs."""
    exp = expectation(path)
    planted = set(SECRET.findall(_header_text(path.read_bytes())))

    run = run_plan(path, "--json")
    assert "Traceback" not in run.out + run.err, run.err
    assert run.rc == exp.exit, f"exit {run.rc}, expected {exp.exit}; stdout: {run.out[:2000]} stderr: {run.err[:2000]}"
    doc = json.loads(run.out)
    assert isinstance(doc, dict)
    if exp.exit == 1:
        errors = doc["errors"]
        keys = [e["key"] for e in errors]
        for key in exp.keys:
            assert _key(key, path) in keys, f"{key!r} not among the refusals: {errors}"
        for e in errors:
            assert isinstance(e["message"], str) and FIX.search(e["message"]), f"{e['key']}: names no fix: {e}"
        assert run.started == [], f"a refused stack started programs: {run.started}"
    else:
        assert doc["valid"] is True and doc["fits"] is (exp.exit == 0)
    assert not any(secret in run.out + run.err for secret in planted)

    text = run_plan(path)
    assert "Traceback" not in text.out + text.err, text.err
    assert text.rc == run.rc
    if exp.exit == 1:
        for key in exp.keys:
            assert f"  {printable(_key(key, path))}: " in text.err, text.err[:2000]
    assert set(control_chars(text.out + text.err)) <= {"\n"}, "a terminal would interpret what the stack file holds"
    assert not any(secret in text.out + text.err for secret in planted)
    if exp.exit != 0:
        return [run, text]
    compose = run_cli(path, ["compose", "--config", str(path), "--out", str(out_dir / "docker-compose.yml")])
    assert compose.rc == 0 and "Traceback" not in compose.out + compose.err, compose.err
    assert set(control_chars(compose.out + compose.err)) <= {"\n"}
    return [run, text, compose]


def _param(path: Path) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=PENDING[path.stem])] if path.stem in PENDING else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_corpus_size_and_headers() -> None:
    assert len(CASES) >= 150
    classes = {expectation(p).cls for p in CASES}
    assert len(classes) >= 15, classes
    assert set(PENDING) <= {p.stem for p in CASES}, set(PENDING) - {p.stem for p in CASES}
    for p in CASES:
        exp = expectation(p)
        assert exp.exit in (0, 1, 2), p.name
        assert bool(exp.keys) == (exp.exit == 1), f"{p.name}: a refusal names its keys, nothing else does"


@pytest.mark.parametrize("path", [_param(p) for p in CASES])
def test_hostile_stack_file(path: Path, tmp_path: Path) -> None:
    assert not Path("/srv/models").exists(), "the corpus expects /srv/models to be absent (catalog sizing)"
    check_case(path, tmp_path)
