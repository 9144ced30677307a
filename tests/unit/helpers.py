"""Small builders shared by the unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from models import StackConfig, parse_stack_config

REPO = Path(__file__).resolve().parents[2]


def stack(**overrides: Any) -> StackConfig:
    """A valid one-model stack, with top-level keys replaced by `overrides`."""
    raw: dict[str, Any] = {
        "models_dir": "/srv/models",
        "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 8192}},
    }
    raw.update(overrides)
    return parse_stack_config(raw)


def write_stack_file(path: Path, config: dict[str, Any], project: str = "local-llm-stack") -> Path:
    path.write_text(yaml.safe_dump({"config": {f"{project}:{k}": v for k, v in config.items()}}))
    return path
