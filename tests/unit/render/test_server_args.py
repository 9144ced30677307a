"""llama-server argv: every setting the sizing gate used is passed explicitly, in a fixed order."""

from __future__ import annotations

import shlex

import pytest

from models.config import MANAGED_FLAGS
from stack.render.paths import CONTAINER_PATHS, RenderPaths
from stack.render.server_args import PORT_MACRO, embedding_argv, join_cmd, model_argv
from tests.unit.helpers import stack
from tests.unit.render_samples import config


# Flags the stack sets that models.config.MANAGED_FLAGS does not yet reserve (reported to the lead).
def _value(argv: list[str], flag: str) -> str:
    assert argv.count(flag) == 1, f"{flag} appears {argv.count(flag)} times in {argv}"
    return argv[argv.index(flag) + 1]


def test_model_argv_passes_every_sized_setting() -> None:
    cfg = config()
    argv = model_argv("chat", cfg.models["chat"], CONTAINER_PATHS, cpu_only=False)
    assert argv[0] == "/app/llama-server"
    expected = {
        "-m": "/models/Qwen2.5-7B-Instruct-Q4_K_M.gguf",
        "--alias": "chat",
        "--host": "127.0.0.1",
        "--port": PORT_MACRO,
        "-c": "8192",
        "-np": "2",
        "-ngl": "999",
        "-fa": "on",
        "-ctk": "q8_0",
        "-ctv": "q8_0",
        "-ub": "512",
        "-b": "2048",
        "--fit": "off",
    }
    assert {flag: _value(argv, flag) for flag in expected} == expected
    assert "-kvu" in argv
    assert "--jinja" in argv
    assert "--embeddings" not in argv
    assert argv[-2:] == ["--temp", "0.7"]


def test_optional_flags_follow_their_settings() -> None:
    cfg = config()
    small = cfg.models["small"]
    argv = model_argv("small", small, CONTAINER_PATHS, cpu_only=False)
    assert "-kvu" not in argv and "--jinja" not in argv and "--swa-full" not in argv
    assert "--no-jinja" in argv
    swa = small.model_copy(update={"swa_full": True})
    assert "--swa-full" in model_argv("small", swa, CONTAINER_PATHS, cpu_only=False)


def test_cpu_profile_offloads_nothing() -> None:
    cfg = config()
    assert _value(model_argv("chat", cfg.models["chat"], CONTAINER_PATHS, cpu_only=True), "-ngl") == "0"
    assert cfg.embedding is not None
    assert _value(embedding_argv(cfg.embedding, CONTAINER_PATHS, cpu_only=True), "-ngl") == "0"


def test_embedding_argv() -> None:
    cfg = config()
    assert cfg.embedding is not None
    argv = embedding_argv(cfg.embedding, CONTAINER_PATHS, cpu_only=False)
    assert argv[0] == "/app/llama-server"
    assert _value(argv, "--port") == "8080"
    assert _value(argv, "--host") == "0.0.0.0"
    assert _value(argv, "--alias") == "embed"
    assert _value(argv, "-ub") == "2048"
    assert _value(argv, "--pooling") == "mean"
    assert _value(argv, "--fit") == "off"
    assert "--embeddings" in argv


def test_argv_uses_the_given_paths() -> None:
    cfg = config()
    paths = RenderPaths(llama_server_bin="/opt/bin/llama-server", models_dir="/data/gguf/", model_host="::1")
    argv = model_argv("chat", cfg.models["chat"], paths, cpu_only=False)
    assert argv[0] == "/opt/bin/llama-server"
    assert _value(argv, "-m") == "/data/gguf/Qwen2.5-7B-Instruct-Q4_K_M.gguf"
    assert _value(argv, "--host") == "::1"


@pytest.mark.parametrize("model_id", ["small", "chat"])
def test_stack_flags_are_reserved_from_extra_args(model_id: str) -> None:
    """A flag the stack sets must be refused in extra_args, or a user could override what was sized."""
    cfg = config()
    argv = model_argv(model_id, cfg.models[model_id], CONTAINER_PATHS, cpu_only=False)
    own = argv[1 : len(argv) - len(cfg.models[model_id].extra_args)]
    flags = {a for a in own if a.startswith("-") and not a.lstrip("-").isdigit()}
    assert flags <= MANAGED_FLAGS


def test_join_cmd_round_trips_through_shlex_and_leaves_port_bare() -> None:
    argv = ["/app/llama-server", "-m", "/models/dir with space/m.gguf", "--port", PORT_MACRO, "--x", "it's"]
    cmd = join_cmd(argv)
    assert "--port ${PORT}" in cmd
    assert shlex.split(cmd) == argv
    assert shlex.split(cmd.replace(PORT_MACRO, "5800"))[4] == "5800"


def test_argv_is_deterministic() -> None:
    a = model_argv("chat", config().models["chat"], CONTAINER_PATHS, cpu_only=False)
    b = model_argv("chat", config().models["chat"], CONTAINER_PATHS, cpu_only=False)
    assert a == b


MAIN = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 8192, "parallel": 2}


def test_draft_and_mmproj_flags_are_rendered() -> None:
    cfg = stack(models={"m": {**MAIN, "draft": {"file": "d.gguf", "arch": {
        "n_layer": 2, "n_embd": 64, "n_head": 4, "n_head_kv": 2, "head_dim": 16, "n_ff": 128, "n_vocab": 100,
        "weights_mib": 1}}, "mmproj": {"file": "p.gguf", "weights_mib": 10}}})
    argv = model_argv("m", cfg.models["m"], CONTAINER_PATHS, cpu_only=False)
    assert argv[argv.index("--spec-draft-model") + 1] == "/models/d.gguf"
    assert argv[argv.index("--spec-draft-n-max") + 1] == "3"
    assert argv[argv.index("--mmproj") + 1] == "/models/p.gguf"
    assert "--no-mmproj-offload" not in argv
