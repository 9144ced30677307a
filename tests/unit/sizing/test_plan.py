"""`stack.sizing.plan`: the sizing gate over a whole stack. The fixes it suggests are in test_fit.py, `python -m
stack plan`'s exit codes and JSON in tests/unit/test_cli.py."""

from __future__ import annotations

from stack.sizing.plan import build_plan, llama_cpp_build
from stack.units import MIB
from tests.unit.helpers import NOMIC_EMBED, qwen14b, stack


def test_14b_at_32k_q8_fits_beside_the_embedder_on_16gb() -> None:
    """The naive n_layer*2*hidden*ctx rule says 30 GiB of KV; GQA makes it 3264 MiB at q8_0."""
    plan = build_plan(stack(models={"gen": qwen14b(32768)}, embeddings=NOMIC_EMBED))
    assert plan.fits
    gen = plan.processes["gen"]
    assert gen.kv_bytes == 3264 * MIB
    naive_kv = 48 * 2 * 5120 * 32768 * 2
    assert naive_kv > 8 * gen.kv_bytes
    assert plan.scenarios[0].members == ("gen", "embed")
    assert plan.scenarios[0].total_bytes < 16303 * MIB - 768 * MIB


def test_every_scenario_includes_the_always_on_embedder() -> None:
    plan = build_plan(stack(models={"a": qwen14b(4096), "b": qwen14b(8192)}, embeddings=NOMIC_EMBED))
    assert {s.members for s in plan.scenarios} == {("a", "embed"), ("b", "embed")}


def test_llama_cpp_build_from_image_tag() -> None:
    assert llama_cpp_build("ghcr.io/ggml-org/llama.cpp:server-cuda-b11434") == 11434
    assert llama_cpp_build("ghcr.io/mostlygeek/llama-swap:v250-cuda-b9876") == 9876
    assert llama_cpp_build("ghcr.io/ggml-org/llama.cpp:server-cuda") is None
