"""A panel of real-architecture GGUF fixtures (one per KV layout) and llama-server settings, with
what the real llama-server reports for each and what `stack.sizing.process_size` predicts.

Shared by `tests/integration/test_sizing_vs_llama_server.py` (asserts agreement) and
`bench/sizing_benchmark.py` (writes bench/RESULTS.md). Every server is started with the argv the
stack renders (`stack.render.server_args.model_argv` / `embedding_argv` with local `RenderPaths`) plus
`-lv 4` (buffer lines) and `-t 2`, on 127.0.0.1, CPU only (`-ngl 0`, `--fit off`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import local
from models.config import EmbeddingConfig, GpuConfig, ModelConfig, ServerSettings
from stack.arch.gguf_rules import arch_from_header
from stack.arch.model import ModelArch
from stack.gguf import writers as gm
from stack.gguf.header import GgufHeader, read_header_file
from stack.render.paths import RenderPaths
from stack.render.server_args import PORT_MACRO, embedding_argv, model_argv
from stack.sizing.compute_buffer import Calibration, calibration_for
from stack.sizing.llama_log import LlamaLog, parse_llama_log
from stack.sizing.process_size import ProcessSize, size_process
from stack.units import MIB

PINNED_BUILD = 11434
CPU = GpuConfig(profile="cpu")

RE_RS_SIZE = re.compile(
    r"llama_memory_recurrent: size =\s*[0-9.]+ MiB .*R \((\w+)\):\s*([0-9.]+) MiB, S \((\w+)\):\s*([0-9.]+) MiB"
)

RE_ROT_K = re.compile(r"llama_kv_cache: n_rot_k = (\d+)")
RE_ROT_V = re.compile(r"llama_kv_cache: n_rot_v = (\d+)")


@dataclass(frozen=True)
class Layout:
    """One fixture: a KV layout llama.cpp has, written as a real architecture."""

    key: str
    description: str
    build: Callable[[], Path]
    embedding: bool = False
    production: bool = False
    """A released model's real hyperparameters (zero weights): the production-shape rows."""


def layouts() -> dict[str, Layout]:
    """Every layout of the panel, by key (fixtures are built on first use and cached)."""
    items = [
        Layout("gqa-tied", "qwen2 GQA, tied output, f16", lambda: gm.chat_model()[0]),
        Layout("gqa-untied-q8_0", "qwen2 GQA, untied output, q8_0 weights",
               lambda: gm.chat_model(gm.ChatModelSpec(tied=False, dtype="q8_0"))[0]),
        Layout("gqa-q4_k_m", "qwen2 GQA, untied, Q4_K_M (llama-quantize)",
               lambda: gm.kquant_chat_model(local.llama_quantize)[0]),
        Layout("per-layer-kv", "deci, head_count_kv = [1, 2, 4, 2]", lambda: gm.variable_kv_model()[0]),
        Layout("head-dim", "qwen3, key_length 64 != n_embd/n_head 32", lambda: gm.qwen3_model()[0]),
        Layout("swa", "gemma3, 5 SWA : 1 full, window 128", lambda: gm.swa_model()[0]),
        Layout("swa-shared-kv", "gemma4, SWA/full head 32/64, last 2 layers share KV",
               lambda: gm.shared_kv_model()[0]),
        Layout("shared-kv", "gemma3n, 22 layers: 20 with KV (4:1 SWA), 2 reuse layers 18/19",
               lambda: gm.gemma3n_model()[0]),
        Layout("mla", "deepseek2 MLA (K only), 1 dense + 1 MoE layer", lambda: gm.mla_model()[0]),
        Layout("recurrent", "mamba2, 2 layers", lambda: gm.mamba2_model()[0]),
        Layout("hybrid", "granitehybrid, Mamba-2 layers 0,2,3 + attention 1,4", lambda: gm.granite_hybrid_model()[0]),
        Layout("hybrid-shortconv", "lfm2, shortconv layers 0,2 + attention 1,3", lambda: gm.lfm2_model()[0]),
        Layout("hybrid-swa", "lfm2 with sliding_window 128 (hybrid + iSWA)",
               lambda: gm.lfm2_model(gm.Lfm2ModelSpec(n_swa=128))[0]),
        Layout("encoder", "bert (all-MiniLM-L6-v2), no KV", lambda: gm.minilm_model()[0], embedding=True),
        Layout("qwen2.5-0.5b", "Qwen2.5-0.5B-Instruct shape: qwen2, 24 layers, n_embd 896, 14/2 heads (head_dim 64), "
               "n_ff 4864, vocab 151936, tied; zero q8_0 weights",
               lambda: gm.production_shape_model(gm.QWEN25_05B_SPEC)[0], production=True),
        Layout("llama3.2-1b", "Llama-3.2-1B-Instruct shape: llama, 16 layers, n_embd 2048, 32/8 heads (head_dim 64), "
               "n_ff 8192, vocab 128256, tied; zero q8_0 weights",
               lambda: gm.production_shape_model(gm.LLAMA32_1B_SPEC)[0], production=True),
    ]
    return {layout.key: layout for layout in items}


