"""Generated configs are accepted by the programs that read them.

LiteLLM: the real `litellm --validate_config` (litellm[proxy] 1.106.12, offline with
`LITELLM_LOCAL_MODEL_COST_MAP=True`, ~11 s each, so all run at once) must report exactly the number of
deployments we rendered, for every `Pulumi.*.yaml` in the repo (rendered with LiteLLM enabled even where the
stack has it off) and for a stack with cloud fallbacks; a broken config must be refused.

llama-swap: loading the generated config in the real llama-swap is not possible here: llama-swap cannot be
installed on this machine (the Go module proxy answers 403 for github.com/mostlygeek/llama-swap and no other
registry has it), and v250 has no `-validate` flag. Instead every generated config is checked against the
documented facts of v250's loader (`tests/harness/llama_swap_v250.py`), and a test shows those checks refuse
broken configs. The loopback smoke test (`test_smoke_loopback.py`) additionally runs each rendered model `cmd`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.config import StackConfig
from models.load import load_stack_file, parse_stack_config
from stack.header_sources import LocalHeaders
from stack.litellm_config import embedding_names, llama_swap_names, render_litellm_config
from stack.llama_swap_config import render_llama_swap_config
from stack.plan import build_plan
from tests.harness import binaries
from tests.harness.llama_swap_v250 import check_llama_swap_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STACK_FILES = sorted(REPO.glob("Pulumi.*.yaml"))
VALIDATE_TIMEOUT_S = 180

# Every renderer branch the repo stacks leave out: cloud fallbacks (chat and embedding), embedding aliases,
# a persistent non-swapping group beside a swap group.
RICH_STACK: dict[str, Any] = {
    "models_dir": "/nonexistent/local-llm-stack-models",
    "gpu": {"profile": "h100-80gb"},
    "models": {
        "small": {"file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf", "ctx_size": 4096, "aliases": ["classify"]},
        "chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 8192, "jinja": True,
                 "aliases": ["chatbot", "assistant"]},
        "big": {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 8192, "cache_type_k": "q8_0",
                "cache_type_v": "q8_0"},
    },
    "groups": {
        "resident": {"swap": False, "exclusive": False, "persistent": True, "members": ["small"]},
        "main": {"members": ["chat", "big"]},
    },
    "embeddings": {"name": "nomic-embed-text", "aliases": ["embed"], "file": "nomic-embed-text-v1.5.Q8_0.gguf",
                   "pooling": "mean"},
    "litellm": {
        "enabled": True,
        "fallbacks": [
            {"name": "cloud-chat", "model": "openai/gpt-4o-mini", "api_key_secret": "openai_api_key",
             "fallback_for": ["chat", "big"]},
            {"name": "cloud-embed", "model": "openai/text-embedding-3-small", "api_key_secret": "openai_api_key",
             "fallback_for": ["nomic-embed-text"]},
        ],
    },
}


def _with_litellm(cfg: StackConfig) -> StackConfig:
    return cfg.model_copy(update={"litellm": cfg.litellm.model_copy(update={"enabled": True})})


def _stacks() -> dict[str, StackConfig]:
    """Each stack as deployed: the plan's config (with `groups: auto` resolved into a matrix)."""
    raw = {p.name: load_stack_file(p).config for p in STACK_FILES}
    raw["rich-stack"] = parse_stack_config(RICH_STACK, frozenset({"litellm_master_key", "openai_api_key"}))
    out = {}
    for name, cfg in raw.items():
        plan = build_plan(cfg, LocalHeaders(Path(cfg.models_dir)))
        assert plan.fits, f"{name} does not fit"
        out[name] = _with_litellm(plan.config)
    return out


STACKS = _stacks()


def expected_deployments(cfg: StackConfig) -> int:
    return len(llama_swap_names(cfg)) + len(embedding_names(cfg)) + len(cfg.litellm.fallbacks)


