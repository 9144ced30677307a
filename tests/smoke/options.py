"""Command-line options of the smoke suite.

Registered from `tests/conftest.py`: pytest reads options only from conftests it loads at start-up, and
`tests/conftest.py` is one of them both for `pytest tests/smoke ...` and for a plain `pytest` over all tests
(where the smoke suite is not collected unless `--targets` is given).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SMOKE_DIR = Path(__file__).resolve().parent


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("local-llm-stack smoke", "smoke tests of a deployed stack (tests/smoke)")
    group.addoption(
        "--targets",
        dest="smoke_targets",
        metavar="FILE",
        help="`pulumi stack output --json` of the deployed stack (endpoints, container names, models)",
    )
    group.addoption(
        "--endpoint-host",
        dest="smoke_endpoint_host",
        metavar="HOST",
        help="send HTTP requests to HOST instead of the endpoint URLs' host (e.g. when ports bind 0.0.0.0)",
    )
    group.addoption(
        "--request-timeout",
        dest="smoke_request_timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="per request; a request to a model that is not loaded waits for llama-swap to swap it in (600)",
    )
    group.addoption(
        "--ready-timeout",
        dest="smoke_ready_timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long /health may answer 503 (model loading) or refuse before a service counts as down (120)",
    )
    group.addoption(
        "--tool-call-logit-bias",
        dest="smoke_tool_call_logit_bias",
        metavar="JSON",
        help='{"<model id>": {"<token id>": bias}} sent with the forced tool call; only for test models with '
        "random weights (real models call the tool without it); overrides the targets' smoke.tool_call_logit_bias",
    )
