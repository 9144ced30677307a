"""Property test of the renderers, with the real readers as oracles: for any stack the schema accepts, the files we
render mean exactly what we rendered and sized.

* llama-swap v250 loads the rendered config the way its container does (`load_in_llama_swap`, shared with
  `tests/integration/test_generated_configs.py`). Its `/v1/models` must list exactly our model ids with their
  aliases, the embedding peer's names and our descriptions; then each model is started through llama-swap, with a
  stand-in llama-server that writes the argv it was given and exits, and that argv must be `model_argv` (the one the
  sizing saw) with llama-swap's port in place of `${PORT}`.
* docker-compose 1.29 (`docker-compose -f <file> config`, no engine needed) interpolates the rendered compose file:
  every service must come back with exactly our image, container name, entrypoint, command, environment (secrets
  from the environment, `$` and quotes included), mounts, labels, healthcheck and network aliases. The LiteLLM
  file is read back with PyYAML, the reader LiteLLM uses.

The strategies lean on what breaks YAML and shell splitting: names YAML reads as numbers, booleans or null
(`1e3`, `0o17`, `09`, `true`, `null`, `y`), text with `$`, quotes, `#`, `: `, backslashes, non-breaking and
ideographic spaces, combining marks, emoji. Values the schema refuses are discarded: the property is about what
it accepts.

Bounded for CI: 40 llama-swap starts and 60 compose configs; `LLS_FUZZ_SCALE=<n>` multiplies both for a longer local
run. Each example has a deadline; the programs have their own timeouts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from models.config import StackConfig
from models.load import ConfigError, parse_stack_config
from models.values import NAME_RE, control_chars
from stack.render.litellm import embedding_names, llama_swap_names, render_litellm_config
from stack.render.llama_swap import LLAMA_SWAP_API_KEY_ENV, render_llama_swap_config
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.render.server_args import PORT_MACRO, model_argv
from stack.sizing.plan import build_plan
from stack.targets.compose.compose_file import render_compose, upload_source
from tests.harness import binaries
from tests.harness.llama_server import http_request
from tests.integration.test_generated_configs import expected_listing, load_in_llama_swap
from tests.unit.render_samples import deployment

pytestmark = pytest.mark.integration

SCALE = max(1, int(os.environ.get("LLS_FUZZ_SCALE", "1")))
SWAP_EXAMPLES = 40 * SCALE
COMPOSE_EXAMPLES = 60 * SCALE
DEADLINE = timedelta(seconds=60)
COMPOSE_TIMEOUT_S = 60

FUZZ = settings(
    deadline=DEADLINE,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies -----------------------------------------------------------------------------------------------------

AMBIGUOUS_NAMES = [
    "1e3", "1e-3", "0o17", "0x1F", "0b101", "1_000", "09", "007", "1.e5", "12.5", "1", "0", "2024-01-01", "1_0.5",
    "true", "True", "FALSE", "null", "Null", "NULL", "y", "n", "Y", "yes", "No", "on", "OFF", "inf", "Inf", "nan",
]
"""Valid names that some YAML reader (PyYAML's 1.1, Go's yaml.v3 or v2) takes for a number, a boolean or null."""

FRAGMENTS = [
    "$", "$HOME", "$$", "$(id)", "`id`", "{x}", "$ {x}", "#", " #", "# ", ": ", ":", "- ", "? ", "'", '"', "''",
    "\\", "\\n", "\\\\", "[", "]", ",", "&a", "*a", "!tag", "|", ">", "%", "@", "=", "1e3", "null", "~", "true",
    " ", "  ", "\u00a0", "\u3000", "\u200b", "\ufeff", "e\u0301", "é", "中文", "😀", "---", "...", "<<", "0o17",
]

_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp"))
_fragment = st.sampled_from(FRAGMENTS)
_piece = st.one_of(_fragment, _fragment, st.text(alphabet=_chars, max_size=8))


def _clean(text: str) -> bool:
    return "${" not in text and not control_chars(text)


names = st.one_of(st.sampled_from(AMBIGUOUS_NAMES), st.from_regex(NAME_RE, fullmatch=True))
free_text = st.lists(_piece, max_size=8).map(lambda parts: "".join(parts).strip()).filter(_clean)
argv_value = st.lists(_piece, min_size=1, max_size=5).map("".join).filter(_clean)
path_part = (
    st.lists(_piece, min_size=1, max_size=4).map(lambda parts: "".join(parts).replace("$", "").replace("/", ""))
    .filter(lambda p: _clean(p) and p not in ("", ".", "..") and len(p.encode()) <= 200)
)

# Options the extra_args check allows, taking any text as their value, and flags without one.
VALUE_OPTIONS = ["-r", "--reverse-prompt", "--grammar", "-j", "--json-schema"]
FLAGS = [["--perf"], ["--no-perf"], ["-sp"], ["--temp", "0.7"], ["--seed", "-1"]]


def extra_args(min_size: int = 0) -> st.SearchStrategy[list[str]]:
    return st.lists(
        st.one_of(st.tuples(st.sampled_from(VALUE_OPTIONS), argv_value).map(list), st.sampled_from(FLAGS)),
        min_size=min_size, max_size=3,
    ).map(lambda pairs: [a for pair in pairs for a in pair])


def gguf(base: st.SearchStrategy[str] = path_part) -> st.SearchStrategy[str]:
    return st.tuples(st.lists(path_part, max_size=2), base).map(lambda t: "/".join([*t[0], t[1] + ".gguf"]))


TINY_ARCH = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_head_kv": 4, "head_dim": 16, "n_ff": 128, "n_vocab": 1000,
             "weights_mib": 10.0}
"""Sizes the model without a GGUF or catalog entry, small enough to fit any GPU profile."""

_path_component = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-{1,2})[a-z0-9]{1,6}){0,2}", fullmatch=True)
images = st.tuples(
    st.sampled_from(["", "ghcr.io/", "localhost:5000/", "registry.example.com:443/", "[::1]:5000/", "r-1.io/"]),
    st.lists(_path_component, min_size=1, max_size=3).map("/".join),
    st.one_of(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True).filter(lambda t: t != "latest"),
              st.sampled_from(AMBIGUOUS_NAMES)),
    st.one_of(st.none(), st.from_regex(r"[0-9a-f]{64}", fullmatch=True)),
).map(lambda t: f"{t[0]}{t[1]}:{t[2]}" + (f"@sha256:{t[3]}" if t[3] else ""))

models_dirs = st.tuples(st.lists(path_part, min_size=1, max_size=3), st.booleans()).map(
    lambda t: "/" + "/".join(t[0]) + ("/" if t[1] else "")
)

urls = st.tuples(
    st.sampled_from(["http", "https"]),
    st.sampled_from(["api.example.com", "127.0.0.1:8443", "[::1]", "h-1.example"]),
    st.from_regex(r"(/[A-Za-z0-9._~%-]{0,8}){0,3}", fullmatch=True),
).map(lambda t: f"{t[0]}://{t[1]}{t[2]}")


@dataclass(frozen=True)
class Fuzzed:
    raw: dict[str, Any]
    secrets: frozenset[str]


@st.composite
def stacks(draw: st.DrawFn) -> Fuzzed:
    """A stack file's config with every kind of user value drawn; names are unique by construction."""
    n_models = draw(st.integers(1, 3))
    embedding = draw(st.integers(0, 3)) > 0
    n_aliases = draw(st.integers(0, 4))
    n_emb_aliases = draw(st.integers(0, 2)) if embedding else 0
    n_fallbacks = draw(st.integers(0, 1))
    pool = draw(st.lists(names, min_size=n_models + n_aliases + n_emb_aliases + n_fallbacks + 1,
                         max_size=n_models + n_aliases + n_emb_aliases + n_fallbacks + 1, unique=True))
    ids, rest = pool[:n_models], pool[n_models:]
    aliases, rest = rest[:n_aliases], rest[n_aliases:]
    emb_aliases, rest = rest[:n_emb_aliases], rest[n_emb_aliases:]
    fallback_names, rest = rest[:n_fallbacks], rest[n_fallbacks:]
    models: dict[str, Any] = {}
    for i, mid in enumerate(ids):
        model: dict[str, Any] = {
            "file": draw(gguf()), "ctx_size": draw(st.sampled_from([256, 512, 2048])), "arch": TINY_ARCH,
            "aliases": aliases[i::n_models], "extra_args": draw(extra_args()),
        }
        description = draw(free_text)
        if description:
            model["description"] = description
        if draw(st.integers(0, 3)) == 0:
            model["draft"] = {"file": draw(gguf()), "arch": TINY_ARCH}
        if draw(st.integers(0, 3)) == 0:
            model["mmproj"] = {"file": draw(gguf()), "weights_mib": 5.0, "offload": draw(st.booleans())}
        models[mid] = model
    raw: dict[str, Any] = {
        "models_dir": draw(models_dirs),
        "gpu": {"profile": draw(st.sampled_from(["cpu", "rtx-5080"]))},
        "bind_address": draw(st.sampled_from(["127.0.0.1", "::1"])),
        "network": {"name": draw(names)},
        "images": {key: draw(images) for key in ("llama_swap", "llama_server", "litellm")},
        "models": models,
    }
    grouping = draw(st.sampled_from(["none", "group", "matrix"]))
    if grouping == "group" and n_models > 1:
        raw["groups"] = {draw(names): {"members": ids[:2], "swap": draw(st.booleans())}}
    elif grouping == "matrix":
        raw["matrix"] = {"sets": {"s1": ids, "s2": ids[:1]}}
    if embedding:
        raw["embeddings"] = {"name": rest[0], "aliases": emb_aliases, "file": draw(gguf()), "arch": TINY_ARCH,
                             "extra_args": draw(extra_args(min_size=1)), "pooling": "mean"}
    secrets = {"api_key"} if draw(st.booleans()) else set()
    if draw(st.booleans()):
        fallbacks = [{"name": name, "model": "openai/gpt-4o-mini", "api_key_secret": "openai_api_key",
                      "fallback_for": ids[:1], "api_base": draw(urls)} for name in fallback_names]
        raw["litellm"] = {"enabled": True, "fallbacks": fallbacks}
        secrets |= {"litellm_master_key", "openai_api_key"}
    return Fuzzed(raw, frozenset(secrets))


