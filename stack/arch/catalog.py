"""Built-in hyperparameters and GGUF sizes of common models, for when no GGUF is readable.

Hyperparameters: published config.json files (../shared/reference/llama-cpp-memory.md §10).
Sizes: GGUF files as published (bytes; GB = 1e9 B). Weights derived from a file size are an
estimate: the tensor split is assumed, and the tokenizer metadata is subtracted by rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stack.arch.model import ModelArch, split_weights, swa_layers, uniform_layers

# bytes per element of token_embd in each quant mix (llama.cpp's quantize keeps it at the mix's base type)
EMBD_BYTES_PER_ELEM: dict[str, float] = {
    "Q4_K_M": 144 / 256, "Q4_K_S": 144 / 256, "Q5_K_M": 176 / 256, "Q5_K_S": 176 / 256,
    "Q6_K": 210 / 256, "Q8_0": 34 / 32, "F16": 2.0, "BF16": 2.0, "Q4_0": 18 / 32,
}

# Tokenizer tokens, types, scores and BPE merges take roughly this many bytes per vocabulary entry.
METADATA_BYTES_PER_TOKEN = 45

QUANT_RE = re.compile(r"(?i)(?<![A-Za-z0-9])(I?Q\d_K_[SML]|I?Q\d_K|IQ\d_[A-Z]+|Q\d_\d|BF16|F16|F32)(?![A-Za-z0-9])")


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    pattern: str
    architecture: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    tied: bool
    file_bytes: dict[str, int]
    n_swa: int = 0
    swa_pattern: int = 0
    causal: bool = True
    ffn_gated: bool = True
    """SwiGLU/GeGLU feed-forward; False for up-only FFNs (XLM-R/BERT), which the compute buffer sizes differently."""

    def arch(self, quant: str) -> ModelArch:
        total = self.file_bytes[quant] - METADATA_BYTES_PER_TOKEN * self.n_vocab
        weights = split_weights(
            total,
            n_layer=self.n_layer,
            n_vocab=self.n_vocab,
            n_embd=self.n_embd,
            embd_bytes_per_elem=EMBD_BYTES_PER_ELEM.get(quant, 144 / 256),
            tied=self.tied and self.causal,
        )
        swa = swa_layers(self.n_layer, self.swa_pattern) if self.n_swa else None
        return ModelArch(
            architecture=self.architecture,
            n_embd=self.n_embd,
            n_head=self.n_head,
            n_ff=self.n_ff,
            n_vocab=self.n_vocab,
            n_ctx_train=self.n_ctx_train,
            layers=uniform_layers(self.n_layer, self.n_head_kv, self.head_dim, swa=swa, has_kv=self.causal),
            weights=weights,
            source=f"catalog: {self.key} {quant}",
            causal=self.causal,
            n_swa=self.n_swa,
            ffn_gated=self.ffn_gated,
        )


def _gb(x: float) -> int:
    return round(x * 1e9)


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("qwen2.5-3b-instruct", r"qwen2\.5-3b", "qwen2", 36, 2048, 16, 2, 128, 11008, 151936, 32768, True,
                 {"Q4_K_M": _gb(1.93), "Q5_K_M": _gb(2.22), "Q6_K": _gb(2.54), "Q8_0": _gb(3.29)}),
    CatalogEntry("qwen2.5-7b-instruct", r"qwen2\.5-7b", "qwen2", 28, 3584, 28, 4, 128, 18944, 152064, 32768, False,
                 {"Q4_K_M": _gb(4.68), "Q5_K_M": _gb(5.44), "Q6_K": _gb(6.25), "Q8_0": _gb(8.10)}),
    CatalogEntry("qwen2.5-14b-instruct", r"qwen2\.5-14b", "qwen2", 48, 5120, 40, 8, 128, 13824, 152064, 32768, False,
                 {"Q4_K_M": 8_988_110_944, "Q5_K_M": 10_508_873_824, "Q6_K": _gb(12.12), "Q8_0": _gb(15.7)}),
    CatalogEntry("qwen3-8b", r"qwen3-8b", "qwen3", 36, 4096, 32, 8, 128, 12288, 151936, 40960, False,
                 {"Q4_K_M": _gb(5.03), "Q5_K_M": _gb(5.85), "Q8_0": _gb(8.71)}),
    CatalogEntry("qwen3-14b", r"qwen3-14b", "qwen3", 40, 5120, 40, 8, 128, 17408, 151936, 40960, False,
                 {"Q4_K_M": _gb(9.0), "Q5_K_M": _gb(10.5), "Q8_0": _gb(15.7)}),
    CatalogEntry("llama-3.1-8b-instruct", r"llama-3\.1-8b", "llama", 32, 4096, 32, 8, 128, 14336, 128256, 131072,
                 False, {"Q4_K_M": _gb(4.92), "Q5_K_M": _gb(5.73), "Q8_0": _gb(8.54)}),
    CatalogEntry("llama-3.2-3b-instruct", r"llama-3\.2-3b", "llama", 28, 3072, 24, 8, 128, 8192, 128256, 131072,
                 True, {"Q4_K_M": _gb(2.02), "Q5_K_M": _gb(2.32), "Q8_0": _gb(3.42)}),
    CatalogEntry("mistral-nemo-instruct-2407", r"mistral-nemo", "llama", 40, 5120, 32, 8, 128, 14336, 131072,
                 1024000, False, {"Q4_K_M": _gb(7.48), "Q5_K_M": _gb(8.73), "Q8_0": _gb(13.0)}),
    CatalogEntry("gemma-3-12b-it", r"gemma-3-12b", "gemma3", 48, 3840, 16, 8, 256, 15360, 262208, 131072, True,
                 {"Q4_K_M": _gb(7.3), "Q5_K_M": _gb(8.44), "Q8_0": _gb(12.5)}, n_swa=1024, swa_pattern=6),
    CatalogEntry("nomic-embed-text-v1.5", r"nomic-embed-text-v1\.5", "nomic-bert", 12, 768, 12, 12, 64, 3072, 30522,
                 2048, False, {"Q4_K_M": _gb(0.084), "Q8_0": _gb(0.146), "F16": _gb(0.274)}, causal=False),
    CatalogEntry("bge-m3", r"bge-m3", "bert", 24, 1024, 16, 16, 64, 4096, 250002, 8192, False,
                 {"Q4_K_M": _gb(0.438), "Q8_0": _gb(0.635), "F16": _gb(1.16)}, causal=False, ffn_gated=False),
)


class CatalogMiss(LookupError):
    pass


def quant_of(file_name: str) -> str | None:
    m = QUANT_RE.search(file_name)
    return m.group(1).upper() if m else None


def lookup(file_name: str, explicit: str | None = None) -> ModelArch:
    """Find a catalog entry by `catalog: key[/QUANT]` or by the GGUF file name."""
    key, _, quant = (explicit or "").partition("/")
    quant = (quant or quant_of(file_name) or "").upper()
    for entry in CATALOG:
        if (key and key.lower() == entry.key) or (not key and re.search(entry.pattern, file_name, re.IGNORECASE)):
            if quant not in entry.file_bytes:
                raise CatalogMiss(
                    f"catalog has {entry.key} in {sorted(entry.file_bytes)}, not {quant or 'an unnamed quant'}; "
                    "name the quant in the file name or catalog key (e.g. 'Q4_K_M'), or give an arch block"
                )
            return entry.arch(quant)
    known = ", ".join(e.key for e in CATALOG)
    raise CatalogMiss(f"no catalog entry matches {explicit or file_name!r}; known: {known}")
