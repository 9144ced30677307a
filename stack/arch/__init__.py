"""What the sizing knows about a model: `ModelArch`, built from a GGUF header (per-family rule tables), the
config's `arch` block or the built-in catalog."""