HARD = Fuzzed(
    raw={
        "models_dir": "/srv/models #1/é: x'y",
        "gpu": {"profile": "rtx-5080"},
        "network": {"name": "1e3"},
        "images": {"llama_swap": "localhost:5000/ls:0o17", "llama_server": "ghcr.io/x/y:true",
                   "litellm": "r.io/l:1e3@sha256:" + "0" * 64},
        "models": {
            "1e3": {"file": "dir #1/it's: a \"model\".gguf", "ctx_size": 512, "arch": TINY_ARCH,
                    "aliases": ["0o17", "true"], "description": "costs $5 # not a comment: 'q' \"d\" \\ x",
                    "extra_args": ["-r", "$HOME", "--grammar", "a'b \"c\" #d", "-j", ""]},
            "null": {"file": "n.gguf", "ctx_size": 512, "arch": TINY_ARCH, "aliases": ["y", "09"], "description": "~",
                     "draft": {"file": "- d.gguf", "arch": TINY_ARCH}},
        },
        "matrix": {"sets": {"s1": ["1e3", "null"]}},
        "embeddings": {"name": "0x1F", "aliases": ["1_000"], "file": "e #x.gguf", "arch": TINY_ARCH,
                       "extra_args": ["-r", "$HOME $$ $(id) '", "--grammar", "a: b"], "pooling": "mean"},
        "litellm": {"enabled": True, "fallbacks": [
            {"name": "NULL", "model": "openai/gpt-4o-mini", "api_key_secret": "openai_api_key",
             "fallback_for": ["1e3"], "api_base": "https://api.example.com/v1"}]},
    },
    secrets=frozenset({"api_key", "litellm_master_key", "openai_api_key"}),
)
"""Every case that broke a renderer before, run first on each test: ids YAML reads as numbers or null, text and
argv with `$`, `#`, `: ` and quotes, a matrix of such ids, `$` in the embedding server's compose entrypoint."""


