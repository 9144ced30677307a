"""Split GGUFs (`…-00001-of-00003.gguf`, as `llama-gguf-split` writes them) sized as one model.

The first part carries the metadata and its share of the tensors; every other part carries `split.*` keys and
the rest of the tensors. llama.cpp (`llama_model_loader`) opens part 1 and then each part by name, and refuses
a set whose `split.count` or tensor total disagrees; the same checks are made here, before sizing.
"""

from __future__ import annotations

from collections.abc import Sequence

from stack.gguf.header import GgufError, GgufHeader, TensorInfo

SPLIT_NO = "split.no"
SPLIT_COUNT = "split.count"
SPLIT_TENSORS = "split.tensors.count"


def merge_split(parts: Sequence[GgufHeader], names: Sequence[str]) -> GgufHeader:
    """One header with part 1's metadata and every part's tensors; a single header is returned as it is."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    count = first.metadata.get(SPLIT_COUNT)
    if count != len(parts):
        raise GgufError(f"{names[0]} says split.count = {count!r}, but the file name promises {len(parts)} parts")
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for i, (header, name) in enumerate(zip(parts, names, strict=True)):
        no = header.metadata.get(SPLIT_NO)
        if no != i:
            raise GgufError(f"{name} says split.no = {no!r}; as part {i + 1} of {len(parts)} it must be {i}")
        for t in header.tensors:
            if t.name in seen:
                raise GgufError(f"tensor {t.name!r} appears in two parts (again in {name})")
            seen.add(t.name)
        tensors.extend(header.tensors)
    expected = first.metadata.get(SPLIT_TENSORS)
    if expected != len(tensors):
        raise GgufError(f"{names[0]} says split.tensors.count = {expected!r}, but the parts hold {len(tensors)} "
                        "tensors")
    return GgufHeader(
        first.version, first.metadata, tuple(tensors), first.header_bytes, first.alignment,
        sum(p.data_bytes for p in parts),
    )
