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

# --- package sources: never hard-coded, read from this machine's own configuration ------------------------------

# Debian suites a mirror for SUITE may be recognised by when no apt entry names SUITE itself (a full Debian mirror
# carries every release); anything else (Ubuntu's noble, -security, -updates, third-party suites) is not a Debian
# mirror for debootstrap.
LLS_DEBIAN_SUITES="jessie stretch buster bullseye bookworm trixie forky duke sid oldoldstable oldstable stable testing unstable"

# _lls_apt_entries FILE: one "URI<TAB>SUITE" line per binary (`deb`) entry of an apt sources file: deb822 for
# *.sources (Types/URIs/Suites/Enabled; stanzas separated by blank lines, `#` comments, continuation lines), the
# one-line format otherwise (`deb [options] URI SUITE [COMPONENT...]`). Trailing slashes of URIs are dropped.
_lls_apt_entries() {
  local f=$1 fmt=oneline
  [[ "$f" == *.sources ]] && fmt=deb822
  awk -v fmt="$fmt" '
    function emit(uri, suite) { sub(/\/+$/, "", uri); if (uri != "" && suite != "") print uri "\t" suite }
    function flush(   nu, ns, i, j, U, S) {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) !~ /^[ \t]*no[ \t]*$/) {
        nu = split(uris, U, /[ \t]+/); ns = split(suites, S, /[ \t]+/)
        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) emit(U[i], S[j])
      }
      types = uris = suites = enabled = field = ""
    }
    fmt == "deb822" {
      sub(/\r$/, "")
      if ($0 ~ /^#/) next
      if ($0 ~ /^[ \t]*$/) { flush(); next }
      if ($0 ~ /^[ \t]/) { value = $0 } else {
        colon = index($0, ":"); if (!colon) next
        field = tolower(substr($0, 1, colon - 1)); value = substr($0, colon + 1)
      }
      if (field == "types") types = types " " value
      else if (field == "uris") uris = uris " " value
      else if (field == "suites") suites = suites " " value
      else if (field == "enabled") enabled = value
      next
    }
    {
      sub(/#.*/, ""); sub(/\r$/, "")
      if ($1 != "deb") next
      i = 2
      if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
      emit($i, $(i + 1))
    }
    END { if (fmt == "deb822") flush() }
  ' "$f"
}

# lls_debian_mirror SUITE [SOURCES_LIST [SOURCES_PARTS_DIR]]: the Debian mirror this machine's apt uses, for
# debootstrap SUITE. Files read, in apt's order: SOURCES_LIST (one-line format), then SOURCES_PARTS_DIR/*.list and
# *.sources in C-locale name order (other names are ignored, as apt does); without arguments the paths apt-config
# reports (Dir::Etc::sourcelist, Dir::Etc::sourceparts; default /etc/apt/sources.list{,.d}). Among the `deb`
# entries with an http(s)/ftp/file URI, the first whose suite is exactly SUITE wins, else the first whose suite is
# another Debian release (LLS_DEBIAN_SUITES; noted on stderr). Prints the URI as configured (a proxy or any host
# is fine); returns 1 with a message naming every file looked at and the entries found when none qualifies.
lls_debian_mirror() {
  local suite=$1 list=${2:-} parts=${3:-} f name uri s tier1="" tier2="" seen="" ignored=""
  local -a files=() looked=()
  if (( $# < 2 )); then
    if command -v apt-config >/dev/null 2>&1; then
      eval "$(apt-config shell list Dir::Etc::sourcelist/f parts Dir::Etc::sourceparts/d 2>/dev/null)" || true
    fi
    list=${list:-/etc/apt/sources.list}
    parts=${parts:-/etc/apt/sources.list.d}
  fi
  parts=${parts%/}
  [[ -n "$list" ]] && files+=("$list")
  if [[ -n "$parts" && -d "$parts" ]]; then
    while IFS= read -r -d '' f; do
      name=${f##*/}
      if [[ "$name" =~ ^[A-Za-z0-9_.-]+\.(list|sources)$ ]]; then files+=("$f"); else ignored+="${ignored:+ }$name"; fi
    done < <(find "$parts" -mindepth 1 -maxdepth 1 \( -type f -o -type l \) -print0 | LC_ALL=C sort -z)
  fi
  for f in "${files[@]}"; do
    if [[ ! -r "$f" ]]; then looked+=("$f (missing)"); continue; fi
    seen=""
    while IFS=$'\t' read -r uri s; do
      seen+="${seen:+, }$uri $s"
      [[ "$uri" =~ ^(https?|ftp|file): ]] || continue
      if [[ -z "$tier1" && "$s" == "$suite" ]]; then tier1=$uri; fi
      if [[ -z "$tier2" && " $LLS_DEBIAN_SUITES " == *" $s "* ]]; then tier2="$uri"; fi
    done < <(_lls_apt_entries "$f")
    looked+=("$f (deb entries: ${seen:-none})")
  done
  if [[ -n "$parts" && ! -d "$parts" ]]; then looked+=("$parts/ (no such directory)")
  elif [[ -n "$ignored" ]]; then looked+=("$parts/ (ignored, not *.list/*.sources: $ignored)"); fi
  if [[ -n "$tier1" ]]; then echo "$tier1"; return 0; fi
  if [[ -n "$tier2" ]]; then
    printf 'apt sources name no %s entry; using the Debian mirror %s (listed for another Debian suite)\n' \
      "$suite" "$tier2" >&2
    echo "$tier2"
    return 0
  fi
  local joined=""
  for f in "${looked[@]}"; do joined+="${joined:+; }$f"; done
  printf 'no Debian mirror for suite %s in apt sources (wanted: a `deb` entry with an http(s)/ftp/file URI and suite %s or another Debian release); looked at: %s. Set LLS_DEBIAN_MIRROR=<mirror URL>.\n' \
    "$suite" "$suite" "${joined:-nothing}" >&2
  return 1
}