def accepted(fuzzed: Fuzzed) -> StackConfig:
    """The stack as deployed (the plan's config); examples the schema refuses are discarded."""
    try:
        cfg = parse_stack_config(fuzzed.raw, fuzzed.secrets)
        plan = build_plan(cfg, None)
    except ConfigError:
        reject()
    assert plan.fits
    return plan.config


# --- llama-swap --------------------------------------------------------------------------------------------------

FAKE_SERVER = """#!/bin/sh
# Stands in for llama-server: records the argv llama-swap gave it, NUL-separated, and exits (the start fails).
printf '%s\\0' "$0" "$@" > "$LLS_ARGV_DIR/argv.$$"
exit 1
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("render-fuzz")
    fake = d / "llama-server"
    fake.write_text(FAKE_SERVER)
    fake.chmod(0o755)
    return d


def _argv_of(argv_dir: Path) -> dict[str, list[str]]:
    """`--alias` value → the argv a started process received."""
    out: dict[str, list[str]] = {}
    for f in sorted(argv_dir.glob("argv.*")):
        argv = f.read_bytes().decode("utf-8").split("\0")[:-1]
        out[argv[argv.index("--alias") + 1]] = argv
    return out


def _probe(model_ids: list[str], argv_dir: Path) -> Any:
    def probe(url: str, headers: dict[str, str]) -> dict[str, Any]:
        listing = http_request("GET", f"{url}/v1/models", headers=headers, timeout=10).json()
        for mid in model_ids:
            body = {"model": mid, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
            r = http_request("POST", f"{url}/v1/chat/completions", body=body,
                             headers={**headers, "Content-Type": "application/json"}, timeout=30)
            assert r.status != 200, f"{mid}: the stand-in server cannot have answered"
        return {"descriptions": {rec["id"]: rec.get("description", "") for rec in listing["data"]},
                "argv": _argv_of(argv_dir)}
    return probe


def _expected_argv(mid: str, cfg: StackConfig, paths: RenderPaths, actual: list[str]) -> list[str]:
    """`model_argv` with the port llama-swap chose (a number, at the `${PORT}` position) in place of the macro."""
    expected = model_argv(mid, cfg.models[mid], paths, cpu_only=cfg.gpu.cpu_only)
    at = expected.index(PORT_MACRO)
    assert actual[at].isdigit(), actual
    expected[at] = actual[at]
    return expected


@settings(FUZZ, max_examples=SWAP_EXAMPLES)
@given(fuzzed=stacks(), api_key=st.booleans())
@example(fuzzed=HARD, api_key=True)
def test_llama_swap_reads_back_what_we_rendered(workdir: Path, fuzzed: Fuzzed, api_key: bool) -> None:
    cfg = accepted(fuzzed)
    paths = RenderPaths(llama_server_bin=str(workdir / "llama-server"))
    text = render_llama_swap_config(cfg, paths, api_key_enabled=api_key)
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    env = {"LLS_ARGV_DIR": str(run_dir)} | ({LLAMA_SWAP_API_KEY_ENV: "sk-" + "k" * 32} if api_key else {})
    load = load_in_llama_swap({"fuzz": (text, env)}, run_dir, _probe(sorted(cfg.models), run_dir))["fuzz"]
    assert load.rc is None, f"llama-swap refused the rendered config:\n{load.output}\n{text}"
    assert load.listing == expected_listing(cfg), text
    descriptions = {mid: m.description for mid, m in cfg.models.items()}
    assert {k: v for k, v in load.probed["descriptions"].items() if k in cfg.models} == descriptions, text
    started = load.probed["argv"]
    assert sorted(started) == sorted(cfg.models), f"started {sorted(started)}\n{load.output}"
    for mid, argv in started.items():
        assert argv == _expected_argv(mid, cfg, paths, argv), text


# --- docker-compose ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_compose() -> Path:
    def find() -> Path:
        found = shutil.which("docker-compose")
        if found is None:
            raise binaries.MissingBinaryError(
                "docker-compose is not installed: Debian's docker-compose package (scripts/docker/engine.sh start "
                "installs it)"
            )
        return Path(found)
    return binaries.require(find)


SECRET_VALUE = 'v$HOME ${X} $$ "q" \'s\' #c: é'
"""Every secret's value in docker-compose's environment: compose must pass it through unchanged."""


def _unescape(value: Any) -> Any:
    """`docker-compose config` writes interpolated values back in compose syntax, each `$` as `$$`."""
    if isinstance(value, str):
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    return value


def _compose_config(compose: Path, directory: Path, variables: tuple[str, ...]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env |= {variable: SECRET_VALUE for variable in variables}
    proc = subprocess.run([str(compose), "-f", "docker-compose.yml", "config"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"docker-compose config exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    doc = yaml.safe_load(proc.stdout)
    assert isinstance(doc, dict)
    return dict(_unescape(doc))


def _write(directory: Path, text: str, files: dict[str, str]) -> None:
    (directory / "docker-compose.yml").write_text(text, encoding="utf-8")
    for rel, content in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_text(content, encoding="utf-8")


@settings(FUZZ, max_examples=COMPOSE_EXAMPLES)
@given(fuzzed=stacks(), api_key=st.booleans())
@example(fuzzed=HARD, api_key=True)
def test_docker_compose_reads_back_what_we_rendered(
    workdir: Path, docker_compose: Path, fuzzed: Fuzzed, api_key: bool
) -> None:
    cfg = accepted(fuzzed)
    secret_keys = fuzzed.secrets - {"api_key"} | ({"api_key"} if api_key else set())
    dep = deployment(cfg, secret_keys=secret_keys, paths=CONTAINER_PATHS)
    specs = dep.specs
    rendered = render_compose(dep, "docker-compose.yml")
    directory = Path(tempfile.mkdtemp(dir=workdir))
    _write(directory, rendered.text, rendered.files)
    out = _compose_config(docker_compose, directory, rendered.secret_variables)
    assert set(out["services"]) == {spec.service for spec in specs}
    assert {n["name"] for n in out["networks"].values()} == {cfg.network.name}
    for spec in specs:
        svc = out["services"][spec.service]
        assert svc["image"] == spec.image
        assert svc["container_name"] == spec.name
        assert svc.get("entrypoint", []) == list(spec.entrypoint)
        assert svc.get("command", []) == list(spec.command)
        assert svc["environment"] == {**spec.env, **{name: SECRET_VALUE for name in spec.secret_env}}
        mounts = [(os.path.normpath(m.source), m.target, m.read_only) for m in spec.mounts]
        mounts += [(str(directory / upload_source(spec, u, rendered.files_dir)), u.path, True) for u in spec.uploads]
        assert [(v["source"], v["target"], v["read_only"]) for v in svc["volumes"]] == mounts
        assert svc["labels"] == dict(spec.labels)
        assert svc["healthcheck"]["test"] == list(spec.healthcheck.test)
        assert svc["networks"] == {n.network: {"aliases": list(n.aliases)} for n in spec.networks}
    _check_litellm(cfg, api_key)


def _check_litellm(cfg: StackConfig, api_key: bool) -> None:
    """LiteLLM reads its config with PyYAML: every deployment name and cloud api_base comes back as rendered."""
    if not cfg.litellm.enabled:
        return
    doc = yaml.safe_load(render_litellm_config(cfg, api_key_enabled=api_key))
    names = [d["model_name"] for d in doc["model_list"]]
    expected = [*llama_swap_names(cfg), *embedding_names(cfg), *(fb.name for fb in cfg.litellm.fallbacks)]
    assert names == expected
    bases = {d["model_name"]: d["litellm_params"].get("api_base") for d in doc["model_list"]}
    for fb in cfg.litellm.fallbacks:
        assert bases[fb.name] == fb.api_base


def test_the_strategies_reach_the_hard_cases() -> None:
    """The generators are worth running only if they produce what broke the renderers before: YAML-ambiguous names
    and text with `$`, `#`, `: ` and quotes, all accepted by the schema."""
    seen = dict.fromkeys(["ambiguous id", "dollar", "hash", "colon", "quote", "dollar in compose"], False)

    @settings(max_examples=100, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(fuzzed=stacks())
    def look(fuzzed: Fuzzed) -> None:
        cfg = accepted(fuzzed)
        texts = json.dumps([m.description for m in cfg.models.values()] + [a for m in cfg.models.values()
                                                                          for a in m.extra_args])
        seen["ambiguous id"] |= any(mid in AMBIGUOUS_NAMES for mid in cfg.models)
        seen["dollar"] |= "$" in texts
        seen["hash"] |= "#" in texts
        seen["colon"] |= ": " in texts
        seen["quote"] |= "'" in texts
        seen["dollar in compose"] |= cfg.embedding is not None and any("$" in a for a in cfg.embedding.extra_args)

    look()
    assert all(seen.values()), seen