@dataclass(frozen=True)
class Setting:
    """llama-server settings of one run (the typed keys of `ServerSettings`)."""

    ctx: int
    parallel: int = 1
    kv_unified: bool = False
    cache_k: str = "f16"
    cache_v: str = "f16"
    flash_attn: str = "off"
    ubatch: int = 512
    batch: int = 2048
    swa_full: bool = False

    @property
    def label(self) -> str:
        parts = [f"c{self.ctx}", f"np{self.parallel}{'u' if self.kv_unified else ''}", f"fa-{self.flash_attn}",
                 f"ub{self.ubatch}"]
        if (self.cache_k, self.cache_v) != ("f16", "f16"):
            parts.append(f"{self.cache_k}/{self.cache_v}")
        if self.swa_full:
            parts.append("swa-full")
        return " ".join(parts)


@dataclass(frozen=True)
class Case:
    layout: str
    setting: Setting

    @property
    def id(self) -> str:
        return f"{self.layout}[{self.setting.label}]"


# Settings shared by decoders: split and unified slots, f16 and q8_0 caches, FA on/off, several ubatches.
BASE = Setting(ctx=4096, parallel=1, flash_attn="off", ubatch=512)
SPLIT_FA = Setting(ctx=4096, parallel=2, flash_attn="on", ubatch=256)
UNIFIED_Q8 = Setting(ctx=8192, parallel=4, kv_unified=True, cache_k="q8_0", cache_v="q8_0", flash_attn="on",
                     ubatch=512)
ODD_SPLIT = Setting(ctx=3000, parallel=3, cache_k="q8_0", flash_attn="off", ubatch=128)


def panel() -> list[Case]:
    """The cases the integration test and the benchmark run: every layout, a few settings each."""
    cases: list[Case] = []
    decoders = ["gqa-tied", "gqa-untied-q8_0", "gqa-q4_k_m", "per-layer-kv", "head-dim", "mla", "recurrent",
                "hybrid", "hybrid-shortconv"]
    for key in decoders:
        cases += [Case(key, BASE), Case(key, SPLIT_FA), Case(key, UNIFIED_Q8)]
    cases += [Case("per-layer-kv", ODD_SPLIT), Case("gqa-tied", ODD_SPLIT)]
    # q8_0 K without FA on a 64-wide head: Hadamard-rotated Q with n_embd_q = 2 n_embd
    cases.append(Case("head-dim", Setting(ctx=4096, parallel=1, flash_attn="off", cache_k="q8_0", ubatch=512)))
    # sliding window: cells grow with slots and ubatch, not ctx; --swa-full; FA on/off
    for key in ("swa", "swa-shared-kv", "shared-kv", "hybrid-swa"):
        cases += [
            Case(key, BASE),
            Case(key, Setting(ctx=8192, parallel=1, flash_attn="off", ubatch=512)),
            Case(key, Setting(ctx=8192, parallel=4, kv_unified=True, flash_attn="on", ubatch=256)),
            Case(key, Setting(ctx=8192, parallel=2, cache_k="q8_0", cache_v="q8_0", flash_attn="on", ubatch=1024,
                              batch=2048)),
            Case(key, Setting(ctx=4096, parallel=2, flash_attn="on", ubatch=256, swa_full=True)),
        ]
    cases += [
        Case("encoder", Setting(ctx=512, parallel=1, flash_attn="off", ubatch=512, batch=512)),
        Case("encoder", Setting(ctx=512, parallel=2, flash_attn="on", ubatch=256, batch=512)),
    ]
    return cases


PRODUCTION_LAYOUTS = ("qwen2.5-0.5b", "llama3.2-1b")


