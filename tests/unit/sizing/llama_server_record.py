"""The buffers the real llama-server b11434 printed for every case of bench/sizing_panel.py, as recorded in
tests/data/sizing/b11434-cpu.json by `python -m bench.sizing_benchmark`; replayed by the sizing tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.sizing_panel import Setting, layouts

RECORD = Path(__file__).resolve().parents[2] / "data" / "sizing" / "b11434-cpu.json"

CASES: list[dict[str, Any]] = json.loads(RECORD.read_text())["cases"]


def case_id(case: dict[str, Any]) -> str:
    return f"{case['layout']}[{Setting(**case['setting']).label}]"


def layout_fixture(layout_key: str) -> Path:
    """The layout's GGUF file, built on first use; skips when its source package is not installed here."""
    try:
        return layouts()[layout_key].build()
    except RuntimeError as exc:  # the MiniLM source package is not installed here
        pytest.skip(str(exc))
