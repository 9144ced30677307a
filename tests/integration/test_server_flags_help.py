"""The committed llama-server option table is exactly what the pinned binary's `--help` lists, and the argv walk in
models/server_flags.py reads argv the way that binary does (checked by running it; no server is started)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from models.server_flags import extra_args_problems
from models.server_help import parse_help
from models.server_options import BUILD, OPTIONS
from tests.harness import binaries
from tests.unit.helpers import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _require_llama_server() -> None:
    binaries.require(binaries.llama_server)


def test_pinned_build_is_the_table_build() -> None:
    build = binaries.llama_server_build()
    assert f"b{build.number or build.package_build}" == BUILD


def test_help_lists_exactly_the_committed_options() -> None:
    live = {opt.key: opt for opt in parse_help(binaries.llama_server_help())}
    committed = {opt.key: opt for opt in OPTIONS}
    assert sorted(set(live) - set(committed)) == [], "new options: regenerate the table and classify them"
    assert sorted(set(committed) - set(live)) == [], "options gone from this build: regenerate the table"
    changed = [key for key in live if live[key] != committed[key]]
    assert changed == [], "aliases, values or env names changed: regenerate the table and review their classes"


def test_generator_check_passes() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "llama-server-flags.py"), "--check"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# (argv, whether llama-server b11434 accepts it). `--version` after the argv exits 0 only when everything before it
# parsed: llama.cpp runs each handler as it reads the option.
PARSER_CASES = [
    (["--temp", "-1"], True),
    (["--top_k", "5"], True),
    (["--ctx_size", "5"], True),
    (["--control-vector-layer-range", "1", "2"], True),
    (["-nkvo"], True),
    (["--ctx-size=5"], False),
    (["--temp=0.7"], False),
    (["-ngl99"], False),
    (["-t8"], False),
    (["--temperatur", "0.7"], False),
    (["foo"], False),
    (["--temp", "0.7", "0.9"], False),
]


@pytest.mark.parametrize(("argv", "accepted"), PARSER_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_walk_matches_the_real_parser(argv: list[str], accepted: bool) -> None:
    proc = subprocess.run(
        [str(binaries.llama_server()), *argv, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (proc.returncode == 0) is accepted, proc.stdout + proc.stderr
    problems = extra_args_problems(argv)
    if accepted:
        assert all("is managed" in m or "changes memory" in m for _, m in problems), problems
    else:
        assert problems, "llama-server would exit at start, so extra_args must refuse it"
