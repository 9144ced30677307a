"""llama-server argv rendered from a resolved `stack.sizing.process.ServerProcess`, the value the sizing gate sized.

Every flag that changes memory use is passed explicitly (llama.cpp defaults move between builds), and
`--fit off` stops llama.cpp from shrinking context or offload on its own to squeeze into VRAM.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from models.config import EmbeddingConfig, ModelConfig
from stack.render.paths import RenderPaths
from stack.sizing.process import ServerProcess, resolve_process

PORT_MACRO = "${PORT}"
"""llama-swap replaces this with the port it assigns to the model (from `startPort`)."""


def _core_args(p: ServerProcess, paths: RenderPaths, *, alias: str, host: str, port: str) -> list[str]:
    argv = [
        paths.llama_server_bin,
        "-m", paths.model_path(p.file),
        "--alias", alias,
        "--host", host,
        "--port", port,
        "-c", str(p.ctx_size),
        "-np", str(p.parallel),
        "-ngl", str(p.n_gpu_layers),
        "-fa", "on" if p.flash_attn else "off",
        "-ctk", p.cache_type_k.value,
        "-ctv", p.cache_type_v.value,
        "-ub", str(p.ubatch),
        "-b", str(p.batch),
    ]
    if p.kv_unified:
        argv.append("-kvu")
    argv += ["--fit", "off"]
    return argv


def process_model_argv(model_id: str, p: ServerProcess, paths: RenderPaths) -> list[str]:
    """argv of a llama-swap model; llama-swap substitutes `${PORT}` before starting it."""
    argv = _core_args(p, paths, alias=model_id, host=paths.model_host, port=PORT_MACRO)
    # b11434 enables jinja by default, so both states are spelt out.
    argv.append("--jinja" if p.jinja else "--no-jinja")
    if p.swa_full:
        argv.append("--swa-full")
    if p.draft is not None:
        d = p.draft
        argv += [
            "--spec-draft-model", paths.model_path(d.file),
            "--spec-draft-n-max", str(d.n_draft),
            "--spec-draft-ngl", str(d.n_gpu_layers),
            "-ctkd", d.cache_type_k.value,
            "-ctvd", d.cache_type_v.value,
        ]
    if p.projector is not None:
        argv += ["--mmproj", paths.model_path(p.projector.file)]
        if not p.projector.offload:
            argv.append("--no-mmproj-offload")
    return argv + list(p.extra_args)


def process_embedding_argv(p: ServerProcess, alias: str, paths: RenderPaths) -> list[str]:
    """argv of the always-on embedding server (its container's entrypoint)."""
    argv = _core_args(p, paths, alias=alias, host=paths.embedding_host, port=str(paths.embedding_port))
    argv.append("--embeddings")
    if p.pooling is not None:
        argv += ["--pooling", p.pooling]
    return argv + list(p.extra_args)


def model_argv(model_id: str, model: ModelConfig, paths: RenderPaths, *, cpu_only: bool) -> list[str]:
    return process_model_argv(model_id, resolve_process(model, cpu_only=cpu_only), paths)


def embedding_argv(embedding: EmbeddingConfig, paths: RenderPaths, *, cpu_only: bool) -> list[str]:
    return process_embedding_argv(resolve_process(embedding, cpu_only=cpu_only), embedding.name, paths)


def _quote(arg: str) -> str:
    return arg if arg == PORT_MACRO else shlex.quote(arg)


def join_cmd(argv: Sequence[str]) -> str:
    """One command string for llama-swap's POSIX shlex split; `${PORT}` stays bare for readability."""
    return " ".join(_quote(a) for a in argv)
