"""Values the schema used to accept silently: absurd sizes, unparseable ttls, system directories as models_dir,
duplicate YAML keys. Each is refused naming its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from models.load import ConfigError, load_stack_file, parse_stack_config
from stack.sizing.plan import build_plan

CHAT: dict[str, Any] = {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}


def _refused(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse_stack_config({"models_dir": "/srv/models", "models": {"chat": CHAT}, **raw})
    return [key for key, _ in refused.value.problems]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"gpu": {"vram_mib": 10**23}}, "gpu.vram_mib"),
        ({"gpu": {"overhead_mib": 2**21}}, "gpu.overhead_mib"),
        ({"models": {"chat": {**CHAT, "ttl": 10**12}}}, "models.chat.ttl"),
        ({"models": {"chat": {**CHAT, "mmproj": {"file": "p.gguf", "weights_mib": float("inf")}}}},
         "models.chat.mmproj.weights_mib"),
        ({"models": {"chat": {**CHAT, "arch": {"n_layer": 2, "n_embd": 8, "n_head": 2, "n_head_kv": 2,
                                               "head_dim": 4, "n_ff": 8, "n_vocab": 8,
                                               "weights_mib": float("nan")}}}},
         "models.chat.arch.weights_mib"),
    ],
    ids=["vram-1e23", "overhead-2TiB", "ttl-huge", "mmproj-inf", "arch-nan"],
)
def test_absurd_figures_are_refused(raw: dict[str, Any], key: str) -> None:
    assert key in _refused(raw)


@pytest.mark.parametrize("models_dir", ["/", "/var/run", "/etc", "/proc", "/srv/models/../../etc", "/srv/../models"])
def test_system_directories_and_dotdot_are_refused_as_models_dir(models_dir: str) -> None:
    assert _refused({"models_dir": models_dir}) == ["models_dir"]


def test_duplicate_yaml_keys_are_refused_with_the_line(tmp_path: Path) -> None:
    f = tmp_path / "Pulumi.dup.yaml"
    f.write_text(
        "config:\n"
        "  local-llm-stack:models_dir: /srv/models\n"
        "  local-llm-stack:models:\n"
        "    chat: {file: a.gguf, ctx_size: 2048}\n"
        "    chat: {file: b.gguf, ctx_size: 4096}\n"
    )
    with pytest.raises(ConfigError) as refused:
        load_stack_file(f)
    [(key, message)] = refused.value.problems
    assert key == str(f) and "duplicate key 'chat'" in message and "line 5" in message


ODD_HEADS = {"n_layer": 2, "n_embd": 40, "n_head": 2, "n_head_kv": 1, "head_dim": 20, "n_ff": 64, "n_vocab": 100,
             "weights_mib": 1}


@pytest.mark.parametrize(("which", "types"), [("k", ("q8_0", "f16")), ("v", ("f16", "q8_0"))])
def test_quantized_cache_on_rows_it_cannot_hold_names_the_cache_key(which: str, types: tuple[str, str]) -> None:
    """20-value rows and a 32-value q8_0 block: llama.cpp refuses such a cache, so the gate refuses it too."""
    model = {"file": "odd.gguf", "ctx_size": 1024, "arch": ODD_HEADS, "cache_type_k": types[0],
             "cache_type_v": types[1]}
    cfg = parse_stack_config({"models_dir": "/srv/models", "models": {"odd": model}})
    with pytest.raises(ConfigError) as refused:
        build_plan(cfg)
    [(key, message)] = refused.value.problems
    assert key == f"models.odd.cache_type_{which}"
    assert "divisible by 32" in message and "use f16" in message


@pytest.mark.parametrize(("count", "groups", "key"), [(17, "auto", "groups"), (21, {}, "models")])
def test_more_models_than_the_residency_search_explores_is_a_refusal(count: int, groups: Any, key: str) -> None:
    models = {f"m{i}": CHAT for i in range(count)}
    cfg = parse_stack_config({"models_dir": "/srv/models", "models": models, "groups": groups})
    with pytest.raises(ConfigError) as refused:
        build_plan(cfg)
    assert [k for k, _ in refused.value.problems] == [key]
