"""The sizing gate against the real llama-server b11434 (CPU), one fixture per KV layout llama.cpp has.

Each case starts llama-server once, with the argv the stack renders (`stack.render.server_args.model_argv` /
`embedding_argv`, local `RenderPaths`, `-ngl 0 --fit off` plus `-lv 4 -t 2 --no-warmup`), and compares
what llama.cpp allocates with `stack.sizing.process_size.size_process` on the `cpu` profile:

* weights: the `CPU_Mapped` buffer (the mmap span of the tensors) against our total tensor bytes, and
  the placement split (input / layers / output, tied-output copy) against the GGUF tensor list;
* KV: K and V of every cache (non-SWA and SWA separately) against the `%.2f MiB` lines, so to 0.005 MiB;
  cells per cache; context shape (n_ctx, n_ctx_seq, streams);
* recurrent state: R and S lines;
* compute buffer: reported separately; the b11434 calibration must stay within -5 %..+20 % of the CPU
  buffer (the table of errors is in bench/RESULTS.md); on the production shapes within 0.5 %.

Besides one small fixture per layout, a few production-shape cases (`production_ci_panel`: Qwen2.5-0.5B and
Llama-3.2-1B hyperparameters, zero weights, compute buffers up to ~1 GiB) run by default, ~5 s on 2 cores;
`LLS_SIZING_PRODUCTION=all` runs the whole 72-case grid of bench/RESULTS.md instead (~1 min).

Needs `scripts/install-tools.sh`; `LLS_ALLOW_MISSING_TOOLS=1` skips instead of failing without llama-server.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.sizing_panel import (
    Case,
    Measured,
    Setting,
    header,
    layouts,
    load_arch,
    measure,
    panel,
    production_ci_panel,
    production_panel,
)
from models.config import CacheType
from stack.sizing.compute_buffer import rotation_sizes
from stack.sizing.kv_cache import recurrent_state_parts
from stack.sizing.process_size import ProcessSize
from stack.units import MIB
from tests.harness import binaries

pytestmark = pytest.mark.integration

PRINTED = 0.005 + 1e-9
"""llama.cpp prints MiB with %.2f: a byte-exact prediction is within half a hundredth."""
TENSOR_ALIGNMENT = 32
"""GGUF aligns every tensor's data to 32 bytes; the mmap span counts the padding between tensors."""

PRODUCTION_CASES = production_panel() if os.environ.get("LLS_SIZING_PRODUCTION") == "all" else production_ci_panel()
SHORT_CTX_CASES = [
    Case("gqa-tied", Setting(ctx=300, parallel=1, flash_attn="off", ubatch=512)),
    Case("per-layer-kv", Setting(ctx=300, parallel=1, flash_attn="on", ubatch=512, batch=512)),
    Case("swa", Setting(ctx=300, parallel=1, flash_attn="on", ubatch=512)),
]
"""-c below -ub and off the 256 grid: llama.cpp caps n_ubatch by -c before it pads n_ctx to 512."""
CASES = panel() + PRODUCTION_CASES + SHORT_CTX_CASES


@pytest.fixture(scope="module", autouse=True)
def _require_llama_server() -> None:
    binaries.require(binaries.llama_server)


