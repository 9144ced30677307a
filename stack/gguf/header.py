"""Read a GGUF file's metadata and tensor list from its header bytes only, within hard bounds.

A streaming reader (not `gguf.GGUFReader`, which maps the whole file) so that the same code
works on a local file, on the first megabytes of a remote one, and never touches tensor data.
Value and tensor types come from the `gguf` package's own tables.

A GGUF header is untrusted input: every count and length in it is checked against the bounds below
before anything proportional to it is read or allocated, so `plan` on any file, however crafted,
reads at most `MAX_HEADER_BYTES` and finishes in about a second. What the pinned llama.cpp's own reader
(`ggml/src/gguf.cpp`, b11434) refuses is refused here too, so a file that would fail to load is
named at plan time rather than when llama-swap starts it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from stack.units import MIB

GGUF_MAGIC = b"GGUF"

MAX_HEADER_BYTES = 64 * MIB
"""Metadata plus tensor infos. The largest real header we know is gemma-4's (15.0 MiB: a 262,144-token
vocabulary with scores and types, and 514,906 merges); Llama 3 is 7.5 MiB, Qwen2.5 5.7 MiB. Tensor infos
add about 60 bytes per tensor (70 KiB for DeepSeek-V3)."""
MAX_TENSORS = 65_536
"""Real models have at most a few thousand (DeepSeek-V3: 1,147; MoE experts are fused per layer)."""
MAX_METADATA_KV = 4_096
"""Real models carry 20 to 100 metadata keys."""
MAX_ARRAY_ITEMS = 1 << 21
"""Items in one metadata array: four times the largest real one (gemma-4's 514,906 merges)."""
MAX_TOTAL_ARRAY_ITEMS = 1 << 22
"""Items in all metadata arrays together: three times gemma-4's 1.3 million. Bounds the time spent
walking string arrays, whose values are skipped but whose lengths must still be read one by one."""
MAX_STRING_BYTES = 16 * MIB
"""One string value (a chat template, or the whole tokenizer.json some early converters embedded)."""
MAX_KEY_BYTES = 4_096
"""One metadata key; real keys are under 100 bytes."""
MAX_ARRAY_DEPTH = 1
"""Arrays of arrays are refused: llama.cpp's reader does not accept them either."""
KEPT_ARRAY_ITEMS = 512
"""Longer arrays (the tokenizer's) keep only their item type and length, not their values: nothing the
sizing reads is longer (per-layer arrays hold one value per layer, and llama.cpp's LLAMA_MAX_LAYERS is
512), and a 262k-token vocabulary as Python strings would cost 100 MiB."""
KEPT_STRING_BYTES = 1 * MIB
"""Longer string values are skipped like long arrays: chat templates are tens of KiB at most."""
MAX_TENSOR_NAME = 63
"""llama.cpp refuses names of GGML_MAX_NAME (64) bytes or more."""
MAX_DIMS = 4
"""GGML_MAX_DIMS."""
INT64_MAX = (1 << 63) - 1
DEFAULT_ALIGNMENT = 32
_CHUNK = 1 * MIB

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_U64 = struct.Struct("<Q")


class GgufError(ValueError):
    """The bytes are not a GGUF header this reader accepts (malformed, out of bounds, or cut short)."""


class GgufTruncated(GgufError):
    """The bytes ended before the header did: more of the file may complete it."""


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array longer than `KEPT_ARRAY_ITEMS`: its item type and length, values not kept."""

    item_type: GGUFValueType
    length: int

    def __len__(self) -> int:
        return self.length


@dataclass(frozen=True)
class LongString:
    """A string value longer than `KEPT_STRING_BYTES` (an embedded tokenizer.json): its length, not its text."""

    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: GGMLQuantizationType

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int:
        block, type_size = GGML_QUANT_SIZES[self.ggml_type]
        return self.n_elements // block * type_size

    def row_bytes(self, n: int) -> int:
        block, type_size = GGML_QUANT_SIZES[self.ggml_type]
        return n // block * type_size


def _pad(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


@dataclass(frozen=True)
class GgufHeader:
    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    header_bytes: int
    alignment: int = DEFAULT_ALIGNMENT
    data_bytes: int = 0
    """Size of the tensor data section: every tensor's bytes padded to `alignment` (gguf.cpp's ctx->size)."""

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture", "")
        return value if isinstance(value, str) else ""

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)

    @property
    def file_bytes(self) -> int:
        """The least size a complete file has: the data section starts at the next `alignment` boundary."""
        start = _pad(self.header_bytes, self.alignment) if self.tensors else self.header_bytes
        return start + self.data_bytes


def check_file_size(header: GgufHeader, size: int) -> None:
    """A file shorter than its header's tensor data extent is a partial download: llama.cpp refuses it."""
    if size < header.file_bytes:
        raise GgufError(
            f"the file is {size:,} bytes but its header places tensor data up to byte {header.file_bytes:,}: "
            "it is cut short (an interrupted download or copy?)"
        )


