"""`stack.gguf.writers.kquant_chat_model`: a Q4_K_M chat model through the real llama-quantize."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gguf
import pytest

from stack.gguf import writers as gm
from tests.harness import binaries

pytestmark = pytest.mark.integration


def _field(r: gguf.GGUFReader, key: str) -> Any:
    f = r.get_field(key)
    assert f is not None, key
    return f.contents()


def test_kquant_fixture(tmp_path: Path) -> None:
    try:
        binaries.llama_quantize()
    except binaries.MissingBinaryError as e:
        pytest.skip(str(e))
    path, spec = gm.kquant_chat_model(binaries.llama_quantize, out_dir=tmp_path)
    r = gguf.GGUFReader(path)
    types = {t.name: t.tensor_type for t in r.tensors}
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.Q4_K
    assert types["blk.0.attn_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert _field(r, "general.file_type") == int(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    assert spec.n_embd % 256 == 0