def _break_litellm(text: str) -> str:
    """The first deployment loses `litellm_params.model`: LiteLLM's documented hard error."""
    doc = yaml.safe_load(text)
    del doc["model_list"][0]["litellm_params"]["model"]
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass(frozen=True)
class Validation:
    rc: int
    output: str

    @property
    def models(self) -> int | None:
        m = re.search(r"config OK \((\d+) models?\)", self.output)
        return int(m.group(1)) if m else None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def validations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Validation]:
    """`litellm --validate_config` for every stack plus one broken config, run in parallel (CPU-bound imports)."""
    tmp = tmp_path_factory.mktemp("litellm-validate")
    configs = {name: render_litellm_config(cfg, api_key_enabled=True) for name, cfg in STACKS.items()}
    configs["broken"] = _break_litellm(configs["rich-stack"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITELLM_")}
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION"}
    procs = {}
    for name, text in configs.items():
        path = tmp / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        procs[name] = subprocess.Popen(
            [str(binaries.litellm()), "--validate_config", "--config", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp,
        )
    results = {}
    try:
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=VALIDATE_TIMEOUT_S)
            results[name] = Validation(proc.returncode, _ANSI.sub("", out))
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_litellm_accepts_the_generated_config(stack: str, validations: dict[str, Validation]) -> None:
    v = validations[stack]
    assert v.rc == 0, v.output[-2000:]
    assert v.models == expected_deployments(STACKS[stack]), v.output[-2000:]


def test_litellm_refuses_a_broken_config(validations: dict[str, Validation]) -> None:
    v = validations["broken"]
    assert v.rc == 1, v.output[-2000:]
    assert "config validation failed: 'model'" in v.output


@pytest.mark.parametrize("api_key", [True, False], ids=["api-key", "no-api-key"])
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_llama_swap_config_matches_v250(stack: str, api_key: bool) -> None:
    text = render_llama_swap_config(STACKS[stack], api_key_enabled=api_key)
    assert check_llama_swap_config(text) == []
    doc = yaml.safe_load(text)
    cfg = STACKS[stack]
    assert sorted(doc["models"]) == sorted(cfg.models)
    assert ("apiKeys" in doc) is api_key
    assert ("matrix" in doc) is (cfg.matrix is not None)


def _mutations() -> dict[str, tuple[Callable[[dict[str, Any]], None], str]]:
    """A broken variant of a rendered config each, and the key path its problem must name."""

    def first(doc: dict[str, Any]) -> dict[str, Any]:
        return dict(doc["models"][sorted(doc["models"])[0]])

    def set_first(doc: dict[str, Any], **kw: Any) -> None:
        mid = sorted(doc["models"])[0]
        doc["models"][mid] = {**first(doc), **kw}

    return {
        "typo-key": (lambda d: set_first(d, tll=60), "models.big.tll"),
        "fixed-port": (lambda d: set_first(d, cmd=first(d)["cmd"].replace("${PORT}", "8080")), "models.big.cmd"),
        "unknown-macro": (lambda d: set_first(d, cmd=first(d)["cmd"] + " --x ${NOPE}"), "models.big.cmd"),
        "short-timeout": (lambda d: d.update(healthCheckTimeout=10), "healthCheckTimeout"),
        "alias-as-member": (lambda d: d["groups"]["main"]["members"].append("chatbot"), "groups.main.members"),
        "member-twice": (lambda d: d["groups"]["main"]["members"].append("small"), "groups.resident.members"),
        "duplicate-alias": (lambda d: set_first(d, aliases=["chatbot"]), "models.chat.aliases"),
        "alias-is-id": (lambda d: set_first(d, aliases=["small"]), "models.big.aliases"),
        "groups-and-matrix": (lambda d: d.update(matrix={"sets": {"a": "chat & big"}}), "groups, matrix"),
        "spaced-api-key": (lambda d: d.update(apiKeys=["a key"]), "apiKeys"),
        "peer-shadowed": (lambda d: d["peers"]["embeddings"]["models"].append("chat"), "peers.embeddings.models"),
        "top-level-typo": (lambda d: d.update(healthcheckTimeout=300), "(top level).healthcheckTimeout"),
    }


@pytest.mark.parametrize("mutation", sorted(_mutations()))
def test_v250_checks_refuse_broken_configs(mutation: str) -> None:
    change, key_path = _mutations()[mutation]
    # Without the api key: a plain yaml.safe_dump would unquote the `${env...}` scalars (a problem of its own).
    doc = yaml.safe_load(render_llama_swap_config(STACKS["rich-stack"], api_key_enabled=False))
    change(doc)
    problems = check_llama_swap_config(yaml.safe_dump(doc, sort_keys=False))
    assert any(p.startswith(key_path) for p in problems), problems


def test_v250_checks_refuse_a_bad_matrix() -> None:
    doc = yaml.safe_load(render_llama_swap_config(STACKS["Pulumi.auto.yaml"], api_key_enabled=False))
    first_set = next(iter(doc["matrix"]["sets"]))
    doc["matrix"]["sets"][first_set] += " & ghost"
    doc["matrix"]["sets"]["broken"] = "chat & | agent"
    problems = check_llama_swap_config(yaml.safe_dump(doc, sort_keys=False))
    assert any(p.startswith(f"matrix.sets.{first_set}: 'ghost'") for p in problems), problems
    assert any(p.startswith("matrix.sets.broken:") for p in problems), problems


def test_v250_checks_refuse_an_unquoted_env_macro() -> None:
    text = render_llama_swap_config(STACKS["rich-stack"], api_key_enabled=True)
    assert '"${env.LLAMA_SWAP_API_KEY}"' in text
    problems = check_llama_swap_config(text.replace('"${env.LLAMA_SWAP_API_KEY}"', "${env.LLAMA_SWAP_API_KEY}"))
    assert any("outside a double-quoted scalar" in p for p in problems), problems
