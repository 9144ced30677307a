"""No registry or mirror address is hard-coded in the image builds: scripts/docker/lib.sh reads them from the machine.

* ``lls_debian_mirror SUITE [SOURCES_LIST [SOURCES_PARTS_DIR]]`` picks debootstrap's mirror from apt's own sources
  (one-line ``sources.list``/``*.list`` and deb822 ``*.sources``), run here against temporary files in both formats;
* no script or Dockerfile under scripts/docker and docker/ names a network address other than the container's own
  loopback.

No Docker engine needed: plain bash and awk.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.docker.support import REPO_ROOT

LIB_SH = REPO_ROOT / "scripts" / "docker" / "lib.sh"


def _mirror(suite: str, *paths: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{LIB_SH}" && lls_debian_mirror "$@"', "lls", suite, *map(str, paths)],
        capture_output=True, text=True, timeout=30, check=False,
    )


def _sources(tmp_path: Path, sources_list: str | None, parts: dict[str, str]) -> tuple[Path, Path]:
    lst, d = tmp_path / "sources.list", tmp_path / "sources.list.d"
    d.mkdir()
    if sources_list is not None:
        lst.write_text(sources_list)
    for name, text in parts.items():
        (d / name).write_text(text)
    return lst, d


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src-only.example/debian
Suites: bookworm

types: deb
uris: http://disabled.example/debian
suites: bookworm
enabled: no

Types: deb
URIs:
 http://apt-proxy.internal:3142/debian/
 http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_deb822_picks_the_enabled_binary_entry_for_the_suite(tmp_path: Path) -> None:
    """Security/updates suites, deb-src and `Enabled: no` stanzas are passed over; continuation lines, comments and
    lower-case field names are deb822; the first URI of the stanza wins, trailing slash dropped, proxy kept as is."""
    lst, parts = _sources(tmp_path, None, {"debian.sources": DEB822})
    proc = _mirror("bookworm", lst, parts)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "http://apt-proxy.internal:3142/debian\n"
    assert proc.stderr == ""


def test_one_line_format_with_options_and_comments(tmp_path: Path) -> None:
    lst, parts = _sources(
        tmp_path,
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] "
        "http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64] https://mirror.example.org/debian/ bookworm main contrib  # a comment\n",
        {},
    )
    proc = _mirror("bookworm", lst, parts)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "https://mirror.example.org/debian\n"


def test_apt_order_sources_list_then_parts_by_name_other_names_ignored(tmp_path: Path) -> None:
    """apt reads sources.list, then sources.list.d/*.list and *.sources in name order; other files (e.g.
    `*.disabled`, `*.save`) are not sources at all."""
    lst, parts = _sources(
        tmp_path,
        "deb http://archive.ubuntu.com/ubuntu noble main\n",
        {
            "00-disabled.list.disabled": "deb http://disabled.example/debian bookworm main\n",
            "10-b.sources": "Types: deb\nURIs: http://b.example/debian\nSuites: bookworm\n",
            "05-a.list": "deb http://a.example/debian bookworm main\n",
            "mirror.list.save": "deb http://save.example/debian bookworm main\n",
        },
    )
    proc = _mirror("bookworm", lst, parts)
    assert proc.stdout == "http://a.example/debian\n", proc.stderr
    (tmp_path / "sources.list").write_text("deb http://first.example/debian bookworm main\n")
    assert _mirror("bookworm", lst, parts).stdout == "http://first.example/debian\n"


def test_exact_suite_wins_over_another_debian_release(tmp_path: Path) -> None:
    lst, parts = _sources(
        tmp_path,
        "deb http://trixie.example/debian trixie main\ndeb http://bookworm.example/debian bookworm main\n",
        {},
    )
    assert _mirror("bookworm", lst, parts).stdout == "http://bookworm.example/debian\n"


def test_falls_back_to_a_mirror_listed_for_another_debian_release(tmp_path: Path) -> None:
    """A trixie host's mirror carries bookworm too: used, and said so on stderr."""
    lst, parts = _sources(
        tmp_path, None,
        {"debian.sources": "Types: deb\nURIs: http://deb.example/debian\nSuites: trixie trixie-updates\n\n"
                           "Types: deb\nURIs: http://deb.example/debian-security\nSuites: trixie-security\n"},
    )
    proc = _mirror("bookworm", lst, parts)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "http://deb.example/debian\n"
    assert "no bookworm entry" in proc.stderr and "another Debian suite" in proc.stderr


def test_unusable_uri_schemes_are_skipped(tmp_path: Path) -> None:
    """debootstrap fetches over http(s)/ftp or from file:; apt-only methods (mirror+file:, cdrom:) are not for it."""
    lst, parts = _sources(
        tmp_path,
        "deb mirror+file:/etc/apt/mirrors/debian.list bookworm main\n"
        "deb cdrom:[Debian GNU/Linux 12]/ bookworm main\n"
        "deb file:/srv/debian-mirror bookworm main\n",
        {},
    )
    assert _mirror("bookworm", lst, parts).stdout == "file:/srv/debian-mirror\n"


def test_no_debian_entry_fails_naming_what_was_looked_at(tmp_path: Path) -> None:
    lst, parts = _sources(
        tmp_path,
        "deb http://archive.ubuntu.com/ubuntu noble main\n",
        {
            "nodesource.sources": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n",
            "google.list.disabled-by-farm": "deb https://packages.example.com/apt cloud-sdk-bookworm main\n",
        },
    )
    proc = _mirror("bookworm", lst, parts)
    assert proc.returncode == 1
    assert proc.stdout == ""
    msg = proc.stderr
    assert "no Debian mirror for suite bookworm" in msg
    assert f"{lst} (deb entries: http://archive.ubuntu.com/ubuntu noble)" in msg
    assert f"{parts}/nodesource.sources (deb entries: https://deb.nodesource.com/node_20.x nodistro)" in msg
    assert "google.list.disabled-by-farm" in msg  # ignored, and said so
    assert "LLS_DEBIAN_MIRROR" in msg


def test_missing_files_are_named(tmp_path: Path) -> None:
    proc = _mirror("bookworm", tmp_path / "nope.list", tmp_path / "nope.d")
    assert proc.returncode == 1
    assert f"{tmp_path}/nope.list (missing)" in proc.stderr
    assert f"{tmp_path}/nope.d/ (no such directory)" in proc.stderr


def test_this_machine_s_sources_give_a_configured_uri() -> None:
    """Without paths the function asks apt-config where the sources are; what it returns is in one of them."""
    etc = Path("/etc/apt")
    if not etc.is_dir():
        pytest.skip("no /etc/apt on this machine")
    proc = _mirror("bookworm")
    if proc.returncode != 0:
        assert "looked at:" in proc.stderr and "LLS_DEBIAN_MIRROR" in proc.stderr
        pytest.skip(f"this machine's apt has no Debian entry: {proc.stderr.strip()}")
    uri = proc.stdout.strip()
    texts = [p.read_text(errors="replace") for p in [etc / "sources.list", *sorted(etc.glob("sources.list.d/*"))]
             if p.is_file()]
    assert any(uri in t or f"{uri}/" in t for t in texts), (uri, texts)


# --- nothing hard-coded ----------------------------------------------------------------------------------------

URL = re.compile(r"\b(?:https?|ftp)://([^/\s\"'`:]+)")
LOOPBACK = {"localhost", "127.0.0.1"}


def test_build_scripts_and_dockerfiles_name_no_remote_address() -> None:
    """Mirrors and indexes come from the machine's apt/pip configuration; only comments may cite upstream URLs, and
    the HEALTHCHECKs talk to the container's own loopback."""
    files = [
        *sorted((REPO_ROOT / "scripts" / "docker").glob("*.sh")),
        *sorted(p for p in (REPO_ROOT / "docker").rglob("*") if p.is_file() and p.suffix != ".md"
                and not p.name.endswith(".lock")),
    ]
    assert files
    found = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
            found += [f"{path.relative_to(REPO_ROOT)}:{n}: {line.strip()}"
                      for m in URL.finditer(code) if m.group(1) not in LOOPBACK]
    assert found == []
