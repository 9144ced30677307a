"""Kubernetes placement: which pool runs what, the gate per pool GPU, and the per-pool services and routes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from models import StackConfig, load_stack_file, parse_stack_config
from stack.cli import main
from stack.deployment import build_deployment
from stack.render.paths import CONTAINER_PATHS
from stack.sizing.placement import place, pool_view
from stack.sizing.plan import build_plan
from stack.units import MIB
from tests.unit.helpers import REPO

EXAMPLE = REPO / "Pulumi.k8s.yaml"
UNPLACED = REPO / "tests/hostile/stacks/k8s_unplaced_model_does_not_fit.yaml"
EMBED = {"name": "embed", "file": "nomic-embed-text-v1.5.Q8_0.gguf"}
POOLS = {"small": {"gpu": {"profile": "rtx-5080"}}, "big": {"gpu": {"profile": "rtx-4090"}}}


def _model(file: str, ctx: int = 8192, **extra: Any) -> dict[str, Any]:
    return {"file": file, "ctx_size": ctx, **extra}


MODELS = {
    "a": _model("Qwen2.5-7B-Instruct-Q4_K_M.gguf", aliases=["alpha"]),
    "b": _model("Qwen2.5-7B-Instruct-Q5_K_M.gguf"),
    "c": _model("Qwen2.5-3B-Instruct-Q5_K_M.gguf"),
    "g": _model("Qwen2.5-14B-Instruct-Q4_K_M.gguf", 65536, parallel=4, cache_type_k="q8_0", cache_type_v="q8_0"),
}


def k8s(placement: dict[str, str], litellm: bool = False, **top: Any) -> StackConfig:
    raw: dict[str, Any] = {
        "target": "kubernetes", "models_dir": "/srv/models", "models": MODELS,
        "groups": {"pair": {"swap": False, "members": ["a", "b"]}}, "embeddings": EMBED,
        "litellm": {"enabled": litellm},
        "kubernetes": {"pools": POOLS, "placement": placement},
    }
    raw.update(top)
    return parse_stack_config(raw, frozenset({"litellm_master_key"}) if litellm else frozenset())


def test_unplaced_go_to_the_first_pool_and_groups_move_together() -> None:
    p = place(k8s({"pair": "big"}, litellm=True))
    assert p.pools == ("small", "big")
    assert dict(p.models) == {"a": "big", "b": "big", "c": "small", "g": "small"}
    assert p.embeddings == "small" and p.litellm == "small"
    assert p.models_on("big") == ("a", "b") and p.gpu_pools() == ("small", "big")


def test_services_off_have_no_pool() -> None:
    p = place(k8s({}, embeddings={**EMBED, "enabled": False}))
    assert p.embeddings is None and p.litellm is None


def test_pool_view_holds_that_pool_only() -> None:
    cfg = k8s({"pair": "big", "embeddings": "small"})
    p = place(cfg)
    big = pool_view(cfg, p, "big", with_embedding=False)
    assert set(big.models) == {"a", "b"} and set(big.explicit_groups) == {"pair"}
    assert big.gpu.profile == "rtx-4090" and big.embedding is None
    assert pool_view(cfg, p, "big", with_embedding=True).embedding is not None
    small = pool_view(cfg, p, "small", with_embedding=False)
    assert set(small.models) == {"c", "g"} and small.explicit_groups == {} and small.embedding is not None


def test_pool_view_restricts_matrix_sets() -> None:
    cfg = k8s({"a": "big", "b": "big"}, groups={}, matrix={"sets": {"s1": ["a", "c"], "s2": ["c", "g"]}})
    small = pool_view(cfg, place(cfg), "small", with_embedding=False)
    assert small.matrix is not None and small.matrix.sets == {"s1": ["c"], "s2": ["c", "g"]}
    big = pool_view(cfg, place(cfg), "big", with_embedding=False)
    assert big.matrix is not None and big.matrix.sets == {"s1": ["a"]}


def test_example_fits_only_split_across_both_pools() -> None:
    plan = build_plan(load_stack_file(EXAMPLE).config)
    assert plan.fits
    by_pool = {s.pool: s for s in plan.scenarios}
    assert set(by_pool) == {"rtx5080", "rtx4090"}
    assert by_pool["rtx5080"].members == ("agent", "chat", "classifier", "nomic-embed-text")
    assert by_pool["rtx4090"].members == ("generator",)
    assert by_pool["rtx5080"].budget_bytes == (16303 - 768) * MIB
    assert by_pool["rtx4090"].budget_bytes == (24564 - 768) * MIB
    both = by_pool["rtx5080"].total_bytes + by_pool["rtx4090"].total_bytes
    assert both > by_pool["rtx4090"].budget_bytes, "the example must not fit on the larger GPU alone"
    assert plan.processes["generator"].overhead_bytes == 450 * MIB, "sized with its own pool's GPU profile"


def test_unplaced_model_on_the_small_pool_is_refused_with_the_usual_fixes() -> None:
    plan = build_plan(load_stack_file(UNPLACED).config)
    assert not plan.fits
    (bad,) = [s for s in plan.scenarios if not s.fits]
    assert bad.pool == "rtx5080" and bad.members == ("generator", "nomic-embed-text")
    assert any(f.text.startswith("set models.generator.ctx_size:") for f in bad.suggestions)
    moves = {f.text: f for f in bad.suggestions if f.key.startswith("kubernetes.placement.")}
    assert set(moves) == {"set kubernetes.placement.generator: rtx4090", "set kubernetes.placement.embeddings: rtx4090"}
    generator = moves["set kubernetes.placement.generator: rtx4090"]
    assert generator.change == {"pool": "rtx4090"}
    assert generator.total_mib == round(plan.processes["generator"].total_bytes / MIB - 50, 2), \
        "resized for the 4090's 450 MiB overhead, not the 5080's 500"


def test_no_move_is_suggested_where_no_pool_has_room() -> None:
    huge = {**MODELS["g"], "ctx_size": 131072, "cache_type_k": "f16", "cache_type_v": "f16"}
    plan = build_plan(k8s({"g": "big"}, models={**MODELS, "g": huge}))
    (bad,) = [s for s in plan.scenarios if not s.fits]
    assert bad.pool == "big" and bad.suggestions
    assert not [f for f in bad.suggestions if f.key.startswith("kubernetes.placement.")]


def test_embedder_counts_only_on_its_own_pool() -> None:
    plan = build_plan(k8s({"pair": "big", "embeddings": "big"}))
    for s in plan.scenarios:
        assert ("embed" in s.members) == (s.pool == "big")


def test_pool_with_only_the_embedder_is_checked() -> None:
    plan = build_plan(k8s({"pair": "small", "g": "small", "c": "small", "embeddings": "big"}))
    assert [s.members for s in plan.scenarios if s.pool == "big"] == [("embed",)]


def test_auto_groups_run_per_pool_and_sets_stay_within_a_pool() -> None:
    cfg = k8s({"g": "big"}, groups="auto")
    plan = build_plan(cfg)
    assert plan.fits and plan.config.matrix is not None
    pools = {m: p for m, p in place(plan.config).models.items()}
    for members in plan.config.matrix.sets.values():
        assert len({pools[m] for m in members}) == 1
    assert any(line.startswith("pool small: groups: auto") for line in plan.grouping)
    assert any(line.startswith("pool big: groups: auto") for line in plan.grouping)
    assert len(plan.config.matrix.sets) == len(set(plan.config.matrix.sets))


def test_plan_json_placement_only_on_kubernetes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(EXAMPLE), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gpu"] is None and doc["budget_mib"] is None
    small, big = doc["placement"]["rtx5080"], doc["placement"]["rtx4090"]
    assert small["models"] == ["agent", "chat", "classifier"] and small["embeddings"] == "nomic-embed-text"
    assert big["models"] == ["generator"] and big["embeddings"] is None and big["budget_mib"] == 24564 - 768
    assert 0 < small["headroom_mib"] < big["headroom_mib"]
    assert {s["pool"] for s in doc["scenarios"]} == {"rtx5080", "rtx4090"}
    assert main(["plan", "--config", str(REPO / "Pulumi.dev.yaml"), "--json"]) == 0
    docker = json.loads(capsys.readouterr().out)
    assert "placement" not in docker and all("pool" not in s for s in docker["scenarios"])


def test_plan_text_shows_each_pool(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "pool rtx5080: NVIDIA GeForce RTX 5080 16 GB" in out and "pool rtx4090: NVIDIA GeForce RTX 4090" in out
    assert "runs llama-swap-rtx4090: generator" in out
    assert "Verdict: every co-resident set fits its pool's GPU." in out
    assert "(GPU; pool rtx4090; in-cluster Service llama-swap-rtx4090:8080, no key)" in out
    assert "exposure 127.0.0.1" not in out, "nothing is published on a host on kubernetes"
    assert main(["plan", "--config", str(UNPLACED)]) == 2
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_one_llama_swap_per_pool_serving_only_its_models() -> None:
    cfg = k8s({"pair": "big", "g": "big", "litellm": "big"}, litellm=True)
    dep = build_deployment(build_plan(cfg), frozenset({"litellm_master_key"}))
    keys = [s.key for s in dep.services]
    assert keys == ["llama-swap-small", "llama-swap-big", "embeddings", "litellm"]
    assert dict(dep.placement) == {"llama-swap-small": "small", "llama-swap-big": "big", "embeddings": "small",
                                   "litellm": "big"}
    for key, served in (("llama-swap-small", {"c"}), ("llama-swap-big", {"a", "b", "g"})):
        spec = dep.service(key).spec
        assert spec.name == f"llm-{key}" and spec.gpu and spec.networks[0].aliases == (key,)
        doc = yaml.safe_load(spec.uploads[0].content)
        assert set(doc["models"]) == served
        assert doc["peers"]["embeddings"]["proxy"] == CONTAINER_PATHS.embedding_url
    assert "pair" in yaml.safe_load(dep.service("llama-swap-big").spec.uploads[0].content)["groups"]
    assert dep.service("litellm").after == ("llama-swap-small", "llama-swap-big", "embeddings")
    assert set(dep.outputs(None)["models"]["llama_swap"]) == {"a", "b", "c", "g"}


def test_litellm_routes_each_name_to_its_pools_service() -> None:
    cfg = k8s({"pair": "big"}, litellm=True)
    dep = build_deployment(build_plan(cfg), frozenset({"litellm_master_key"}))
    doc = yaml.safe_load(dep.service("litellm").spec.uploads[0].content)
    bases = {e["model_name"]: e["litellm_params"]["api_base"] for e in doc["model_list"]}
    assert bases["a"] == bases["alpha"] == bases["b"] == "http://llama-swap-big:8080/v1"
    assert bases["c"] == bases["g"] == "http://llama-swap-small:8080/v1"
    assert bases["embed"] == f"{CONTAINER_PATHS.embedding_url}/v1"


def test_pool_without_models_gets_no_llama_swap() -> None:
    cfg = k8s({"pair": "small", "g": "small", "c": "small", "embeddings": "big"})
    dep = build_deployment(build_plan(cfg), frozenset())
    assert [s.key for s in dep.services] == ["llama-swap-small", "embeddings"]
    assert dep.placement["embeddings"] == "big"


def test_docker_deployment_has_no_placement() -> None:
    dep = build_deployment(build_plan(load_stack_file(REPO / "Pulumi.dev.yaml").config), frozenset())
    assert dep.placement == {} and [s.key for s in dep.services] == ["llama-swap", "embeddings"]
