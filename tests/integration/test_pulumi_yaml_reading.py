"""`plan` reads a stack file's scalars as the real Pulumi CLI does, so both accept and refuse the same file.

Pulumi reads `Pulumi.<stack>.yaml` with Go's yaml.v3 and hands the program JSON. For every tricky unquoted scalar
below, `models.load`'s loader must agree with `pulumi config --json` on whether it is text (and on the text). Where
they differ on purpose, `plan` is the stricter one: an unquoted date is a date to `plan` (refused where text is
meant) but the text `2024-01-01 00:00:00 +0000 UTC` to Pulumi. (`.inf` is left out: Pulumi refuses the whole
file, it cannot write infinity as JSON; `plan` refuses it at its key.)
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
import yaml

from models.load import _UniqueKeyLoader
from tests.harness import binaries

pytestmark = pytest.mark.integration

SCALARS = ["1e3", "0o17", "09", "017", "-.5", "1.e5", "0x1F", "1_000", "+1", "12", "1.5", "yes", "No",
           "on", "OFF", "y", "n", "1:30", "true", "False", "null", "~", "0.0.0.0:8080", "-config", "7b", "=", "é"]


@pytest.fixture(scope="module")
def pulumi_reading(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`pulumi config --json` of a stack whose `probe:values` list holds every scalar unquoted."""
    pulumi = binaries.require(binaries.pulumi)
    d = tmp_path_factory.mktemp("pulumi-yaml")
    (d / "state").mkdir()
    (d / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (d / "Pulumi.t.yaml").write_text(f"config:\n  probe:values: [{', '.join(SCALARS)}]\n", encoding="utf-8")
    env = {**os.environ, "PULUMI_HOME": str(d / "home"), "PULUMI_CONFIG_PASSPHRASE": "probe",
           "PULUMI_SKIP_UPDATE_CHECK": "1", "PULUMI_BACKEND_URL": f"file://{d / 'state'}"}

    def run(*args: str) -> str:
        proc = subprocess.run([str(pulumi), *args], cwd=d, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    run("stack", "init", "t", "--non-interactive")
    values = json.loads(run("config", "--json", "-s", "t"))["probe:values"]["objectValue"]
    return dict(zip(SCALARS, values, strict=True))


@pytest.mark.parametrize("scalar", SCALARS)
def test_plan_and_pulumi_agree_on_what_is_text(scalar: str, pulumi_reading: dict[str, Any]) -> None:
    ours = yaml.load(f"v: {scalar}", Loader=_UniqueKeyLoader)["v"]
    theirs = pulumi_reading[scalar]
    assert isinstance(ours, str) == isinstance(theirs, str), (ours, theirs)
    if isinstance(ours, str):
        assert ours == theirs
    elif theirs is not None and not isinstance(theirs, bool):
        assert float(ours) == float(theirs) or (ours != ours and theirs != theirs)
    else:
        assert ours == theirs
