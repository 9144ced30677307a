"""Where a model's architecture comes from, in order: its GGUF header, the config's `arch` block, the catalog."""

from __future__ import annotations

from typing import Protocol

from models.config import ArchConfig
from models.errors import ConfigError
from stack.arch.catalog import EMBD_BYTES_PER_ELEM, CatalogMiss, lookup, quant_of
from stack.arch.gguf_rules import arch_from_header
from stack.arch.model import ModelArch, split_weights, swa_layers, uniform_layers
from stack.gguf.header import GgufError, GgufHeader
from stack.gguf.sources import HeaderSource
from stack.units import MIB


class ModelFile(Protocol):
    """What locates a model: its file, and optionally an `arch` block or catalog key."""

    @property
    def file(self) -> str: ...

    @property
    def arch(self) -> ArchConfig | None: ...

    @property
    def catalog(self) -> str | None: ...


class ArchUnavailable(ConfigError):
    """No source could describe the model; the key is the one to add or fix."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__([(key, message)])


def arch_from_config(a: ArchConfig, file_name: str, source: str) -> ModelArch:
    swa = swa_layers(a.n_layer, a.sliding_window_pattern) if a.sliding_window else None
    weights = split_weights(
        int(a.weights_mib * MIB),
        n_layer=a.n_layer,
        n_vocab=a.n_vocab,
        n_embd=a.n_embd,
        embd_bytes_per_elem=EMBD_BYTES_PER_ELEM.get(quant_of(file_name) or "", 144 / 256),
        tied=a.tied_embeddings and a.causal,
    )
    return ModelArch(
        architecture="config",
        n_embd=a.n_embd,
        n_head=a.n_head,
        n_ff=a.n_ff,
        n_vocab=a.n_vocab,
        n_ctx_train=a.n_ctx_train or 0,
        layers=uniform_layers(a.n_layer, a.n_head_kv, a.head_dim, swa=swa, has_kv=a.causal and a.n_head_kv > 0),
        weights=weights,
        source=source,
        causal=a.causal,
        n_swa=a.sliding_window,
    )


def _unusable(file_key: str, where: str, exc: Exception) -> ArchUnavailable:
    if isinstance(exc, GgufError):
        return ArchUnavailable(file_key, f"{where} is not a usable GGUF model: {exc}; put a complete GGUF file "
                                         f"there (download it again), or point {file_key} at the file you meant")
    return ArchUnavailable(file_key, f"cannot read {where}: {exc}; make it a readable file, or point {file_key} "
                                     "at another")


def read_model_header(headers: HeaderSource, file: str, file_key: str) -> GgufHeader | None:
    """The header of a model, draft or projector file; None when it is not there. Anything wrong with the file
    is an ArchUnavailable at `file_key`: llama-server would fail to load it, so sizing it some other way would
    only hide that."""
    try:
        return headers.read(file)
    except (GgufError, OSError) as exc:
        raise _unusable(file_key, headers.describe(file), exc) from None


def resolve_arch(settings: ModelFile, key: str, headers: HeaderSource | None) -> ModelArch:
    """`key` is the config path of the model (e.g. `models.chat`), used in sources and errors."""
    where = None
    if headers is not None:
        where = headers.describe(settings.file)
        header = read_model_header(headers, settings.file, f"{key}.file")
        if header is not None:
            try:
                return arch_from_header(header, f"gguf: {where}")
            except GgufError as exc:
                raise _unusable(f"{key}.file", where, exc) from None
    if settings.arch is not None:
        return arch_from_config(settings.arch, settings.file, f"config: {key}.arch")
    try:
        return lookup(settings.file, settings.catalog)
    except CatalogMiss as exc:
        refused_key = f"{key}.catalog" if settings.catalog else f"{key}.file"
        raise ArchUnavailable(
            refused_key,
            f"cannot size {settings.file!r}: "
            + (f"{where} does not exist" if where is not None else "the file is not readable here")
            + f" and {exc}. "
            f"Put the GGUF under models_dir, or add {key}.arch (n_layer, n_embd, n_head, n_head_kv, head_dim, "
            "n_ff, n_vocab, weights_mib)",
        ) from None
