"""llama-server argv built from typed settings, so the process runs exactly what the sizing gate proved fits.

Every flag that changes memory use is passed explicitly (llama.cpp defaults move between builds), and
`--fit off` stops llama.cpp from shrinking context or offload on its own to squeeze into VRAM.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from models.config import EmbeddingConfig, ModelConfig, ServerSettings
from stack.render_paths import RenderPaths

PORT_MACRO = "${PORT}"
"""llama-swap replaces this with the port it assigns to the model (from `startPort`)."""


def _core_args(
    settings: ServerSettings, paths: RenderPaths, *, alias: str, host: str, port: str, cpu_only: bool
) -> list[str]:
    argv = [
        paths.llama_server_bin,
        "-m", paths.model_path(settings.file),
        "--alias", alias,
        "--host", host,
        "--port", port,
        "-c", str(settings.ctx_size),
        "-np", str(settings.parallel),
        "-ngl", "0" if cpu_only else str(settings.n_gpu_layers),
        "-fa", settings.flash_attn,
        "-ctk", settings.cache_type_k.value,
        "-ctv", settings.cache_type_v.value,
        "-ub", str(settings.ubatch),
        "-b", str(settings.batch),
    ]
    if settings.kv_unified:
        argv.append("-kvu")
    argv += ["--fit", "off"]
    return argv


def model_argv(model_id: str, model: ModelConfig, paths: RenderPaths, *, cpu_only: bool) -> list[str]:
    """argv of a llama-swap model; llama-swap substitutes `${PORT}` before starting it."""
    argv = _core_args(model, paths, alias=model_id, host=paths.model_host, port=PORT_MACRO, cpu_only=cpu_only)
    # b11434 enables jinja by default, so both states are spelt out.
    argv.append("--jinja" if model.jinja else "--no-jinja")
    if model.swa_full:
        argv.append("--swa-full")
    if model.draft is not None:
        d = model.draft
        argv += [
            "--spec-draft-model", paths.model_path(d.file),
            "--spec-draft-n-max", str(d.n_max),
            "--spec-draft-ngl", "0" if cpu_only else str(d.n_gpu_layers),
            "-ctkd", d.cache_type_k.value,
            "-ctvd", d.cache_type_v.value,
        ]
    if model.mmproj is not None:
        argv += ["--mmproj", paths.model_path(model.mmproj.file)]
        if not model.mmproj.offload or cpu_only:
            argv.append("--no-mmproj-offload")
    return argv + list(model.extra_args)


def embedding_argv(embedding: EmbeddingConfig, paths: RenderPaths, *, cpu_only: bool) -> list[str]:
    """argv of the always-on embedding server (its container's entrypoint)."""
    argv = _core_args(
        embedding,
        paths,
        alias=embedding.name,
        host=paths.embedding_host,
        port=str(paths.embedding_port),
        cpu_only=cpu_only,
    )
    argv.append("--embeddings")
    if embedding.pooling is not None:
        argv += ["--pooling", embedding.pooling]
    return argv + list(embedding.extra_args)


def _quote(arg: str) -> str:
    return arg if arg == PORT_MACRO else shlex.quote(arg)


def join_cmd(argv: Sequence[str]) -> str:
    """One command string for llama-swap's POSIX shlex split; `${PORT}` stays bare for readability."""
    return " ".join(_quote(a) for a in argv)
