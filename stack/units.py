"""Byte units shared by the GGUF reader, the sizing and the reports (llama.cpp prints MiB = 2^20 bytes)."""

MIB = 1024 * 1024