class _Stream:
    """Reads `f` as the parse reaches the bytes, never past `MAX_HEADER_BYTES`.

    `buf` holds the file from offset `base`; consumed bytes are dropped as it refills, so memory follows the
    largest single item read, not the header's size.
    """

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.buf = bytearray()
        self.base = 0
        self.pos = 0
        self.eof = False

    def _fill(self, end: int) -> None:
        """Make `buf` hold the bytes up to absolute offset `end`, reading at least a chunk at a time."""
        if end > MAX_HEADER_BYTES:
            raise GgufError(
                f"the header runs past {MAX_HEADER_BYTES // MIB} MiB (wanted bytes up to {end:,}); real GGUF "
                f"headers are under 16 MiB, so this is not a model file or it is corrupt"
            )
        consumed = min(self.pos, self.base + len(self.buf)) - self.base
        if consumed > _CHUNK:
            self.buf = self.buf[consumed:]
            self.base += consumed
        while self.base + len(self.buf) < end and not self.eof:
            have = self.base + len(self.buf)
            data = self.f.read(min(max(end - have, _CHUNK), MAX_HEADER_BYTES - have))
            self.eof = not data
            self.buf += data
        if self.base + len(self.buf) < end:
            raise GgufTruncated(f"header cut short at byte {self.base + len(self.buf):,} (wanted bytes up to {end:,})")

    def _view(self, n: int) -> memoryview:
        end = self.pos + n
        if end > self.base + len(self.buf):
            self._fill(end)
        start = self.pos - self.base
        self.pos = end
        return memoryview(self.buf)[start:start + n]

    def read(self, n: int) -> bytes:
        with self._view(n) as view:
            return bytes(view)

    def skip(self, n: int) -> None:
        self._view(n).release()

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > self.base + len(self.buf):
            self._fill(self.pos + size)
        value = struct.unpack_from(fmt, self.buf, self.pos - self.base)[0]
        self.pos += size
        return value

    def u64(self) -> int:
        value: int = self.unpack("<Q")
        return value

    def string(self, what: str, limit: int = MAX_STRING_BYTES) -> str | LongString:
        at = self.pos
        n = self.u64()
        if n > limit:
            raise GgufError(f"{what} at byte {at:,} claims {n:,} bytes (at most {limit:,} accepted)")
        if n > KEPT_STRING_BYTES:
            self.skip(n)
            return LongString(n)
        with self._view(n) as view:
            return str(view, "utf-8", "replace")

    def name(self, what: str, limit: int) -> str:
        value = self.string(what, limit)
        assert isinstance(value, str)
        return value

    def skip_strings(self, count: int) -> None:
        """Walk `count` strings without keeping them (the tokenizer's arrays)."""
        unpack_from = _U64.unpack_from
        buf, base, pos = self.buf, self.base, self.pos
        for _ in range(count):
            if pos + 8 > base + len(buf):
                self.pos = pos
                self._fill(pos + 8)
                buf, base = self.buf, self.base
            (n,) = unpack_from(buf, pos - base)
            if n > MAX_STRING_BYTES:
                raise GgufError(f"string at byte {pos:,} claims {n:,} bytes (at most {MAX_STRING_BYTES:,} accepted)")
            pos += 8 + n
        self.pos = pos
        if pos > self.base + len(self.buf):
            self._fill(pos)


def _value_type(raw: int, what: str) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise GgufError(f"{what} has unknown GGUF value type {raw}") from None


