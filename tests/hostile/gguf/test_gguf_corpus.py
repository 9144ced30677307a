"""Every crafted GGUF file of `bench.hostile_gguf_cases` through `python -m stack plan --json`, in-process.

Each case asserts the exit code, the key path of the refusal (or of the warning), the text that says what is
wrong, that stdout is one JSON object, and that no traceback reaches the user.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from bench.hostile_gguf_cases import CASES, Case, prepare
from stack.cli import main
from stack.errors import TRACEBACK_ENV


def test_the_corpus_is_large_and_covers_every_class() -> None:
    per_class = Counter(c.kind for c in CASES)
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
    assert set(per_class) >= {"truncation", "huge count", "nesting", "wrong type", "unknown type", "out of range",
                              "missing key", "list-typed", "non-finite", "duplicate", "magic/version", "file kind",
                              "control"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    if case.root_cannot_run and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its permissions")
    monkeypatch.delenv(TRACEBACK_ENV, raising=False)
    config = prepare(case, tmp_path)
    code = main(["plan", "--json", "--config", str(config)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    doc = json.loads(out)
    assert isinstance(doc, dict)
    assert code == case.exit_code, (doc.get("errors"), err)
    if case.exit_code == 1:
        assert [e["key"] for e in doc["errors"]] == [case.key]
        assert case.message in doc["errors"][0]["message"]
    else:
        assert "errors" not in doc
        warnings = [w for w in doc["warnings"] if case.key and w.startswith(f"{case.key}:")]
        assert (case.key is not None) == bool(warnings), doc["warnings"]
        assert all(case.message in w for w in warnings)
