"""Read a GGUF file's metadata and tensor list from its header bytes only.

A streaming reader (not `gguf.GGUFReader`, which maps the whole file) so that the same code
works on a local file, on the first megabytes of a remote one, and never touches tensor data.
Value and tensor types come from the `gguf` package's own tables.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

GGUF_MAGIC = b"GGUF"

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}


class GgufError(ValueError):
    """The bytes are not a GGUF header this reader understands (or are cut short)."""


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


@dataclass(frozen=True)
class GgufHeader:
    version: int
    metadata: dict[str, Any]
    tensors: tuple[TensorInfo, ...]
    header_bytes: int

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def arch_key(self, suffix: str, default: Any = None) -> Any:
        return self.metadata.get(f"{self.architecture}.{suffix}", default)


class _Stream:
    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise GgufError(f"header cut short at byte {self.pos + len(data)} (wanted {n} more bytes)")
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > 1 << 24:
            raise GgufError(f"string of {n} bytes at byte {self.pos}: not a GGUF header")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: GGUFValueType) -> Any:
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            item_type = GGUFValueType(self.unpack("<I"))
            count = self.unpack("<Q")
            if item_type in _SCALARS and item_type != GGUFValueType.BOOL:
                fmt = _SCALARS[item_type]
                size = struct.calcsize(fmt)
                return list(struct.unpack(f"<{count}{fmt[1]}", self.read(size * count)))
            return [self.value(item_type) for _ in range(count)]
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        raise GgufError(f"unknown GGUF value type {vtype}")


def read_header(f: IO[bytes]) -> GgufHeader:
    """Parse metadata and tensor infos; stops before the tensor data."""
    s = _Stream(f)
    if s.read(4) != GGUF_MAGIC:
        raise GgufError("missing GGUF magic: not a GGUF file")
    version = s.unpack("<I")
    if version not in (2, 3):
        raise GgufError(f"GGUF version {version} is not supported (expected 2 or 3)")
    n_tensors = s.unpack("<Q")
    n_kv = s.unpack("<Q")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = s.string()
        try:
            vtype = GGUFValueType(s.unpack("<I"))
        except ValueError as exc:
            raise GgufError(f"metadata key {key!r}: {exc}") from None
        metadata[key] = s.value(vtype)
    tensors = []
    for _ in range(n_tensors):
        name = s.string()
        n_dims = s.unpack("<I")
        shape = tuple(s.unpack("<Q") for _ in range(n_dims))
        ggml_type = GGMLQuantizationType(s.unpack("<I"))
        s.unpack("<Q")  # offset into the data section
        tensors.append(TensorInfo(name, shape, ggml_type))
    return GgufHeader(version, metadata, tuple(tensors), s.pos)


def read_header_file(path: str | Path) -> GgufHeader:
    with open(path, "rb") as f:
        return read_header(f)
