"""Reading GGUF files: the header parser, split files, and where headers are read from (local, ssh, remote ranges)."""