class _Reader:
    def __init__(self, f: IO[bytes]) -> None:
        self.s = _Stream(f)
        self.array_items = 0

    def array(self, key: str) -> Any:
        s = self.s
        item_type = _value_type(s.unpack("<I"), f"metadata key {key!r} (array item)")
        count = s.u64()
        if item_type == GGUFValueType.ARRAY:
            raise GgufError(f"metadata key {key!r} is an array of arrays (nesting deeper than {MAX_ARRAY_DEPTH} "
                            "level); llama.cpp does not read those")
        if count > MAX_ARRAY_ITEMS:
            raise GgufError(f"metadata key {key!r} claims an array of {count:,} items (at most {MAX_ARRAY_ITEMS:,})")
        self.array_items += count
        if self.array_items > MAX_TOTAL_ARRAY_ITEMS:
            raise GgufError(f"metadata arrays hold more than {MAX_TOTAL_ARRAY_ITEMS:,} items in all "
                            f"(at key {key!r}); real vocabularies hold under 1.5 million")
        kept = count <= KEPT_ARRAY_ITEMS
        if item_type == GGUFValueType.STRING:
            if kept:
                return [s.string(f"metadata key {key!r} item") for _ in range(count)]
            s.skip_strings(count)
            return ArrayInfo(item_type, count)
        code = _SCALARS[item_type]
        size = struct.calcsize(code) * count
        if not kept:
            s.skip(size)
            return ArrayInfo(item_type, count)
        return list(struct.unpack(f"<{count}{code}", s.read(size)))

    def value(self, key: str, vtype: GGUFValueType) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.s.string(f"metadata key {key!r} value")
        if vtype == GGUFValueType.ARRAY:
            return self.array(key)
        return self.s.unpack("<" + _SCALARS[vtype])

    def metadata(self, n_kv: int) -> tuple[dict[str, Any], int]:
        s = self.s
        metadata: dict[str, Any] = {}
        alignment = DEFAULT_ALIGNMENT
        for i in range(n_kv):
            key = s.name(f"metadata key {i}", MAX_KEY_BYTES)
            if not key:
                raise GgufError(f"metadata key {i} is empty")
            if key in metadata:
                raise GgufError(f"metadata key {key!r} appears twice (llama.cpp refuses duplicate keys)")
            vtype = _value_type(s.unpack("<I"), f"metadata key {key!r}")
            value = self.value(key, vtype)
            if key == "general.alignment":
                if vtype != GGUFValueType.UINT32 or value <= 0 or value & (value - 1):
                    raise GgufError(f"general.alignment = {value!r} ({vtype.name}): must be a power of two stored "
                                    "as UINT32")
                alignment = value
            metadata[key] = value
        return metadata, alignment

    def tensor(self, i: int, names: set[str]) -> tuple[TensorInfo, int]:
        s = self.s
        name = s.name(f"tensor {i} name", MAX_TENSOR_NAME)
        if name in names:
            raise GgufError(f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = s.unpack("<I")
        if n_dims > MAX_DIMS:
            raise GgufError(f"tensor {name!r} has {n_dims:,} dimensions (at most {MAX_DIMS})")
        shape = tuple(s.u64() for _ in range(n_dims))
        n = 1
        for d in shape:
            if d > INT64_MAX:
                raise GgufError(f"tensor {name!r} has a negative dimension {d - (1 << 64)} (shape {shape})")
            n *= d
        if n > INT64_MAX:
            raise GgufError(f"tensor {name!r} of shape {shape} has more than 2^63 elements")
        raw_type = s.unpack("<I")
        try:
            ggml_type = GGMLQuantizationType(raw_type)
            block = GGML_QUANT_SIZES[ggml_type][0]
        except (ValueError, KeyError):
            raise GgufError(f"tensor {name!r} has unknown tensor type id {raw_type}") from None
        if shape and shape[0] % block:
            raise GgufError(f"tensor {name!r} of type {ggml_type.name} has rows of {shape[0]:,} values, not a "
                            f"multiple of its block size {block}")
        offset = s.u64()
        return TensorInfo(name, shape, ggml_type), offset


def read_header(f: IO[bytes]) -> GgufHeader:
    """Parse metadata and tensor infos; stops before the tensor data. Raises GgufError on anything out of bounds."""
    r = _Reader(f)
    s = r.s
    try:
        magic = s.read(4)
    except GgufTruncated:
        raise GgufTruncated(f"the file is {len(s.buf)} bytes long: not a GGUF file") from None
    if magic != GGUF_MAGIC:
        raise GgufError("missing GGUF magic: not a GGUF file")
    version = s.unpack("<I")
    if version not in (2, 3):
        hint = " (a big-endian file?)" if version > 0xFFFF else ""
        raise GgufError(f"GGUF version {version} is not supported (expected 2 or 3){hint}")
    n_tensors = s.u64()
    n_kv = s.u64()
    if n_tensors > MAX_TENSORS:
        raise GgufError(f"the header claims {n_tensors:,} tensors (at most {MAX_TENSORS:,} accepted)")
    if n_kv > MAX_METADATA_KV:
        raise GgufError(f"the header claims {n_kv:,} metadata keys (at most {MAX_METADATA_KV:,} accepted)")
    metadata, alignment = r.metadata(n_kv)
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    data_bytes = 0
    for i in range(n_tensors):
        info, offset = r.tensor(i, names)
        if offset != data_bytes:
            raise GgufError(f"tensor {info.name!r} has data offset {offset:,}, expected {data_bytes:,} "
                            "(tensors must be stored in order, each aligned)")
        data_bytes += _pad(info.n_bytes, alignment)
        tensors.append(info)
    return GgufHeader(version, metadata, tuple(tensors), s.pos, alignment, data_bytes)


def read_header_file(path: str | Path) -> GgufHeader:
    with open(path, "rb") as f:
        return read_header(f)



def file_problem(path: Path) -> str | None:
    """Why the file at `path` is not a usable GGUF (a header that does not parse, tensor data cut short); None when
    it is. `python -m stack fetch` checks each verified download with it before placing the file."""
    try:
        check_file_size(read_header_file(path), path.stat().st_size)
    except GgufError as exc:
        return str(exc)
    return None
