"""The VRAM gate: one llama-server process model, its memory (weights, KV cache, compute buffers, overhead),
which models can be resident together, and the plan that checks every such set against the GPU budget."""