def production_settings() -> list[Setting]:
    """ctx 4096/16384/32768 x (1 slot, 4 split slots, 4 unified slots) x FA off/on x f16/q8_0 cache, ub 512.
    A quantized V cache needs flash attention, so with FA off the q8_0 rows quantize K only."""
    out: list[Setting] = []
    for ctx in (4096, 16384, 32768):
        for parallel, unified in ((1, False), (4, False), (4, True)):
            for fa in ("off", "on"):
                for cache in ("f16", "q8_0"):
                    out.append(Setting(ctx=ctx, parallel=parallel, kv_unified=unified, flash_attn=fa, cache_k=cache,
                                       cache_v=cache if fa == "on" else "f16", ubatch=512))
    return out


def production_panel() -> list[Case]:
    """The production-shape grid the benchmark runs (bench/RESULTS.md, own section)."""
    return [Case(key, s) for key in PRODUCTION_LAYOUTS for s in production_settings()]


def production_ci_panel() -> list[Case]:
    """The part of the grid the integration test runs by default (~5 s on 2 cores): a 896 MiB KQ matrix, the
    V-index and Hadamard-rotation rows (q8_0 K without FA, q8_0 K/V with FA), the 1B shape unified and split."""
    return [
        Case("qwen2.5-0.5b", Setting(ctx=32768, parallel=1, flash_attn="off", ubatch=512)),
        Case("qwen2.5-0.5b", Setting(ctx=4096, parallel=4, flash_attn="off", cache_k="q8_0", ubatch=512)),
        Case("qwen2.5-0.5b", Setting(ctx=16384, parallel=4, kv_unified=True, flash_attn="on", cache_k="q8_0",
                                     cache_v="q8_0", ubatch=512)),
        Case("llama3.2-1b", Setting(ctx=16384, parallel=4, kv_unified=True, flash_attn="off", ubatch=512)),
        Case("llama3.2-1b", Setting(ctx=32768, parallel=4, flash_attn="on", cache_k="q8_0", cache_v="q8_0",
                                    ubatch=512)),
    ]


# --------------------------------------------------------------------------------------------------
# what the stack renders and predicts
# --------------------------------------------------------------------------------------------------
LOG_ARGS = ["-lv", "4", "-t", "2", "--no-warmup"]
"""Buffer lines need verbosity 4; two threads; warm-up skipped (the buffers are reserved before it)."""


def server_settings(layout: Layout, path: Path, s: Setting) -> ServerSettings:
    """The typed settings the stack would render; K-quants run with `--no-repack` (CPU_REPACK would hold a
    second, CPU-feature-dependent copy of the repackable matrices, which GPU sizing never sees)."""
    extra = [*LOG_ARGS, "--no-repack"] if layout.key == "gqa-q4_k_m" else LOG_ARGS
    common = {
        "file": path.name, "ctx_size": s.ctx, "parallel": s.parallel, "kv_unified": s.kv_unified,
        "cache_type_k": s.cache_k, "cache_type_v": s.cache_v, "flash_attn": s.flash_attn, "ubatch": s.ubatch,
        "batch": s.batch, "n_gpu_layers": 0, "extra_args": extra,
    }
    if layout.embedding:
        return EmbeddingConfig.model_validate({**common, "name": "embed", "pooling": "mean"})
    return ModelConfig.model_validate({**common, "swa_full": s.swa_full})


def render_argv(layout: Layout, path: Path, s: Setting, port: int) -> list[str]:
    paths = RenderPaths(llama_server_bin=str(local.llama_server()), models_dir=str(path.parent),
                        model_host=local.LOOPBACK, embedding_host=local.LOOPBACK, embedding_port=port)
    settings = server_settings(layout, path, s)
    if isinstance(settings, EmbeddingConfig):
        return embedding_argv(settings, paths, cpu_only=True)
    assert isinstance(settings, ModelConfig)
    return [str(port) if a == PORT_MACRO else a for a in model_argv("m", settings, paths, cpu_only=True)]


@functools.lru_cache(maxsize=64)
def _header(path: Path, mtime_ns: int, size: int) -> GgufHeader:
    return read_header_file(path)


def header(path: Path) -> GgufHeader:
    """The fixture's GGUF header, parsed once per file version (a production vocabulary takes ~0.2 s)."""
    st = path.stat()
    return _header(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=64)
def _arch(path: Path, mtime_ns: int, size: int) -> ModelArch:
    return arch_from_header(_header(path, mtime_ns, size), f"gguf: {path.name}")


