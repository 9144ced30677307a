"""The sizing gate over a whole stack, and `python -m stack plan`'s exit codes and JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stack.cli import main
from stack.sizing.plan import build_plan, llama_cpp_build
from stack.units import MIB
from tests.unit.helpers import REPO, stack, write_stack_file

EMBED = {"name": "embed", "file": "nomic-embed-text-v1.5.Q8_0.gguf"}


def _fourteen_b(ctx: int, cache: str = "q8_0", parallel: int = 1) -> dict[str, Any]:
    return {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": ctx, "parallel": parallel,
            "cache_type_k": cache, "cache_type_v": cache}


def test_14b_at_32k_q8_fits_beside_the_embedder_on_16gb() -> None:
    """The naive n_layer*2*hidden*ctx rule says 30 GiB of KV; GQA makes it 3264 MiB at q8_0."""
    plan = build_plan(stack(models={"gen": _fourteen_b(32768)}, embeddings=EMBED))
    assert plan.fits
    gen = plan.processes["gen"]
    assert gen.kv_bytes == 3264 * MIB
    naive_kv = 48 * 2 * 5120 * 32768 * 2
    assert naive_kv > 8 * gen.kv_bytes
    assert plan.scenarios[0].members == ("gen", "embed")
    assert plan.scenarios[0].total_bytes < 16303 * MIB - 768 * MIB


def test_over_budget_set_gets_concrete_fixes() -> None:
    cfg = stack(models={"gen": _fourteen_b(131072, cache="f16", parallel=2)}, embeddings=EMBED)
    plan = build_plan(cfg)
    assert not plan.fits
    (scenario,) = plan.scenarios
    fixes = {f.key: f for f in scenario.suggestions if f.model == "gen"}
    ctx_fix = fixes["models.gen.ctx_size"]
    assert ctx_fix.change["ctx_size"] % 256 == 0
    # The suggested ctx fits, and one more step of 256 would not.
    fits = build_plan(stack(models={"gen": {**_fourteen_b(ctx_fix.change["ctx_size"], "f16", 2)}}, embeddings=EMBED))
    assert fits.fits
    over = build_plan(stack(models={"gen": _fourteen_b(ctx_fix.change["ctx_size"] + 512, "f16", 2)},
                            embeddings=EMBED))
    assert not over.fits
    assert fixes["models.gen.cache_type_k"].change["cache_type_k"] == "q8_0"


def test_every_scenario_includes_the_always_on_embedder() -> None:
    plan = build_plan(stack(models={"a": _fourteen_b(4096), "b": _fourteen_b(8192)}, embeddings=EMBED))
    assert {s.members for s in plan.scenarios} == {("a", "embed"), ("b", "embed")}


def test_llama_cpp_build_from_image_tag() -> None:
    assert llama_cpp_build("ghcr.io/ggml-org/llama.cpp:server-cuda-b11434") == 11434
    assert llama_cpp_build("ghcr.io/mostlygeek/llama-swap:v250-cuda-b9876") == 9876
    assert llama_cpp_build("ghcr.io/ggml-org/llama.cpp:server-cuda") is None


def test_plan_exits_0_on_the_default_stack(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(REPO / "Pulumi.dev.yaml")]) == 0
    out = capsys.readouterr().out
    assert "every co-resident set fits" in out
    assert "generator + nomic-embed-text" in out


def test_plan_json_has_the_documented_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(REPO / "Pulumi.dev.yaml"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is True and doc["budget_mib"] == 16303 - 768
    assert set(doc["models"]) == {"classifier", "generator", "chat", "agent", "nomic-embed-text"}
    for m in doc["models"].values():
        fields = {"weights_mib", "kv_mib", "recurrent_mib", "compute_mib", "overhead_mib", "total_mib", "source"}
        assert fields <= set(m)
        parts = m["weights_mib"] + m["kv_mib"] + m["recurrent_mib"] + m["compute_mib"] + m["overhead_mib"]
        assert m["total_mib"] == pytest.approx(parts, abs=0.05)
    assert len(doc["scenarios"]) == 4
    assert all({"members", "total_mib", "fits"} <= set(s) for s in doc["scenarios"])
    containers = {c["container"]: c for c in doc["containers"]}
    assert set(containers) == {"llm-llama-swap", "llm-embeddings"}
    assert containers["llm-llama-swap"]["ports"] == ["127.0.0.1:9292->8080"]
    assert [f["path"] for f in containers["llm-llama-swap"]["files"]] == ["/app/config.yaml"]


def test_plan_exits_1_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.bad.yaml", {
        "models_dir": "/srv/models",
        "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": "lots"}},
    })
    assert main(["plan", "--config", str(f)]) == 1
    assert "models.chat.ctx_size" in capsys.readouterr().err


def test_plan_exits_2_with_a_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_stack_file(tmp_path / "Pulumi.big.yaml", {
        "models_dir": "/srv/models",
        "models": {"gen": _fourteen_b(131072, "f16")},
    })
    assert main(["plan", "--config", str(f), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] is False
    assert doc["scenarios"][0]["suggestions"][0]["key"] == "models.gen.ctx_size"
    assert main(["plan", "--config", str(f)]) == 2
    assert "fix: set models.gen.ctx_size:" in capsys.readouterr().out


def test_readme_command_runs_as_a_module() -> None:
    """`python -m stack plan` from the repository root, as the README says."""
    proc = subprocess.run([sys.executable, "-m", "stack", "plan"], cwd=REPO, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
