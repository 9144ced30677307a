"""`stack.arch.model`: which weights go to the GPU for a given -ngl (the output layer first, a tied output copied)."""

from __future__ import annotations

from stack.arch.catalog import lookup
from stack.arch.model import WeightsSpec


def test_tied_output_is_copied_to_the_gpu() -> None:
    """Qwen2.5-3B has no output.weight: token_embd stays on the host and a copy goes to the GPU."""
    tied = lookup("Qwen2.5-3B-Instruct-Q4_K_M.gguf")
    untied = lookup("Qwen2.5-7B-Instruct-Q4_K_M.gguf")
    assert tied.weights.tied_output_bytes == tied.weights.input_bytes > 0
    assert untied.weights.tied_output_bytes == 0
    assert tied.weights.gpu_bytes(999) == tied.weights.total_bytes
    assert untied.weights.gpu_bytes(999) == untied.weights.total_bytes - untied.weights.input_bytes


def test_partial_offload_puts_the_output_layer_on_the_gpu_first() -> None:
    """llama-model.cpp b11434 (`i_gpu_start = max(n_layer + 1 - ngl, 0)`, output = `get_layer_buft_list(n_layer)`):
    `-ngl 1` offloads the output layer alone, `-ngl k` the output and the last k - 1 repeating layers. Read from the
    source; a CPU build has no GPU device to show it, and no GPU was lent to measure it."""
    w = WeightsSpec(layer_bytes=(10, 20, 30), input_bytes=5, output_bytes=7, tied_output_bytes=0, cuda_pad_bytes=0)
    assert [w.gpu_bytes(n) for n in (0, 1, 2, 3, 4, 999)] == [0, 7, 37, 57, 67, 67]
    assert [w.host_bytes(n) for n in (0, 1, 2, 3, 4, 999)] == [72, 65, 35, 15, 5, 5]
    assert all(w.gpu_bytes(n) + w.host_bytes(n) == 72 for n in (0, 1, 2, 3, 4, 999))
