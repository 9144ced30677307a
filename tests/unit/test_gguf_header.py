"""The header-only GGUF reader agrees with the `gguf` package's own reader, and needs no tensor data."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from stack.arch_gguf import arch_from_header
from stack.gguf_header import GgufError, read_header, read_header_file


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
