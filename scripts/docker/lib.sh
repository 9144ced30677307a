# Shared by scripts/docker/*.sh (sourced, not run).
# shellcheck shell=bash disable=SC2034

LLS_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LLS_DOCKER_DIR="$LLS_REPO_ROOT/docker"

# The LiteLLM image's interpreter: Debian bookworm's python3 (3.11, glibc 2.36, x86_64). Wheels are fetched for it
# explicitly, so the host's Python version does not matter.
LITELLM_VERSION="1.106.12"
LITELLM_PY_VERSION="3.11"
LITELLM_PY_ABI="cp311"
PIP_BOOTSTRAP_VERSION="26.3"   # runs from its wheel inside the image build only; the image ships no pip

if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3 >/dev/null 2>&1; then PYTHON=python3; else PYTHON=python; fi
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

# pip's --platform takes exact tags (no manylinux_2_X → lower X expansion), so list every tag glibc 2.36 accepts.
litellm_pip_target_args() {
  local i
  printf '%s\n' --only-binary=:all: --implementation cp --python-version "$LITELLM_PY_VERSION" --abi "$LITELLM_PY_ABI"
  for i in $(seq 36 -1 5); do printf '%s\n' --platform "manylinux_2_${i}_x86_64"; done
  printf '%s\n' --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64 \
    --platform linux_x86_64
}

sha256_of() { sha256sum "$@" | awk '{print $1}'; }
