"""Test-suite-wide hooks: the smoke suite's options, and keeping that suite out of runs that give no targets.

`tests/smoke` checks a deployed stack and needs `--targets`; a plain `pytest` (unit + integration) does not
collect it at all. CI runs it through `tests/integration/test_smoke_loopback.py`, against a loopback deployment.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.smoke.options import SMOKE_DIR, add_options

# No test reads a model source from the network: Pulumi.dev.yaml declares Hugging Face sources. Tests that serve
# sources on 127.0.0.1 (tests/integration/test_model_sources.py) clear it for the commands they run.
os.environ["LLS_OFFLINE"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path == SMOKE_DIR and not config.getoption("smoke_targets"):
        return True
    return None