class Runs:
    """Each case's server is started once; later tests reuse the result."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.done: dict[str, tuple[Measured, ProcessSize]] = {}

    def get(self, case: Case) -> tuple[Measured, ProcessSize]:
        if case.id not in self.done:
            try:
                layouts()[case.layout].build()
            except RuntimeError as exc:  # e.g. the MiniLM source package is not installed
                pytest.skip(f"{case.layout} fixture unavailable: {exc}")
            self.done[case.id] = measure(case, self.log_dir)
        return self.done[case.id]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return Runs(tmp_path_factory.mktemp("sizing-logs"))


def assert_printed(printed_mib: float, nbytes: int, what: str, lines: int = 1) -> None:
    """`printed_mib` is the sum of `lines` values printed with %.2f."""
    assert abs(printed_mib - nbytes / MIB) <= PRINTED * lines, (
        f"{what}: llama.cpp {printed_mib} MiB, ours {nbytes / MIB:.4f}"
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_context_shape(case: Case, runs: Runs) -> None:
    m, p = runs.get(case)
    ctx = m.log
    assert ctx.n_seq_max == p.shape.n_seq_max
    if p.arch.causal:
        assert (ctx.n_ctx, ctx.n_ctx_seq) == (p.shape.n_ctx, p.shape.n_ctx_seq)
        assert ctx.kv_unified is case.setting.kv_unified
    assert ctx.flash_attn == ("enabled" if case.setting.flash_attn == "on" else "disabled")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_weights(case: Case, runs: Runs) -> None:
    m, p = runs.get(case)
    assert list(m.log.model_buffers) == ["CPU_Mapped"], m.log.model_buffers
    n_tensors = len(header(layouts()[case.layout].build()).tensors)
    slack = n_tensors * TENSOR_ALIGNMENT / MIB
    assert abs(m.weights_mib - p.weights_bytes / MIB) <= PRINTED + slack, (m.weights_mib, p.weights_bytes / MIB)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kv_cache(case: Case, runs: Runs) -> None:
    m, p = runs.get(case)
    kv = p.kv
    if not p.arch.causal or kv.layers_with_kv == 0:
        assert m.log.kv_sizes == [] and kv.bytes == 0
        return
    if p.arch.has_swa:
        # iSWA: one cache of non-SWA layers, one of SWA layers, each with its own cell count
        base_k, base_v = m.cache_mib("non-SWA")
        swa_k, swa_v = m.cache_mib("SWA")
        assert_printed(base_k, kv.k_base_bytes, "non-SWA K")
        assert_printed(base_v, kv.v_base_bytes, "non-SWA V")
        assert_printed(swa_k, kv.k_swa_bytes, "SWA K")
        assert_printed(swa_v, kv.v_swa_bytes, "SWA V")
        assert m.cells("non-SWA") == kv.cells
        assert m.cells("SWA") == kv.swa_cells
        assert sum(c.layers for c in m.log.kv_sizes if c.kind == "SWA") == kv.swa_layers
    else:
        (line,) = m.log.kv_sizes
        assert_printed(line.k_mib, kv.k_bytes, "K")
        assert_printed(line.v_mib, kv.v_bytes, "V")
        assert (line.cells, line.layers, line.n_stream) == (kv.cells, kv.layers_with_kv, p.shape.n_stream)
    assert sum(c.layers for c in m.log.kv_sizes) == kv.layers_with_kv
    # one buffer line per cache; CPU alignment padding is nil (tensors here are multiples of 32 bytes)
    assert_printed(m.kv_mib, kv.bytes, "KV buffer", lines=len(m.log.kv_sizes))


@pytest.mark.parametrize("case", [c for c in CASES if layouts()[c.layout].key.startswith(("recurrent", "hybrid"))],
                         ids=lambda c: c.id)
def test_recurrent_state(case: Case, runs: Runs) -> None:
    m, p = runs.get(case)
    r, s = recurrent_state_parts(p.arch, p.shape.n_seq_max)
    assert_printed(m.rs_r_mib, r, "R")
    assert_printed(m.rs_s_mib, s, "S")
    assert_printed(m.rs_mib, p.recurrent_bytes, "RS buffer")
    assert p.recurrent_bytes == r + s > 0


@pytest.mark.parametrize("case", [c for c in CASES if "q8_0" in c.setting.label and c.layout != "mla"],
                         ids=lambda c: c.id)
def test_kv_rotation(case: Case, runs: Runs) -> None:
    """Quantized caches with 64-multiple heads are Hadamard-rotated (its inputs and the rotated Q are in the
    compute buffer); MLA's K-only attention builds no rotation although its cache logs an n_rot_k."""
    m, p = runs.get(case)
    caches = [False, True] if p.arch.has_swa else [False]
    k, v = CacheType(case.setting.cache_k), CacheType(case.setting.cache_v)
    expected = [rotation_sizes(p.arch, swa, k, v) for swa in caches] if m.log.kv_sizes else []
    assert m.rotations == expected


