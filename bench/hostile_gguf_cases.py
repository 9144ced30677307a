"""Crafted GGUF files and what `python -m stack plan --json` must answer for each.

One table for two users: `tests/hostile/gguf/` asserts every case (in-process, fast) and
`bench/hostile_gguf.py` runs every case in a subprocess for its time and peak memory. It lives under
`bench/` because the benchmark may not import `tests/`, while tests already import `bench/` helpers; it
imports nothing from the product, so a bug in the reader cannot hide in the writer that tests it.

Files are written byte by byte here (no `gguf.GGUFWriter`, which refuses most of these mutations);
tensor data is a file hole (`truncate`), so a case that claims gigabytes costs no disk.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

PROJECT = "local-llm-stack"
GIB = 1 << 30
MIB = 1 << 20
MAX_HOLE = 64 * GIB

# GGUF value types (gguf.GGUFValueType) and the ggml tensor types used here.
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?", U64: "Q", I64: "q", F64: "d"}
T_F32, T_F16, T_Q8_0 = 0, 1, 8
_TYPE_SIZE = {T_F32: (1, 4), T_F16: (1, 2), T_Q8_0: (32, 34)}


@dataclass(frozen=True)
class Raw:
    """Bytes written verbatim where a value's encoding goes (after its type id)."""

    data: bytes


