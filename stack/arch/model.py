"""What the sizing needs to know about a model, whatever told us (GGUF header, config, catalog).

Everything is per layer because llama.cpp's KV layout is per layer: GQA widths may vary
(`head_count_kv` arrays), sliding-window layers hold fewer cells, recurrent layers hold state
instead of KV, and some layers share another layer's KV.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSpec:
    """One transformer block's memory-relevant shape."""

    n_head_kv: int
    k_dim: int
    v_dim: int
    swa: bool = False
    recurrent: bool = False
    has_kv: bool = True


def first_offloaded_layer(n_layer: int, n_gpu_layers: int) -> int:
    """llama-model.cpp (`i_gpu_start`): `-ngl n` offloads the layers from n_layer + 1 - n on; n_layer when none is."""
    return min(max(n_layer + 1 - n_gpu_layers, 0), n_layer)


@dataclass(frozen=True)
class WeightsSpec:
    """Tensor bytes split the way llama.cpp places them.

    `input_bytes` (token_embd and other input embeddings) always stays in host memory;
    `tied_output_bytes` is the GPU copy of token_embd made when there is no output.weight.
    """

    layer_bytes: tuple[int, ...]
    input_bytes: int
    output_bytes: int
    tied_output_bytes: int = 0
    cuda_pad_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(self.layer_bytes) + self.input_bytes + self.output_bytes

    def gpu_bytes(self, n_gpu_layers: int) -> int:
        """Bytes on the GPU for `-ngl n`: the output layer first, then the last n - 1 repeating layers.

        llama-model.cpp places layer index n_layer (the output) with `get_layer_buft_list(n_layer)`, which is on
        the GPU whenever n_layer >= i_gpu_start, that is for any n >= 1."""
        n_layer = len(self.layer_bytes)
        on_gpu = sum(self.layer_bytes[first_offloaded_layer(n_layer, n_gpu_layers):])
        if n_gpu_layers >= 1:
            on_gpu += self.output_bytes + self.tied_output_bytes + self.cuda_pad_bytes
        return on_gpu

    def host_bytes(self, n_gpu_layers: int) -> int:
        """Bytes left in host memory: the input layer, the repeating layers not offloaded, and the output layer
        when nothing is offloaded."""
        n_layer = len(self.layer_bytes)
        host = self.input_bytes + sum(self.layer_bytes[:first_offloaded_layer(n_layer, n_gpu_layers)])
        return host if n_gpu_layers >= 1 else host + self.output_bytes


@dataclass(frozen=True)
class Recurrent:
    """Per recurrent layer state widths (llama-hparams.cpp n_embd_r / n_embd_s).

    `act_per_token` is the f32 values per ubatch token one recurrent layer keeps live in the
    compute graph (stack.sizing.compute_buffer); 0 when unknown.
    """

    n_embd_r: int
    n_embd_s: int
    act_per_token: int = 0


@dataclass(frozen=True)
class ModelArch:
    architecture: str
    n_embd: int
    n_head: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    layers: tuple[LayerSpec, ...]
    weights: WeightsSpec
    source: str
    causal: bool = True
    n_swa: int = 0
    mla: bool = False
    recurrent: Recurrent | None = None
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    ffn_gated: bool = True
    """SwiGLU/GeGLU feed-forward (gate + up); False for up-only FFNs (BERT, GPT-2)."""
    v_head_dim: int = 0
    """`value_length` as written; for MLA the latent width the attention output has (kv_lora_rank)."""
    shared_kv: bool = False
    """Some layers attend over another layer's KV instead of their own (gemma3n, gemma4)."""
    ple_width: int = 0
    """Per-layer embedding values per token (gemma3n/gemma4 `per_layer_token_embd`: n_embd_per_layer x n_layer)."""
    n_altup: int = 0
    """AltUp hidden streams (gemma3n keeps 4 copies of the hidden state); 0 for ordinary models."""

    @property
    def n_layer(self) -> int:
        return len(self.layers)

    @property
    def head_dim(self) -> int:
        return max((layer.k_dim for layer in self.layers), default=0)

    @property
    def n_embd_q(self) -> int:
        return self.n_head * self.head_dim

    @property
    def max_n_embd_k_gqa(self) -> int:
        return max((layer.k_dim * layer.n_head_kv for layer in self.layers), default=0)

    @property
    def max_n_embd_v_gqa(self) -> int:
        return max((layer.v_dim * layer.n_head_kv for layer in self.layers), default=0)

    @property
    def has_swa(self) -> bool:
        return self.n_swa > 0 and any(layer.swa for layer in self.layers)


def swa_layers(n_layer: int, pattern: int, dense_first: bool = False) -> tuple[bool, ...]:
    """llama-hparams.cpp set_swa_pattern: every `pattern`-th layer is full attention."""
    if pattern <= 0:
        return tuple(False for _ in range(n_layer))
    if dense_first:
        return tuple(il % pattern != 0 for il in range(n_layer))
    return tuple(il % pattern < pattern - 1 for il in range(n_layer))


def uniform_layers(
    n_layer: int, n_head_kv: int, head_dim: int, *, swa: tuple[bool, ...] | None = None, has_kv: bool = True
) -> tuple[LayerSpec, ...]:
    flags = swa if swa is not None else tuple(False for _ in range(n_layer))
    return tuple(LayerSpec(n_head_kv, head_dim, head_dim, swa=flags[il], has_kv=has_kv) for il in range(n_layer))


def split_weights(
    total_bytes: int, *, n_layer: int, n_vocab: int, n_embd: int, embd_bytes_per_elem: float, tied: bool
) -> WeightsSpec:
    """Split a file-size total when no tensor list is available (config `arch` block, catalog).

    token_embd is taken at the given bytes/element; the output matrix of an untied model is
    assumed to be the same size (Q4_K_M and Q5_K_M files keep both at ~q4_K..q6_K).
    """
    embd = int(n_vocab * n_embd * embd_bytes_per_elem)
    output = 0 if tied else embd
    rest = max(total_bytes - embd - output, 0)
    per_layer = rest // n_layer
    layers = tuple(per_layer for _ in range(n_layer))
    return WeightsSpec(layers, embd, output + (rest - per_layer * n_layer), tied_output_bytes=embd if tied else 0)