def load_arch(path: Path) -> ModelArch:
    st = path.stat()
    return _arch(path, st.st_mtime_ns, st.st_size)


def predict(layout: Layout, path: Path, s: Setting, calibration: Calibration | None = None) -> ProcessSize:
    settings = server_settings(layout, path, s)
    return size_process("m", "models.m", settings, load_arch(path), CPU, calibration or calibration_for(PINNED_BUILD))


# --------------------------------------------------------------------------------------------------
# what llama-server reports
# --------------------------------------------------------------------------------------------------
@dataclass
class Measured:
    """Buffers of one llama-server start, in MiB as printed (%.2f)."""

    argv: list[str]
    log: LlamaLog
    seconds: float
    rs_r_mib: float = 0.0
    rs_s_mib: float = 0.0
    log_text: str = field(default="", repr=False)

    @property
    def weights_mib(self) -> float:
        return self.log.model_total_mib

    @property
    def k_mib(self) -> float:
        return sum(kv.k_mib for kv in self.log.kv_sizes)

    @property
    def v_mib(self) -> float:
        return sum(kv.v_mib for kv in self.log.kv_sizes)

    @property
    def kv_mib(self) -> float:
        return self.log.kv_total_mib

    def cache_mib(self, kind: str | None) -> tuple[float, float]:
        """(K, V) MiB of the cache printed after an iSWA `creating <kind> KV cache` line."""
        rows = [kv for kv in self.log.kv_sizes if kv.kind == kind]
        return sum(kv.k_mib for kv in rows), sum(kv.v_mib for kv in rows)

    def cells(self, kind: str | None) -> int:
        return max((kv.cells for kv in self.log.kv_sizes if kv.kind == kind), default=0)

    @property
    def rs_mib(self) -> float:
        return self.log.rs_total_mib

    @property
    def compute_mib(self) -> float:
        return self.log.compute_total_mib

    @property
    def rotations(self) -> list[tuple[int, int]]:
        """(n_rot_k, n_rot_v) of each KV cache in creation order (non-SWA first), from llama-kv-cache.cpp's log."""
        ks = [int(x) for x in RE_ROT_K.findall(self.log_text)]
        vs = [int(x) for x in RE_ROT_V.findall(self.log_text)]
        return list(zip(ks, vs, strict=True))


class ServerStartError(RuntimeError):
    pass


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the server's process group (it was started in its own session), SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def run_server(argv: Sequence[str], log_path: Path, timeout: float = 60.0) -> Measured:
    """Start the exact argv, wait for /health 200, stop it (whole process group) and parse the log."""
    port = int(argv[argv.index("--port") + 1])
    env = {k: v for k, v in os.environ.items() if not (k.startswith("LLAMA_ARG_") or k == "LLAMA_API_KEY")}
    t0 = time.monotonic()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(list(argv), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    try:
        deadline = t0 + timeout
        while True:
            if proc.poll() is not None:
                text = log_path.read_text(errors="replace")
                raise ServerStartError(f"llama-server exited with {proc.returncode}:\n" + "\n".join(
                    text.splitlines()[-30:]))
            try:
                with urllib.request.urlopen(f"http://{local.LOOPBACK}:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServerStartError(f"llama-server not healthy after {timeout}s")
            time.sleep(0.02)
    finally:
        stop_process_group(proc)
    seconds = time.monotonic() - t0
    text = log_path.read_text(errors="replace")
    m = RE_RS_SIZE.search(text)
    return Measured(list(argv), parse_llama_log(text), seconds,
                    rs_r_mib=float(m.group(2)) if m else 0.0, rs_s_mib=float(m.group(4)) if m else 0.0,
                    log_text=text)


def measure(case: Case, log_dir: Path | None = None) -> tuple[Measured, ProcessSize]:
    """Run the real llama-server for one case and size it with the stack."""
    layout = layouts()[case.layout]
    path = layout.build()
    argv = render_argv(layout, path, case.setting, local.free_port())
    d = log_dir or Path(tempfile.mkdtemp(prefix="lls-sizing-"))
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", case.id)
    return run_server(argv, d / f"{safe}.log"), predict(layout, path, case.setting)


def mib(nbytes: int) -> float:
    return nbytes / MIB


def printed(nbytes: int) -> float:
    """Bytes as llama.cpp prints MiB (%.2f)."""
    return round(nbytes / MIB, 2)