def enc_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def enc_value(vtype: int, value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.data
    if vtype == STR:
        return enc_str(value)
    if vtype == ARR:
        item_type, items = value
        return struct.pack("<IQ", item_type, len(items)) + b"".join(enc_value(item_type, v) for v in items)
    return struct.pack("<" + _FMT[vtype], value)


Kv = tuple[str, int, Any]
Tensor = tuple[str, tuple[int, ...], int]


def _pad(n: int, a: int) -> int:
    return -(-n // a) * a


def _nbytes(shape: tuple[int, ...], ggml_type: int) -> int:
    block, size = _TYPE_SIZE.get(ggml_type, (1, 1))
    n = 1
    for d in shape:
        n *= d
    return n // block * size


@dataclass(frozen=True)
class Gguf:
    """A GGUF file as its parts; the `claimed_*` and `offsets` fields let a case lie about them."""

    kvs: tuple[Kv, ...]
    tensors: tuple[Tensor, ...]
    version: int = 3
    magic: bytes = b"GGUF"
    alignment: int = 32
    claimed_tensors: int | None = None
    claimed_kv: int | None = None
    offsets: tuple[int, ...] | None = None
    extra: bytes = b""
    """Bytes appended to the header (a trailing record a lying count points into)."""

    def set(self, key: str, vtype: int, value: Any) -> Gguf:
        kvs = [kv for kv in self.kvs if kv[0] != key]
        return replace(self, kvs=(*kvs, (key, vtype, value)))

    def drop(self, key: str) -> Gguf:
        return replace(self, kvs=tuple(kv for kv in self.kvs if kv[0] != key))

    def add(self, key: str, vtype: int, value: Any) -> Gguf:
        return replace(self, kvs=(*self.kvs, (key, vtype, value)))

    def tensor_offsets(self) -> tuple[int, ...]:
        if self.offsets is not None:
            return self.offsets
        out, at = [], 0
        for _, shape, ggml_type in self.tensors:
            out.append(at)
            at += _pad(_nbytes(shape, ggml_type), self.alignment)
        return tuple(out)

    def data_bytes(self) -> int:
        return sum(_pad(_nbytes(s, t), self.alignment) for _, s, t in self.tensors)

    def header(self) -> bytes:
        n_t = len(self.tensors) if self.claimed_tensors is None else self.claimed_tensors
        n_kv = len(self.kvs) if self.claimed_kv is None else self.claimed_kv
        parts = [self.magic, struct.pack("<IQQ", self.version, n_t, n_kv)]
        for key, vtype, value in self.kvs:
            parts += [enc_str(key), struct.pack("<I", vtype), enc_value(vtype, value)]
        for (name, shape, ggml_type), offset in zip(self.tensors, self.tensor_offsets(), strict=True):
            parts += [enc_str(name), struct.pack("<I", len(shape)), *(struct.pack("<Q", d) for d in shape),
                      struct.pack("<IQ", ggml_type, offset)]
        return b"".join(parts) + self.extra

    def file_size(self) -> int:
        header = len(self.header())
        return (_pad(header, self.alignment) if self.tensors else header) + self.data_bytes()

    def write(self, path: Path, *, cut: int | None = None, size: int | None = None) -> None:
        """The header (cut at `cut` bytes if given), then a hole up to `size` (default: the complete file, at most
        `MAX_HOLE`: the cases claiming more are refused before the file's size matters)."""
        header = self.header()
        with open(path, "wb") as f:
            f.write(header[:cut] if cut is not None else header)
            if cut is None:
                f.truncate(min(self.file_size(), MAX_HOLE) if size is None else size)


N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_VOCAB, N_LAYER = 64, 4, 2, 128, 32, 2


def llama(arch: str = "llama", n_layer: int = N_LAYER) -> Gguf:
    """A small, complete llama-architecture model (GQA 4:2) that the sizing accepts."""
    a = arch
    kvs: list[Kv] = [
        ("general.architecture", STR, a),
        ("general.name", STR, "hostile-base"),
        (f"{a}.block_count", U32, n_layer),
        (f"{a}.context_length", U32, 2048),
        (f"{a}.embedding_length", U32, N_EMBD),
        (f"{a}.feed_forward_length", U32, N_FF),
        (f"{a}.attention.head_count", U32, N_HEAD),
        (f"{a}.attention.head_count_kv", U32, N_HEAD_KV),
        (f"{a}.attention.layer_norm_rms_epsilon", F32, 1e-5),
        (f"{a}.rope.freq_base", F32, 10000.0),
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.tokens", ARR, (STR, [f"t{i}" for i in range(N_VOCAB)])),
        ("tokenizer.ggml.token_type", ARR, (I32, [1] * N_VOCAB)),
    ]
    kv_dim = N_EMBD // N_HEAD * N_HEAD_KV
    tensors: list[Tensor] = [("token_embd.weight", (N_EMBD, N_VOCAB), T_F16)]
    for il in range(n_layer):
        p = f"blk.{il}."
        tensors += [
            (p + "attn_norm.weight", (N_EMBD,), T_F32),
            (p + "attn_q.weight", (N_EMBD, N_EMBD), T_F16),
            (p + "attn_k.weight", (N_EMBD, kv_dim), T_F16),
            (p + "attn_v.weight", (N_EMBD, kv_dim), T_F16),
            (p + "attn_output.weight", (N_EMBD, N_EMBD), T_F16),
            (p + "ffn_norm.weight", (N_EMBD,), T_F32),
            (p + "ffn_gate.weight", (N_EMBD, N_FF), T_F16),
            (p + "ffn_up.weight", (N_EMBD, N_FF), T_F16),
            (p + "ffn_down.weight", (N_FF, N_EMBD), T_F16),
        ]
    tensors += [("output_norm.weight", (N_EMBD,), T_F32), ("output.weight", (N_EMBD, N_VOCAB), T_F16)]
    return Gguf(tuple(kvs), tuple(tensors))


def projector() -> Gguf:
    """A minimal multimodal projector file: only its tensor bytes are sized."""
    return Gguf((("general.architecture", STR, "clip"),),
                (("mm.0.weight", (N_EMBD, N_EMBD), T_F16), ("mm.0.bias", (N_EMBD,), T_F32)))


BASE = llama()
BASE_HEADER = len(BASE.header())
A = "llama."


def _tensor_record_start(g: Gguf, index: int) -> int:
    """Byte offset of tensor `index`'s info record in `g.header()`."""
    head = Gguf(g.kvs, g.tensors[:index], g.version, g.magic, g.alignment, claimed_tensors=len(g.tensors),
                offsets=g.tensor_offsets()[:index])
    return len(head.header())


# ---------------------------------------------------------------------------------------------------------------
# What is placed where, and the stack file around it.

PLACEMENT_FILE = {"model": "m.gguf", "draft": "d.gguf", "mmproj": "p.gguf", "embeddings": "e.gguf"}
PLACEMENT_KEY = {
    "model": "models.m.file", "draft": "models.m.draft.file", "mmproj": "models.m.mmproj.file",
    "embeddings": "embeddings.file",
}

Make = Callable[[Path], None]
"""Writes the hostile entry at the given path (a file, directory, FIFO or symlink)."""


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    """Class of hostility, for the per-class counts."""
    make: Make
    exit_code: int
    key: str | None
    """Key path of the refusal in `errors` (exit 1) or of the warning (exit 0/2); None: neither expected."""
    message: str = ""
    """Text the refusal or warning must contain."""
    placement: str = "model"
    file: str | None = None
    """File name in models_dir (default: by placement)."""
    stack: dict[str, Any] = field(default_factory=dict)
    """Top-level stack keys to override."""
    root_cannot_run: bool = False
    """Needs a permission check that root bypasses: skipped when running as root."""

    @property
    def file_name(self) -> str:
        return self.file or PLACEMENT_FILE[self.placement]

    @property
    def expect_warning(self) -> bool:
        return self.key is not None and self.exit_code != 1


def stack_config(case: Case, models_dir: Path) -> dict[str, Any]:
    model: dict[str, Any] = {"file": case.file_name if case.placement == "model" else PLACEMENT_FILE["model"],
                             "ctx_size": 2048}
    config: dict[str, Any] = {"models_dir": str(models_dir), "models": {"m": model}}
    if case.placement == "draft":
        model["draft"] = {"file": case.file_name}
    elif case.placement == "mmproj":
        model["mmproj"] = {"file": case.file_name}
    elif case.placement == "embeddings":
        config["embeddings"] = {"name": "embed", "file": case.file_name}
    config.update(case.stack)
    return config


def prepare(case: Case, workdir: Path) -> Path:
    """Write the models directory (valid companions + the hostile entry) and the stack file; return the latter."""
    models = workdir / "models"
    models.mkdir(parents=True, exist_ok=True)
    if case.placement != "model":
        BASE.write(models / PLACEMENT_FILE["model"])
    case.make(models / case.file_name)
    config = workdir / "Pulumi.hostile.yaml"
    doc = {"config": {f"{PROJECT}:{k}": v for k, v in stack_config(case, models).items()}}
    config.write_text(yaml.safe_dump(doc))
    return config


# ---------------------------------------------------------------------------------------------------------------
# Makers.

def file_of(g: Gguf, *, cut: int | None = None, size: int | None = None) -> Make:
    return lambda path: g.write(path, cut=cut, size=size)


def raw_file(data: bytes) -> Make:
    def make(path: Path) -> None:
        path.write_bytes(data)
    return make


def directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.gguf").write_bytes(b"")


def symlink_loop(path: Path) -> None:
    os.symlink(path.name, path)


def symlink_chain_loop(path: Path) -> None:
    other = path.with_name("loop-b.gguf")
    os.symlink(other.name, path)
    os.symlink(path.name, other)


def dangling_symlink(path: Path) -> None:
    os.symlink("nowhere.gguf", path)


def fifo(path: Path) -> None:
    os.mkfifo(path)


def unreadable(path: Path) -> None:
    BASE.write(path)
    path.chmod(0)


def nothing(path: Path) -> None:
    """The file is simply not there."""


def sparse_strings(count: int, length: int) -> Make:
    """`count` metadata strings of `length` zero bytes each (holes), then a valid rest: only the bytes cap stops it."""
    def make(path: Path) -> None:
        g = BASE
        tail = Gguf(g.kvs, g.tensors, claimed_kv=0).header()[24:]
        with open(path, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, len(g.tensors), len(g.kvs) + count))
            for i in range(count):
                f.write(enc_str(f"pad.{i}") + struct.pack("<IQ", STR, length))
                f.seek(length, os.SEEK_CUR)
            f.write(tail)
    return make


# ---------------------------------------------------------------------------------------------------------------
# The table.

NOT_GGUF = "not a usable GGUF model"
CUT = "cut short"


def _cases() -> list[Case]:
    cases: list[Case] = []

    def case(name: str, kind: str, make: Make, exit_code: int = 1, key: str | None = "models.m.file",
             message: str = "", **kw: Any) -> None:
        cases.append(Case(name, kind, make, exit_code, key, message, **kw))

    def refused(name: str, kind: str, g: Gguf, message: str, **kw: Any) -> None:
        case(name, kind, file_of(g), message=message, **kw)

    # controls: a file the sizing accepts, and legal variations of it
    case("valid-base", "control", file_of(BASE), 0, None)
    case("valid-v2", "control", file_of(replace(BASE, version=2)), 0, None)
    case("valid-alignment-64", "control", file_of(replace(BASE.add("general.alignment", U32, 64), alignment=64)),
         0, None)
    case("valid-per-layer-kv-array", "control",
         file_of(BASE.set(A + "attention.head_count_kv", ARR, (I32, [2, 1]))), 0, None)
    case("valid-kv-heads-zero", "control", file_of(BASE.set(A + "attention.head_count_kv", U32, 0)), 0, None)
    case("valid-tensor-name-63-bytes", "control", file_of(replace(BASE, tensors=(
        *BASE.tensors, ("x" * 63, (N_EMBD,), T_F32)))), 0, None)
    case("valid-big-vocab-300k", "control", file_of(
        BASE.set("tokenizer.ggml.tokens", ARR, (STR, ["tok"] * 300_000)).drop("tokenizer.ggml.token_type")
        .set(A + "vocab_size", U32, 300_000)), 0, None)
    case("valid-bool-byte-2", "control", file_of(BASE.add("general.flag", BOOL, Raw(b"\x02"))), 0, None)
    case("valid-as-draft", "control", file_of(BASE), 0, None, placement="draft")
    case("valid-as-mmproj", "control", file_of(projector()), 0, None, placement="mmproj")
    case("valid-as-embeddings", "control", file_of(BASE), 0, None, placement="embeddings")

    # truncation inside the header, at field boundaries and in between
    first_tensor = _tensor_record_start(BASE, 0)
    for cut in sorted({0, 1, 3, 4, 7, 8, 12, 16, 20, 23, 24, 30, 60, 100, 200, first_tensor - 1, first_tensor,
                       first_tensor + 5, (first_tensor + BASE_HEADER) // 2, BASE_HEADER - 9, BASE_HEADER - 1}):
        message = "not a GGUF file" if cut < 4 else CUT
        case(f"cut-header-at-{cut}", "truncation", file_of(BASE, cut=cut), message=message)
    # truncation after the header: the tensor data is shorter than the header says (a partial download)
    full = BASE.file_size()
    for name, size in (("no-data", _pad(BASE_HEADER, 32)), ("half-data", full // 2), ("one-byte-short", full - 1)):
        case(f"cut-data-{name}", "truncation", file_of(BASE, size=size), message=CUT)
    case("cut-data-as-draft", "truncation", file_of(BASE, size=full - 1), key="models.m.draft.file",
         message=CUT, placement="draft")
    case("cut-data-as-mmproj", "truncation", file_of(projector(), size=projector().file_size() - 1),
         key="models.m.mmproj.file", message=CUT, placement="mmproj")
    case("cut-data-as-embeddings", "truncation", file_of(BASE, size=full - 1), key="embeddings.file",
         message=CUT, placement="embeddings")
    case("cut-header-as-draft", "truncation", file_of(BASE, cut=100), key="models.m.draft.file", message=CUT,
         placement="draft")

    # magic and version
    refused("magic-ggml", "magic/version", replace(BASE, magic=b"GGML"), "missing GGUF magic")
    refused("magic-lowercase", "magic/version", replace(BASE, magic=b"gguf"), "missing GGUF magic")
    case("not-gguf-zip", "magic/version", raw_file(b"PK\x03\x04" + bytes(60)), message="missing GGUF magic")
    case("empty-file", "magic/version", raw_file(b""), message="not a GGUF file")
    for version, hint in ((0, "version 0"), (1, "version 1"), (4, "version 4"), (0x03000000, "big-endian")):
        refused(f"version-{version:#x}", "magic/version", replace(BASE, version=version), hint)

    # huge or lying counts
    for n in (1 << 63, (1 << 64) - 1, 65_537):
        refused(f"tensor-count-{n}", "huge count", replace(BASE, claimed_tensors=n), "tensors (at most")
        refused(f"kv-count-{n}", "huge count", replace(BASE, claimed_kv=n), "metadata keys (at most")
    refused("tensor-count-one-more", "huge count", replace(BASE, claimed_tensors=len(BASE.tensors) + 1),
            "data offset")
    refused("kv-count-one-more", "huge count", replace(BASE, claimed_kv=len(BASE.kvs) + 1), "")
    for n in (1 << 63, (1 << 64) - 1, (1 << 21) + 1):
        refused(f"array-u32-count-{n}", "huge count",
                BASE.add("x.arr", ARR, Raw(struct.pack("<IQ", U32, n))), "array of")
        refused(f"array-str-count-{n}", "huge count",
                BASE.add("x.arr", ARR, Raw(struct.pack("<IQ", STR, n))), "array of")
    refused("arrays-over-total-items", "huge count", Gguf(
        (*BASE.kvs, *((f"x.arr{i}", ARR, Raw(struct.pack("<IQ", U8, 1 << 21) + bytes(1 << 21))) for i in range(3))),
        BASE.tensors), "items in all")
    refused("array-claims-more-than-file", "huge count",
            BASE.add("x.arr", ARR, Raw(struct.pack("<IQ", U32, 1000) + bytes(8))), "")
    for n in (1 << 63, (1 << 64) - 1, 16 * MIB + 1):
        refused(f"string-length-{n}", "huge count", BASE.add("x.str", STR, Raw(struct.pack("<Q", n))), "claims")
    refused("key-length-2^40", "huge count", replace(
        BASE, tensors=(), claimed_kv=len(BASE.kvs) + 1, extra=struct.pack("<Q", 1 << 40)), "claims")
    case("header-over-64MiB", "huge count", sparse_strings(5, 15 * MIB), message="runs past 64 MiB")
    refused("tensor-name-length-2^63", "huge count", replace(
        BASE, tensors=(), claimed_tensors=1, extra=struct.pack("<Q", 1 << 63)), "claims")
    refused("tensor-dims-2^32-1", "huge count", replace(
        BASE, tensors=(), claimed_tensors=1, extra=enc_str("w") + struct.pack("<I", (1 << 32) - 1)), "dimensions")
    case("tensor-claims-2^40-bytes", "huge count", file_of(replace(
        BASE, tensors=(*BASE.tensors, ("huge.weight", (1 << 20, 1 << 19), T_F16))), size=full), message=CUT)
    case("sparse-10GiB-holds-its-tensor", "huge count", file_of(replace(
        BASE, tensors=(*BASE.tensors[:-1], ("output.weight", (1 << 16, 5 << 14), T_F16)))), 2, None,
        stack={"gpu": {"vram_mib": 8192}})
    case("sparse-10GiB-claims-2^50", "huge count", file_of(replace(
        BASE, tensors=(*BASE.tensors, ("huge.weight", (1 << 25, 1 << 25), T_F16))), size=10 * GIB), message=CUT)
    case("sparse-10GiB-tensor-count-2^63", "huge count", file_of(replace(BASE, claimed_tensors=1 << 63),
                                                                   size=10 * GIB), message="tensors (at most")
    case("tensor-elements-over-int64", "huge count", file_of(replace(
        BASE, tensors=(*BASE.tensors, ("huge.weight", (1 << 32, 1 << 32), T_F32))), size=full), message="2^63")

    # nesting and unknown value types
    refused("array-of-arrays", "nesting", BASE.add("x.nested", ARR, (ARR, [(U32, [1, 2])])), "array of arrays")
    refused("array-of-arrays-empty", "nesting", BASE.add("x.nested", ARR, Raw(struct.pack("<IQ", ARR, 0))),
            "array of arrays")
    refused("array-of-arrays-of-arrays", "nesting",
            BASE.add("x.nested", ARR, Raw(struct.pack("<IQIQ", ARR, 1, ARR, 1 << 40))), "array of arrays")
    refused("array-of-arrays-huge", "nesting", BASE.add("x.nested", ARR, Raw(struct.pack("<IQ", ARR, 1 << 62))),
            "array of arrays")
    for vt in (13, 255, (1 << 32) - 1):
        refused(f"value-type-{vt}", "unknown type", BASE.add("x.val", vt, Raw(b"")), "unknown GGUF value type")
        refused(f"array-item-type-{vt}", "unknown type", BASE.add("x.arr", ARR, Raw(struct.pack("<IQ", vt, 1))),
                "unknown GGUF value type")
    for tt in (4, 5, 31, 43, 999, (1 << 32) - 1):
        refused(f"tensor-type-{tt}", "unknown type", replace(
            BASE, tensors=(*BASE.tensors[:-1], ("output.weight", (N_EMBD, N_VOCAB), tt))), "unknown tensor type id")

    # hyperparameters of the wrong type
    wrong_types: tuple[tuple[str, int, Any, str], ...] = (
        ("block_count", STR, "2", "not a string"),
        ("block_count", F32, 2.0, "not a float"),
        ("block_count", BOOL, True, "not a bool"),
        ("block_count", ARR, (U32, [2, 2]), "not an array"),
        ("embedding_length", F64, 64.0, "not a float"),
        ("embedding_length", ARR, (U32, [64]), "not an array"),
        ("context_length", STR, "2048", "not a string"),
        ("attention.head_count", STR, "4", "not a string"),
        ("attention.head_count", F32, 4.0, "not a float"),
        ("attention.head_count_kv", BOOL, True, "not a bool"),
        ("attention.head_count_kv", ARR, (STR, ["2", "2"]), "not a string"),
        ("attention.head_count_kv", ARR, (F32, [2.0, 2.0]), "not a float"),
        ("feed_forward_length", STR, "128", "not a string"),
        ("attention.key_length", F32, 16.0, "not a float"),
        ("expert_count", STR, "8", "not a string"),
        ("vocab_size", F64, 32.0, "not a float"),
        ("attention.sliding_window", STR, "4096", "not a string"),
    )
    for key, vtype, value, why in wrong_types:
        names = {STR: "string", F32: "f32", F64: "f64", BOOL: "bool", U32: "u32"}
        tag = f"array-of-{names[value[0]]}" if vtype == ARR else names[vtype]
        refused(f"type-{key}-{tag}", "wrong type", BASE.set(A + key, vtype, value), why)
    refused("type-architecture-int", "wrong type", BASE.set("general.architecture", U32, 7), "general.architecture")
    refused("type-architecture-empty", "wrong type", BASE.set("general.architecture", STR, ""),
            "general.architecture")
    refused("type-tokens-int-array", "wrong type", BASE.set("tokenizer.ggml.tokens", ARR, (I32, [1] * N_VOCAB)),
            "tokenizer.ggml.tokens")

    # hyperparameters out of range
    for key, vtype, value in (
        ("block_count", I32, -1), ("block_count", U32, 0), ("block_count", U32, 513),
        ("block_count", U32, (1 << 32) - 1), ("block_count", U64, 1 << 63), ("block_count", I64, -(1 << 63)),
        ("embedding_length", U32, 0), ("embedding_length", I32, -64), ("embedding_length", U64, 1 << 40),
        ("context_length", U32, 0), ("context_length", U64, 1 << 40),
        ("attention.head_count", I32, -4), ("attention.head_count", U32, 1 << 20),
        ("attention.head_count_kv", I32, -2), ("attention.head_count_kv", I32, -(1 << 31)),
        ("attention.head_count_kv", U32, 1 << 30),
        ("feed_forward_length", I32, -128), ("feed_forward_length", U64, 1 << 50),
        ("attention.key_length", I32, -16), ("attention.key_length", U32, 1 << 24),
        ("attention.value_length", U32, 1 << 24),
        ("expert_count", U32, 2048), ("vocab_size", I32, -1), ("vocab_size", U64, 1 << 40),
        ("nextn_predict_layers", U32, 3), ("attention.sliding_window", I32, -4096),
    ):
        refused(f"range-{key}-{value}", "out of range", BASE.set(A + key, vtype, value), f"{A}{key} = ")
    refused("kv-heads-exceed-heads", "out of range", BASE.set(A + "attention.head_count_kv", U32, 8),
            "cannot outnumber")
    refused("kv-heads-array-exceeds-heads", "out of range",
            BASE.set(A + "attention.head_count_kv", ARR, (I32, [2, 5])), "cannot outnumber")
    refused("kv-heads-array-negative", "out of range",
            BASE.set(A + "attention.head_count_kv", ARR, (I32, [2, -2])), "layer 1")
    big = replace(BASE, tensors=(*BASE.tensors[:-1], ("output.weight", (1 << 16, 5 << 14), T_F16)))
    # before range checks, the last three were sized as negative MiB and made the 10 GiB model "fit" in 8 GiB
    for key, value in (("attention.head_count_kv", -(1 << 31)), ("attention.key_length", -(1 << 31)),
                       ("attention.value_length", -(1 << 31)), ("embedding_length", -(1 << 20))):
        case(f"negative-{key}-cannot-hide-10GiB", "out of range", file_of(big.set(A + key, I32, value)),
             message=f"{key} = {value}", stack={"gpu": {"vram_mib": 8192}})
    refused("experts-used-exceed-experts", "out of range",
            BASE.set(A + "expert_count", U32, 8).set(A + "expert_used_count", U32, 9), "expert_used_count")
    refused("experts-used-without-experts", "out of range", BASE.set(A + "expert_used_count", U32, 2),
            "expert_used_count")
    refused("kv-heads-negative-as-embeddings", "out of range", BASE.set(A + "attention.head_count_kv", I32, -2),
            "head_count_kv", key="embeddings.file", placement="embeddings")
    refused("kv-heads-negative-as-draft", "out of range", BASE.set(A + "attention.head_count_kv", I32, -2),
            "head_count_kv", key="models.m.draft.file", placement="draft")

    # per-layer arrays of the wrong length
    for key, items in (("attention.head_count_kv", [2]), ("attention.head_count_kv", [2, 2, 2]),
                       ("attention.head_count", [4] * 600), ("feed_forward_length", []),
                       ("expert_used_count", [0])):
        refused(f"per-layer-{key}-len-{len(items)}", "list-typed", BASE.set(A + key, ARR, (I32, items)),
                "per-layer array")
    refused("swa-pattern-floats", "list-typed", llama("gemma2").set("gemma2.attention.sliding_window_pattern",
                                                                      ARR, (F32, [1.0, 0.0])), "not a float")

    # missing required keys
    for key in ("block_count", "embedding_length", "context_length"):
        refused(f"missing-{key}", "missing key", BASE.drop(A + key), f"{A}{key} is missing")
    refused("missing-architecture", "missing key", BASE.drop("general.architecture"),
            "general.architecture is missing")
    refused("architecture-unknown-prefix", "missing key", BASE.set("general.architecture", STR, "qwen2"),
            "qwen2.block_count is missing")

    # non-finite floats
    for key, vtype, value in (("rope.freq_base", F32, float("nan")), ("rope.freq_base", F32, float("inf")),
                              ("rope.freq_base", F64, float("-inf")),
                              ("attention.layer_norm_rms_epsilon", F32, float("nan")),
                              ("attention.layer_norm_rms_epsilon", F64, float("inf"))):
        refused(f"float-{key}-{value}-{vtype}", "non-finite", BASE.set(A + key, vtype, value), "finite")
    refused("float-array-nan", "non-finite", BASE.add(A + "swiglu_clamp_exp", ARR, (F32, [0.0, float("nan")])),
            "finite")

    # duplicates and names llama.cpp refuses
    refused("duplicate-key", "duplicate", BASE.add(A + "block_count", U32, 2), "appears twice")
    refused("duplicate-key-other-type", "duplicate", BASE.add(A + "block_count", STR, "2"), "appears twice")
    refused("duplicate-tensor", "duplicate", replace(BASE, tensors=(*BASE.tensors, BASE.tensors[0])),
            "appears twice")
    refused("empty-key", "duplicate", BASE.add("", U32, 1), "is empty")
    refused("tensor-name-64-bytes", "duplicate", replace(BASE, tensors=(*BASE.tensors, ("x" * 64, (N_EMBD,), T_F32))),
            "claims 64 bytes")

    # tensor records
    refused("tensor-5-dims", "tensor record", replace(BASE, tensors=(*BASE.tensors, ("w5", (1, 1, 1, 1, 1), T_F32))),
            "5 dimensions")
    refused("tensor-negative-dim", "tensor record", replace(
        BASE, tensors=(*BASE.tensors, ("neg", ((1 << 64) - 64,), T_F32))), "negative dimension")
    refused("tensor-row-not-block-multiple", "tensor record", replace(
        BASE, tensors=(*BASE.tensors, ("q", (33, 2), T_Q8_0))), "block size")
    offsets = BASE.tensor_offsets()
    refused("tensor-offset-misaligned", "tensor record", replace(BASE, offsets=(*offsets[:-1], offsets[-1] + 1)),
            "data offset")
    refused("tensor-offset-out-of-order", "tensor record",
            replace(BASE, offsets=(offsets[1], offsets[0], *offsets[2:])), "data offset")
    refused("tensor-offset-2^63", "tensor record", replace(BASE, offsets=(*offsets[:-1], 1 << 63)), "data offset")
    for name, vtype, value in (("zero", U32, 0), ("three", U32, 3), ("u64", U64, 32), ("string", STR, "32")):
        refused(f"alignment-{name}", "tensor record", BASE.add("general.alignment", vtype, value),
                "general.alignment")

    # not a file at all, or not readable
    case("directory", "file kind", directory, message="it is a directory")
    case("symlink-loop", "file kind", symlink_loop, message="symlink loop")
    case("symlink-chain-loop", "file kind", symlink_chain_loop, message="symlink loop")
    case("fifo", "file kind", fifo, message="not a regular file")
    case("missing-uncatalogued", "file kind", nothing, message="does not exist")
    case("dangling-symlink-uncatalogued", "file kind", dangling_symlink, message="does not exist")
    case("missing-catalogued-warns", "file kind", nothing, 0, key="models.m.file", message="does not exist",
         file="Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    case("directory-as-draft", "file kind", directory, key="models.m.draft.file", message="it is a directory",
         placement="draft")
    case("fifo-as-mmproj", "file kind", fifo, key="models.m.mmproj.file", message="not a regular file",
         placement="mmproj")
    case("symlink-loop-as-embeddings", "file kind", symlink_loop, key="embeddings.file", message="symlink loop",
         placement="embeddings")
    case("unreadable", "file kind", unreadable, message="Permission denied", root_cannot_run=True)
    return cases


CASES: tuple[Case, ...] = tuple(_cases())
