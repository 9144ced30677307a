"""Run the testinfra smoke suite the way a user does (`pytest tests/smoke --hosts=local:// --targets=...`).

Integration tests run it as a subprocess against deployments they made, and read its JUnit report to
assert which checks passed, failed (with the message naming the service) or were skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_S = 300
KEY_VARIABLES = ("PYTEST_ADDOPTS", "LITELLM_MASTER_KEY", "LLAMA_SWAP_API_KEY")


@dataclass(frozen=True)
class SmokeRun:
    rc: int
    output: str
    passed: list[str]
    failed: dict[str, str]
    skipped: list[str]


def run_smoke_suite(targets: Path, junit: Path, env: Mapping[str, str], *extra: str) -> SmokeRun:
    """`env` adds to this process's environment, minus any keys of ours, so only the deployment's keys count."""
    base = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/smoke", "--hosts=local://", f"--targets={targets}",
         "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-rfEs", *extra],
        cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=SMOKE_TIMEOUT_S, check=False,
    )
    passed: list[str] = []
    skipped: list[str] = []
    failed: dict[str, str] = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            bad = case.find("failure")
            bad = bad if bad is not None else case.find("error")
            if bad is not None:
                failed[name] = (bad.get("message") or "") + "\n" + (bad.text or "")
            elif case.find("skipped") is not None:
                skipped.append(name)
            else:
                passed.append(name)
    return SmokeRun(proc.returncode, proc.stdout + proc.stderr, passed, failed, skipped)
