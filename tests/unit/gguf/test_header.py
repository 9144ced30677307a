"""The header-only GGUF reader agrees with the `gguf` package's own reader, and needs no tensor data."""

from __future__ import annotations

import io
import itertools
import os
import re
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter

from stack.arch.gguf_rules import arch_from_header
from stack.gguf.header import (
    KEPT_ARRAY_ITEMS,
    KEPT_STRING_BYTES,
    MAX_HEADER_BYTES,
    MAX_METADATA_KV,
    ArrayInfo,
    GgufError,
    LongString,
    check_file_size,
    read_header,
    read_header_file,
)
from stack.gguf.sources import SshHeaders, SshTarget
from stack.units import MIB


def _write(path: Path, *, n_layer: int = 3, kv_heads: int | list[int] = 2, tied: bool = True,
           arch: str = "qwen2") -> Path:
    n_embd, n_head, n_vocab, n_ff = 64, 4, 32, 128
    w = GGUFWriter(str(path), arch)
    w.add_block_count(n_layer)
    w.add_embedding_length(n_embd)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(kv_heads)
    w.add_context_length(4096)
    w.add_token_list([f"t{i}" for i in range(n_vocab)])
    rng = np.random.default_rng(0)
    w.add_tensor("token_embd.weight", rng.standard_normal((n_vocab, n_embd), dtype=np.float32).astype(np.float16))
    for il in range(n_layer):
        w.add_tensor(f"blk.{il}.attn_q.weight", rng.standard_normal((n_embd, n_embd), dtype=np.float32))
        up = rng.standard_normal((n_ff, n_embd), dtype=np.float32).astype(np.float16)
        w.add_tensor(f"blk.{il}.ffn_up.weight", up)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    if not tied:
        w.add_tensor("output.weight", rng.standard_normal((n_vocab, n_embd), dtype=np.float32).astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_matches_the_gguf_package(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    ours = read_header_file(path)
    theirs = GGUFReader(str(path))
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    assert [t.n_bytes for t in ours.tensors] == [int(t.n_bytes) for t in theirs.tensors]
    assert ours.metadata["qwen2.block_count"] == 3
    assert ours.metadata["tokenizer.ggml.tokens"][:2] == ["t0", "t1"]


def test_header_bytes_alone_are_enough(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    full = read_header_file(path)
    head = path.read_bytes()[: full.header_bytes]
    assert read_header(io.BytesIO(head)) == full
    with pytest.raises(GgufError, match="cut short"):
        read_header(io.BytesIO(head[:-3]))


def test_not_a_gguf(tmp_path: Path) -> None:
    with pytest.raises(GgufError, match="magic"):
        read_header(io.BytesIO(b"PK\x03\x04" + bytes(20)))


def test_arch_from_header_weights_and_gqa(tmp_path: Path) -> None:
    tied = arch_from_header(read_header_file(_write(tmp_path / "t.gguf")), "t")
    assert tied.n_layer == 3 and tied.head_dim == 16
    assert [layer.n_head_kv for layer in tied.layers] == [2, 2, 2]
    embd = 32 * 64 * 2
    per_layer = 64 * 64 * 4 + 128 * 64 * 2
    assert tied.weights.input_bytes == embd
    assert tied.weights.layer_bytes == (per_layer,) * 3
    assert tied.weights.tied_output_bytes == embd
    assert tied.weights.gpu_bytes(999) == 3 * per_layer + 64 * 4 + embd + tied.weights.cuda_pad_bytes
    untied = arch_from_header(read_header_file(_write(tmp_path / "u.gguf", tied=False)), "u")
    assert untied.weights.tied_output_bytes == 0
    assert untied.weights.output_bytes == 64 * 4 + embd


def test_per_layer_head_count_kv_array(tmp_path: Path) -> None:
    arch = arch_from_header(read_header_file(_write(tmp_path / "v.gguf", kv_heads=[4, 0, 2])), "v")
    assert [layer.n_head_kv for layer in arch.layers] == [4, 0, 2]
    assert [layer.has_kv for layer in arch.layers] == [True, False, True]


def test_encoder_architectures_have_no_kv(tmp_path: Path) -> None:
    arch = arch_from_header(read_header_file(_write(tmp_path / "b.gguf", arch="bert")), "b")
    assert not arch.causal and not any(layer.has_kv for layer in arch.layers)
    assert arch.weights.tied_output_bytes == 0


class _Records(io.RawIOBase):
    """A GGUF header that never ends: key after key of a 15 MiB zero string, counting the bytes served."""

    def __init__(self) -> None:
        self.chunks = self._chunks()
        self.pending = b""
        self.served = 0

    @staticmethod
    def _chunks() -> Iterator[bytes]:
        yield b"GGUF" + struct.pack("<IQQ", 3, 0, MAX_METADATA_KV)
        for i in itertools.count():
            key = f"k{i}".encode()
            yield struct.pack("<Q", len(key)) + key + struct.pack("<IQ", GGUFValueType.STRING, 15 * MIB)
            yield from (bytes(MIB) for _ in range(15))

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self.pending:
            self.pending = next(self.chunks)
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.served += n
        return n


def test_an_endless_header_stops_at_the_byte_cap_in_bounded_memory() -> None:
    """4,096 keys of 15 MiB strings claim 60 GiB: the reader stops at MAX_HEADER_BYTES, holding about one string
    at a time (a string over KEPT_STRING_BYTES is skipped, not kept)."""
    stream = _Records()
    tracemalloc.start()
    try:
        with pytest.raises(GgufError, match="runs past 64 MiB"):
            read_header(cast(IO[bytes], stream))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert stream.served <= MAX_HEADER_BYTES
    assert peak < 40 * MIB


def test_long_arrays_and_strings_keep_their_length_only(tmp_path: Path) -> None:
    w = GGUFWriter(str(tmp_path / "long.gguf"), "llama")
    w.add_array("tokenizer.ggml.tokens", ["t"] * (KEPT_ARRAY_ITEMS + 1))
    w.add_array("tokenizer.ggml.scores", [0.5] * (KEPT_ARRAY_ITEMS + 1))
    w.add_array("llama.short", [1, 2, 3])
    w.add_string("tokenizer.huggingface.json", "x" * (KEPT_STRING_BYTES + 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.close()
    meta = read_header_file(tmp_path / "long.gguf").metadata
    assert meta["tokenizer.ggml.tokens"] == ArrayInfo(GGUFValueType.STRING, KEPT_ARRAY_ITEMS + 1)
    assert len(meta["tokenizer.ggml.scores"]) == KEPT_ARRAY_ITEMS + 1
    assert meta["llama.short"] == [1, 2, 3]
    assert meta["tokenizer.huggingface.json"] == LongString(KEPT_STRING_BYTES + 1)


def test_the_data_extent_follows_gguf_alignment(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    header = read_header_file(path)
    assert header.file_bytes == path.stat().st_size == GGUFReader(str(path)).tensors[-1].data_offset + int(
        GGUFReader(str(path)).tensors[-1].n_bytes)
    check_file_size(header, path.stat().st_size)
    with pytest.raises(GgufError, match="cut short"):
        check_file_size(header, path.stat().st_size - 1)


def _ssh_serving(path: Path, asked: list[int], mode: str = "81a4", stat_out: str | None = None) -> Any:
    """A runner standing in for ssh: answers `stat` and `head -c N` from a local file."""

    def run(argv: list[str]) -> bytes:
        command = argv[-1]
        if command.startswith("LC_ALL=C stat"):
            if stat_out is not None:
                return stat_out.encode()
            return f"{path.stat().st_size} 1700000000 {mode}\n".encode()
        m = re.match(r"head -c (\d+) -- ", command)
        assert m, command
        asked.append(int(m.group(1)))
        with open(path, "rb") as f:
            return f.read(int(m.group(1)))

    return run


def test_ssh_reads_grow_only_for_a_cut_short_header_and_never_past_the_cap(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    asked: list[int] = []
    source = SshHeaders(SshTarget("ops@gpu", None, ()), "/srv/models", cache_dir=tmp_path / "cache",
                        run=_ssh_serving(path, asked), first_read=64)
    assert source.read("m.gguf") == read_header_file(path)
    assert asked[0] == 64 and asked == sorted(asked) and asked[-1] <= path.stat().st_size
    # 5 strings of 15 MiB: the header runs past 64 MiB, and `head -c` was never asked for more than that
    big = tmp_path / "big.gguf"
    with open(big, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 0, 5))
        for i in range(5):
            f.write(_string_key(f"k{i}") + struct.pack("<IQ", GGUFValueType.STRING, 15 * MIB))
            f.seek(15 * MIB, os.SEEK_CUR)
        f.write(b"end")
    asked.clear()
    source = SshHeaders(SshTarget("ops@gpu", None, ()), "/srv/models", cache_dir=tmp_path / "cache",
                        run=_ssh_serving(big, asked))
    with pytest.raises(GgufError, match="runs past 64 MiB"):
        source.read("big.gguf")
    assert max(asked) <= MAX_HEADER_BYTES


def _string_key(key: str) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode()


def test_ssh_refuses_what_is_not_a_complete_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[:-1])

    def source(target: Path, **kw: Any) -> SshHeaders:
        return SshHeaders(SshTarget("ops@gpu", None, ()), "/srv/models", cache_dir=tmp_path / "cache",
                          run=_ssh_serving(target, [], **kw))

    with pytest.raises(GgufError, match="cut short"):
        source(cut).read("cut.gguf")
    with pytest.raises(GgufError, match="directory"):
        source(path, mode="41ed").read("m.gguf")
    with pytest.raises(GgufError, match="not a regular file"):
        source(path, mode="11a4").read("m.gguf")
    loop = "stat: cannot statx '/srv/models/m.gguf': Too many levels of symbolic links\n"
    with pytest.raises(GgufError, match="symlink loop"):
        source(path, stat_out=loop).read("m.gguf")
    missing = "stat: cannot statx '/srv/models/m.gguf': No such file or directory\n"
    assert source(path, stat_out=missing).read("m.gguf") is None
    denied = source(path, stat_out="stat: cannot statx '/srv/models/m.gguf': Permission denied\n")
    assert denied.read("m.gguf") is None and "Permission denied" in denied.problems[0]


def test_a_cut_short_file_cached_from_an_earlier_read_is_still_refused(tmp_path: Path) -> None:
    """The cache key holds size and mtime, so a header cached for a complete file is checked against the size."""
    path = _write(tmp_path / "m.gguf")
    asked: list[int] = []
    source = SshHeaders(SshTarget("ops@gpu", None, ()), "/srv/models", cache_dir=tmp_path / "cache",
                        run=_ssh_serving(path, asked))
    assert source.read("m.gguf") is not None
    stale = SshHeaders(SshTarget("ops@gpu", None, ()), "/srv/models", cache_dir=tmp_path / "cache",
                       run=_ssh_serving(path, asked, stat_out=f"{path.stat().st_size - 1} 1700000000 81a4"))
    with pytest.raises(GgufError, match="cut short"):
        stale.read("m.gguf")


def test_unknown_tensor_types_are_gguf_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.gguf")
    header = read_header_file(path)
    data = bytearray(path.read_bytes())
    # the last tensor record ends with its type (u32) and offset (u64)
    at = header.header_bytes - 12
    assert struct.unpack_from("<I", data, at)[0] == header.tensors[-1].ggml_type
    struct.pack_into("<I", data, at, 4)
    with pytest.raises(GgufError, match="unknown tensor type id 4"):
        read_header(io.BytesIO(bytes(data)))
