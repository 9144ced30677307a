"""extra_args: every llama-server option is classified, and every alias of a refused one is refused in every spelling
llama-server reads (or would exit on), naming the item's key."""

from __future__ import annotations

from typing import Any

import pytest

from models import ConfigError, ImagesConfig, parse_stack_config
from models.server_flags import (
    BY_NAME,
    CLASSIFICATION,
    MANAGED_FLAGS,
    REFUSED_FLAGS,
    FlagClass,
    extra_args_problems,
)
from models.server_help import parse_help, render_module
from models.server_options import BUILD, OPTIONS
from stack.render.paths import CONTAINER_PATHS
from stack.render.server_args import embedding_argv, model_argv
from tests.unit.helpers import REPO

REFUSED = sorted(REFUSED_FLAGS)
ALLOWED = sorted(set(BY_NAME) - REFUSED_FLAGS)


def _with_values(name: str) -> list[str]:
    return [name, *["1"] * BY_NAME[name].nargs]


def _problem(args: list[str], index: int) -> str:
    problems = dict(extra_args_problems(args))
    assert f"[{index}]" in problems, f"{args} not refused at [{index}]: {problems}"
    return problems[f"[{index}]"]


def _load(extra: list[str], where: str = "model") -> list[tuple[str, str]]:
    raw: dict[str, Any] = {
        "models_dir": "/srv/models",
        "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 4096}},
    }
    if where == "model":
        raw["models"]["chat"]["extra_args"] = extra
    else:
        raw["embeddings"] = {"file": "nomic-embed-text-v1.5.Q8_0.gguf", "extra_args": extra}
    with pytest.raises(ConfigError) as info:
        parse_stack_config(raw)
    return info.value.problems


def test_every_option_has_exactly_one_reviewed_class() -> None:
    keys = [opt.key for opt in OPTIONS]
    assert len(keys) == len(set(keys))
    assert set(CLASSIFICATION) == set(keys), "classify new options / drop options the build no longer has"
    assert all(reason.strip() for _, reason in CLASSIFICATION.values())


def test_the_table_is_the_pinned_image_build() -> None:
    """A new image pin without a regenerated table would let flags through that the table has never seen."""
    assert ImagesConfig().llama_server.endswith(f"-{BUILD}")
    assert f"-{BUILD}" in ImagesConfig().llama_swap


def test_committed_table_is_exactly_what_the_generator_writes() -> None:
    committed = (REPO / "models" / "server_options.py").read_text(encoding="utf-8")
    assert render_module(OPTIONS, build=BUILD, command="python3 scripts/llama-server-flags.py") == committed


def test_memory_and_managed_classes_hold_the_flags_the_issue_names() -> None:
    for name in ("-md", "-ctkd", "-ctvd", "-cd", "--lora", "-ot", "--override-kv", "-ncmoed", "--cpu-moe", "-sm",
                 "-ts", "-mg", "-nkvo", "-dev", "--rpc", "-devd", "-otd", "--spec-type", "-hf", "-mu"):
        if name == "-cd":
            assert name not in BY_NAME, "-cd is not an option of this build; the draft's context follows -c"
            continue
        assert name in REFUSED_FLAGS, name


@pytest.mark.parametrize("name", REFUSED)
def test_refused_flag_is_refused_with_its_values(name: str) -> None:
    msg = _problem(_with_values(name), 0)
    assert BY_NAME[name].key in msg
    assert len(extra_args_problems(_with_values(name))) == 1, "its values must be consumed, not read as positionals"


@pytest.mark.parametrize("name", [n for n in REFUSED if n.startswith("--")])
def test_refused_flag_is_refused_in_equals_and_underscore_forms(name: str) -> None:
    assert BY_NAME[name].key in _problem([f"{name}=1"], 0)
    underscored = "--" + name[2:].replace("-", "_")
    assert BY_NAME[name].key in _problem([underscored, *["1"] * BY_NAME[name].nargs], 0)


@pytest.mark.parametrize("name", [n for n in REFUSED if not n.startswith("--") and BY_NAME[n].nargs])
def test_refused_short_flag_is_refused_with_a_glued_value(name: str) -> None:
    assert BY_NAME[name].key in _problem([f"{name}99"], 0)


@pytest.mark.parametrize("name", ALLOWED)
def test_allowed_flag_passes(name: str) -> None:
    assert extra_args_problems(_with_values(name)) == []


def test_typical_allowed_lists_pass() -> None:
    for args in (
        ["--temp", "0.7"],
        ["--temp", "-1", "--seed", "-1"],
        ["-lv", "4", "-t", "2", "--no-warmup", "--no-repack"],
        ["--reasoning-format", "deepseek", "--chat-template-kwargs", '{"enable_thinking": false}'],
        ["--cache-ram", "0", "-ctxcp", "4", "--metrics", "--no-slots", "-lm", "none"],
        ["--top_k", "20"],
    ):
        assert extra_args_problems(args) == [], args


def test_allowed_flag_in_equals_or_glued_form_is_refused_because_llama_server_would_exit() -> None:
    assert "two items" in _problem(["--temp=0.7"], 0)
    assert "two items" in _problem(["-t8"], 0)


def test_a_value_is_consumed_whatever_it_looks_like_but_not_an_option_name() -> None:
    assert extra_args_problems(["--temp", "-1"]) == []
    assert extra_args_problems(["--reverse-prompt", "-x-"]) == []
    problems = dict(extra_args_problems(["--temp", "--top-k", "40"]))
    assert "value of '--temp'" in problems["[1]"]
    assert "positional" in problems["[2]"]
    assert "'-c' would be read as the value" in _problem(["--reverse-prompt", "-c"], 1)