def test_weights_split_and_tied_output() -> None:
    """Placement groups from the tensor list: token_embd stays on the host; a tied output is a GPU copy."""
    for key, tied in (("gqa-tied", True), ("gqa-untied-q8_0", False), ("gqa-q4_k_m", False), ("mla", False)):
        path = layouts()[key].build()
        w = load_arch(path).weights
        (token_embd,) = [t for t in header(path).tensors if t.name == "token_embd.weight"]
        assert w.input_bytes == token_embd.n_bytes > 0, key
        assert w.total_bytes == w.input_bytes + sum(w.layer_bytes) + w.output_bytes
        assert (w.tied_output_bytes == w.input_bytes) is tied, key
        # CUDA: all layers and the output on the GPU, plus one padded row per quantized tensor
        assert w.gpu_bytes(999) == w.total_bytes - w.input_bytes + w.tied_output_bytes + w.cuda_pad_bytes
        assert w.host_bytes(999) == w.input_bytes
        assert w.host_bytes(0) == w.total_bytes


def _by(case_filter: str) -> list[Case]:
    return [c for c in CASES if c.layout == case_filter]


@pytest.mark.parametrize("layout", ["swa", "swa-shared-kv", "shared-kv", "hybrid-swa"])
def test_swa_cells_follow_slots_and_ubatch_not_ctx(layout: str, runs: Runs) -> None:
    """llama-kv-cache-iswa.cpp: PAD256(min(n_ctx_seq, n_swa * (unified ? n_seq : 1) + n_ubatch)), or the full
    size with --swa-full; the measured cells, not only ours."""
    measured = {c.setting: runs.get(c)[0] for c in _by(layout)}
    by_label = {s.label: m.cells("SWA") for s, m in measured.items()}
    assert by_label["c4096 np1 fa-off ub512"] == by_label["c8192 np1 fa-off ub512"] == 768  # 128 + 512 -> 768
    assert by_label["c8192 np4u fa-on ub256"] == 768  # 4 x 128 + 256, one unified stream
    assert by_label["c8192 np2 fa-on ub1024 q8_0/q8_0"] == 1280  # 128 + 1024 per stream
    assert by_label["c4096 np2 fa-on ub256 swa-full"] == 2048  # = n_ctx_seq


def test_compute_buffer_errors(runs: Runs) -> None:
    """The compute buffer is not closed-form: every case must stay within the calibration's band."""
    rows = []
    for case in CASES:
        m, p = runs.get(case)
        err = (p.compute_bytes / MIB - m.compute_mib) / m.compute_mib
        rows.append((case.id, m.compute_mib, p.compute_bytes / MIB, err))
    report = "\n".join(f"{cid:58s} llama.cpp {mm:8.2f}  ours {pp:8.2f}  {e:+7.1%}" for cid, mm, pp, e in rows)
    print("\ncompute buffer, CPU b11434:\n" + report)
    bad = [r for r in rows if not -0.05 <= r[3] <= 0.20]
    assert not bad, report


def test_compute_buffer_at_production_shapes(runs: Runs) -> None:
    """Where the KQ matrix, the mask and the logits have their real size the rules hold to 0.5 %."""
    for case in PRODUCTION_CASES:
        m, p = runs.get(case)
        err = p.compute_bytes / MIB - m.compute_mib
        assert abs(err) <= 0.005 * m.compute_mib, f"{case.id}: llama.cpp {m.compute_mib} MiB, ours {err:+.2f} MiB"


@pytest.mark.parametrize("case", SHORT_CTX_CASES, ids=lambda c: c.id)
def test_ubatch_is_capped_by_the_unpadded_context(case: Case, runs: Runs) -> None:
    """The KV (SWA cells) and the compute buffer use the n_ubatch llama.cpp logs: 300, not the padded 512."""
    m, p = runs.get(case)
    assert m.log.context["n_ubatch"] == str(p.process.n_ubatch(p.arch.causal)) == "300"
    assert_printed(m.compute_mib, p.compute_bytes, "compute buffer")
