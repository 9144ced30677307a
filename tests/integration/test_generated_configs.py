"""Generated configs are accepted by the programs that read them, and broken ones are refused.

LiteLLM: the real `litellm --validate_config` (litellm[proxy] 1.106.12, offline with
`LITELLM_LOCAL_MODEL_COST_MAP=True`, ~11 s each, so all run at once) must report exactly the number of
deployments we rendered, for every `Pulumi.*.yaml` in the repo (rendered with LiteLLM enabled even where the
stack has it off) and for a stack with cloud fallbacks; a broken config must be refused.

llama-swap: the real llama-swap v250 (built from source, `binaries.llama_swap()`) loads each generated config
exactly as the container does, `llama-swap -config <file> -listen 127.0.0.1:<port>` with `LLAMA_SWAP_API_KEY` in
its environment (v250 has no validate flag; it loads the config without starting any model): every repo stack,
the rich stack below and the render samples of the unit tests (`tests/unit/render_samples.py`), with and without
the `api_key` secret. Its `/v1/models` must list exactly the model ids with their aliases and the embedding peer
names the stack outputs promise (`stack.render.outputs.llama_swap_answers` and `embedding_answers`, the `models`
output of `stack.deployment.Deployment.outputs`), and it must refuse requests without the key when
one is configured. Broken variants of a generated config must make it exit 1 with its own error message.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.local import LOOPBACK
from models.config import StackConfig
from models.load import load_stack_file, parse_stack_config
from stack.gguf.sources import LocalHeaders
from stack.render.litellm import embedding_names, llama_swap_names, render_litellm_config
from stack.render.llama_swap import LLAMA_SWAP_API_KEY_ENV, llama_swap_argv, render_llama_swap_config
from stack.render.outputs import embedding_answers, llama_swap_answers
from stack.render.paths import RenderPaths
from stack.sizing.plan import build_plan
from tests.harness import binaries
from tests.harness.llama_server import http_request
from tests.harness.loopback import Process, free_ports, start_process
from tests.unit import render_samples

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


# --- llama-swap ---------------------------------------------------------------------------------------------------

LLAMA_SWAP_LOAD_TIMEOUT_S = 30
SWAP_KEY = 'sk-a"b\\c:#d' + "0" * 24
"""The `api_key` value llama-swap gets: a double quote and a backslash survive its text-level `${env.…}` expansion
only inside the double-quoted scalars the renderer writes; a space would be refused (`apiKeys` values)."""


def _render_sample(**overrides: Any) -> StackConfig:
    return render_samples.config(**overrides)


def _swap_stacks() -> dict[str, StackConfig]:
    """Every stack file and rich stack as deployed, plus the unit tests' render samples: each groups shape the
    renderer emits (a swap group, a persistent non-swap group beside a swap group, no groups, a matrix with
    eviction costs), a stack without embeddings and a CPU stack."""
    samples = {
        "sample": _render_sample(),
        "sample-persistent-group": _render_sample(groups={
            "big": {"members": ["chat"], "swap": True, "exclusive": False, "persistent": True},
            "rest": {"members": ["small"]},
        }),
        "sample-ungrouped": _render_sample(groups={}),
        "sample-matrix": _render_sample(groups={}, matrix={"sets": {"big": ["small", "chat"], "one": ["chat"]},
                                                           "evict_costs": {"chat": 5}}),
        "sample-no-embeddings": _render_sample(embeddings=None),
        "sample-cpu": _render_sample(gpu={"profile": "cpu"}),
    }
    return {**STACKS, **{f"render-{name}": cfg for name, cfg in samples.items()}}


SWAP_STACKS = _swap_stacks()


@dataclass(frozen=True)
class SwapLoad:
    """What llama-swap did with one config: `rc` None while it was up and serving (then stopped by us)."""

    rc: int | None
    output: str
    listing: dict[str, list[str]]
    """`/v1/models`, record id → `meta.llamaswap.aliases` (empty when it did not come up)."""
    anonymous_status: int | None
    """HTTP status of `/v1/models` without a key."""
    probed: Any = None
    """What `probe` returned while llama-swap was up (None without a probe)."""


def _listing(data: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rec in data["data"]:
        meta = (rec.get("meta") or {}).get("llamaswap") or {}
        out[str(rec["id"])] = sorted(meta.get("aliases") or [])
    return out


def load_in_llama_swap(
    configs: dict[str, tuple[str, dict[str, str]]], tmp: Path,
    probe: Callable[[str, dict[str, str]], Any] | None = None,
) -> dict[str, SwapLoad]:
    """Start llama-swap on each (config text, environment) at once, the way its container starts it; wait until it
    answers `/health` or exits; read `/v1/models` (with the key, and without), call `probe(url, auth headers)` if
    given, and stop it."""
    binary = str(binaries.require(binaries.llama_swap))
    ports = free_ports(len(configs))
    started: dict[str, tuple[Process, int, dict[str, str]]] = {}
    base = {k: v for k, v in os.environ.items() if k != LLAMA_SWAP_API_KEY_ENV}
    results: dict[str, SwapLoad] = {}
    try:
        for (name, (text, env)), port in zip(sorted(configs.items()), ports, strict=True):
            path = tmp / f"{name}.yaml"
            path.write_text(text, encoding="utf-8")
            paths = RenderPaths(llama_swap_bin=binary, llama_swap_config=str(path),
                                llama_swap_listen_host=LOOPBACK, llama_swap_port=port)
            proc = start_process(name, llama_swap_argv(paths), {**base, **env}, tmp / f"{name}.log", tmp)
            started[name] = (proc, port, env)
        deadline = time.monotonic() + LLAMA_SWAP_LOAD_TIMEOUT_S
        for name, (proc, port, env) in started.items():
            url = f"http://{LOOPBACK}:{port}"
            while proc.running() and time.monotonic() < deadline:
                try:
                    if http_request("GET", f"{url}/health", timeout=2).status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
            if not proc.running():
                results[name] = SwapLoad(proc.proc.returncode, proc.log_tail(), {}, None)
                continue
            key = env.get(LLAMA_SWAP_API_KEY_ENV)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            r = http_request("GET", f"{url}/v1/models", headers=headers, timeout=10)
            assert r.status == 200, f"{name}: /v1/models answered {r.status}: {r.body[:300]!r}\n{proc.log_tail()}"
            anonymous = http_request("GET", f"{url}/v1/models", timeout=10).status
            probed = probe(url, headers) if probe is not None else None
            results[name] = SwapLoad(None, proc.log_tail(), _listing(r.json()), anonymous, probed)
    finally:
        for proc, _, _ in started.values():
            proc.stop()
    return results


@pytest.fixture(scope="module")
def swap_loads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SwapLoad]:
    """Every stack with and without the api key, in one batch (each load takes about a second, mostly waiting)."""
    configs = {
        f"{stack}-{'api-key' if key else 'no-api-key'}": (
            render_llama_swap_config(cfg, api_key_enabled=key),
            {LLAMA_SWAP_API_KEY_ENV: SWAP_KEY} if key else {},
        )
        for stack, cfg in SWAP_STACKS.items()
        for key in (True, False)
    }
    return load_in_llama_swap(configs, tmp_path_factory.mktemp("llama-swap-load"))


def expected_listing(cfg: StackConfig) -> dict[str, list[str]]:
    """What the stack outputs say llama-swap lists: each model id with its aliases, each embedding peer id (the
    `llama_swap` and `embedding` entries of the `models` output)."""
    out = {mid: list(m["aliases"]) for mid, m in llama_swap_answers(cfg).items()}
    if cfg.embedding is not None:
        out |= {fqn: [] for fqn in embedding_answers(cfg, None)["llama_swap_ids"]}
    return out


@pytest.mark.parametrize("api_key", [True, False], ids=["api-key", "no-api-key"])
@pytest.mark.parametrize("stack", sorted(SWAP_STACKS))
def test_llama_swap_loads_the_generated_config(stack: str, api_key: bool, swap_loads: dict[str, SwapLoad]) -> None:
    load = swap_loads[f"{stack}-{'api-key' if api_key else 'no-api-key'}"]
    assert load.rc is None, f"llama-swap exited with {load.rc}:\n{load.output}"
    assert load.listing == expected_listing(SWAP_STACKS[stack])
    assert load.anonymous_status == (401 if api_key else 200)


def _broken_variants() -> dict[str, tuple[str, dict[str, str], str | re.Pattern[str]]]:
    """Broken variants of generated configs: (text, environment, the message llama-swap must exit with).

    Each is changed as text, so the rendered `"${env.…}"` scalars stay as they were. A pattern where the message
    names what v250 found first while iterating a Go map (no fixed order)."""
    rich = render_llama_swap_config(STACKS["rich-stack"], api_key_enabled=True)
    auto = render_llama_swap_config(STACKS["Pulumi.auto.yaml"], api_key_enabled=True)
    env = {LLAMA_SWAP_API_KEY_ENV: SWAP_KEY}
    big_port = "--port ${PORT} -c 8192 -np 1 -ngl 999 -fa on -ctk q8_0"
    main_members = "members:\n    - big\n    - chat\n"
    assert big_port in rich and "aliases:\n    - classify\n" in rich and main_members in rich
    first_set = "s1: agent & chat & classifier"
    assert first_set in auto
    return {
        "unknown-macro": (rich.replace(big_port, big_port + " --x ${NOPE}"), env,
                          "unknown macro '${NOPE}' found in big.cmd"),
        "fixed-port": (rich.replace(big_port, big_port.replace("${PORT}", "8080")), env,
                       "model big: proxy uses ${PORT} but cmd does not - ${PORT} is only available when used in cmd"),
        "duplicate-alias": (rich.replace("aliases:\n    - classify\n", "aliases:\n    - chatbot\n"), env,
                            re.compile("duplicate alias chatbot found in model: (chat|small)")),
        "member-in-two-groups": (rich.replace(main_members, main_members + "    - small\n"), env,
                                 re.compile("model member small is used in multiple groups: "
                                            "(main and resident|resident and main)")),
        "groups-and-matrix": (rich + "matrix:\n  sets:\n    s1: chat & big\n", env,
                              "config cannot use both 'groups' and 'matrix'"),
        "matrix-unknown-model": (auto.replace(first_set, first_set + " & ghost"), env,
                                 'matrix: set "s1": unknown var or model "ghost"'),
        "matrix-bad-expression": (auto.replace(first_set, "s1: agent & | chat"), env,
                                  'matrix: set "s1": parse: unexpected token "|"'),
        "bad-yaml": (rich.replace("models:\n", "models:\n  - [\n", 1), env,
                     re.compile(r"failed to parse config \S+: yaml: line \d+: did not find expected ',' or ']'")),
        "api-key-unset": (rich, {}, re.compile(r"config \S+: environment variable 'LLAMA_SWAP_API_KEY' is not set")),
        "api-key-with-space": (rich, {LLAMA_SWAP_API_KEY_ENV: "sk-with a-space"},
                               "apiKeys[0]: api key cannot contain spaces"),
        "alias-is-peer-model-id": (rich.replace("aliases:\n    - classify\n",
                                                "aliases:\n    - embeddings/nomic-embed-text\n"), env,
                                   'model small alias "embeddings/nomic-embed-text" conflicts with fully qualified '
                                   "peer model name"),
    }


BROKEN = _broken_variants()


@pytest.fixture(scope="module")
def broken_loads(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SwapLoad]:
    configs = {name: (text, env) for name, (text, env, _) in BROKEN.items()}
    return load_in_llama_swap(configs, tmp_path_factory.mktemp("llama-swap-broken"))


_SLOG_ERROR = re.compile(r'ERROR failed to load config config=\S+ config-dir="" error=(".*")$', re.M)


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_llama_swap_refuses_a_broken_config(variant: str, broken_loads: dict[str, SwapLoad]) -> None:
    load = broken_loads[variant]
    assert load.rc == 1, f"llama-swap did not refuse it:\n{load.output}"
    m = _SLOG_ERROR.search(load.output)
    assert m is not None, load.output
    message = json.loads(m.group(1))  # slog quotes the error like a Go string: close enough to JSON here
    expected = BROKEN[variant][2]
    assert expected.fullmatch(message) if isinstance(expected, re.Pattern) else message == expected, message
