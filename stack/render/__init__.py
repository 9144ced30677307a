"""Pure rendering of what gets deployed: llama-server argv, the llama-swap and LiteLLM files, container specs and
the outputs a deployment must answer to. Deterministic text and frozen values; no Pulumi, no I/O."""