def test_two_value_option_consumes_both_values() -> None:
    msg = _problem(["--control-vector-layer-range", "1", "2"], 0)
    assert "control vector" in msg
    assert len(extra_args_problems(["--control-vector-layer-range", "1", "2"])) == 1


@pytest.mark.parametrize("args", [["foo"], [""], ["-"], ["--temp", "0.7", "0.9"], ["--metrics", "on"]])
def test_bare_positional_is_refused(args: list[str]) -> None:
    assert "positional" in _problem(args, len(args) - 1)


@pytest.mark.parametrize("item", ["--bogus", "--temperatur", "-tempo", "--ctx-size8192", "---temp"])
def test_unknown_flag_is_refused_as_not_an_option(item: str) -> None:
    assert f"not a llama-server {BUILD} option" in _problem([item], 0)


def test_missing_value_is_refused() -> None:
    assert "needs a value" in _problem(["--top-k", "40", "--temp"], 2)
    assert "needs a value" in _problem(["--log-file"], 0)
    assert len(extra_args_problems(["--control-vector-layer-range", "1"])) == 1


@pytest.mark.parametrize(
    "text", ["0.7\n-c 99", "a\x00b", "a\rb", "a\tb", "\x1b[31m", "a\x85b", "a\u2028b", "${env.LLAMA_SWAP_API_KEY}"]
)
def test_control_characters_and_macros_are_refused_in_any_position(text: str) -> None:
    assert _problem(["--reverse-prompt", text], 1)
    assert _problem([text], 0)


def test_refusals_reach_the_loader_with_the_item_key() -> None:
    problems = _load(["--temp", "0.7", "-ngl", "0", "--lora", "a.gguf"])
    assert [key for key, _ in problems] == ["models.chat.extra_args[2]", "models.chat.extra_args[4]"]
    assert "n_gpu_layers" in problems[0][1]
    problems = _load(["--spec-draft-ncmoe", "2"], where="embeddings")
    assert [key for key, _ in problems] == ["embeddings.extra_args[0]"]


def test_stack_argv_parses_as_llama_server_options_all_managed() -> None:
    """What the stack renders itself is, under the same walk, only managed flags with the right value counts."""
    from tests.unit.render_samples import config

    cfg = config()
    for argv in (
        model_argv("small", cfg.models["small"], CONTAINER_PATHS, cpu_only=False),
        model_argv("chat", cfg.models["chat"], CONTAINER_PATHS, cpu_only=True),
        embedding_argv(cfg.embeddings, CONTAINER_PATHS, cpu_only=False),  # type: ignore[arg-type]
    ):
        own = argv[1 : len(argv) - 2] if argv[-2:] == ["--temp", "0.7"] else argv[1:]
        for _, msg in extra_args_problems([a.replace("${PORT}", "5800") for a in own]):
            assert "is managed by the stack" in msg, msg
        assert {a for a in own if a in BY_NAME} <= MANAGED_FLAGS


def test_draft_and_mmproj_flags_the_stack_renders_are_managed() -> None:
    for name in ("--spec-draft-model", "--spec-draft-n-max", "--spec-draft-ngl", "-ctkd", "-ctvd", "--mmproj",
                 "--no-mmproj-offload", "--fit", "-kvu", "--no-jinja", "--swa-full", "--embeddings", "--pooling"):
        assert CLASSIFICATION[BY_NAME[name].key][0] is FlagClass.managed, name


HELP_SAMPLE = """----- common params -----

-h,    --help, --usage                  print usage and exit
-kvo,  --kv-offload, -nkvo, --no-kv-offload
                                        whether to enable KV cache offloading (default: enabled)
                                        (env: LLAMA_ARG_KV_OFFLOAD)
--control-vector-layer-range START END
                                        layer range to apply the control vector(s) to
-ot,   --override-tensor <tensor name pattern>=<buffer type>,...
                                        override tensor buffer type
-c,    --ctx-size N                     size of the prompt context
                                        (env: LLAMA_ARG_CTX_SIZE)
"""


def test_help_parser_reads_aliases_negations_hints_and_env() -> None:
    opts = {o.key: o for o in parse_help(HELP_SAMPLE)}
    assert opts["--help"].names == ("-h", "--help", "--usage") and opts["--help"].nargs == 0
    assert opts["--kv-offload"].names == ("-kvo", "--kv-offload", "-nkvo", "--no-kv-offload")
    assert opts["--kv-offload"].nargs == 0 and opts["--kv-offload"].env == ("LLAMA_ARG_KV_OFFLOAD",)
    assert opts["--control-vector-layer-range"].nargs == 2
    assert opts["--override-tensor"].hint == "<tensor name pattern>=<buffer type>,..."
    assert (opts["--ctx-size"].nargs, opts["--ctx-size"].env) == (1, ("LLAMA_ARG_CTX_SIZE",))


def test_help_parser_refuses_a_layout_it_does_not_know() -> None:
    from models.server_help import HelpFormatError

    with pytest.raises(HelpFormatError):
        parse_help("-x, --ex N    help\nstray text\n")
    with pytest.raises(HelpFormatError):
        parse_help("-a, --a N                               a\n-a, --b                                 b\n")

