"""One validated type per kind of value a stack file holds: names, paths, free text, argv items, image references,
URLs, and the Docker provider's ssh settings.

Every value ends up in text another program parses: llama-swap's YAML (which expands `${...}` across the whole
file and splits `cmd` like a POSIX shell), docker-compose's YAML (which interpolates `$`), LiteLLM's YAML, an ssh
command line, the `plan` report. A value accepted here means the same thing in each of them; the renderers still
quote and escape (`stack/render/yaml_text.py`, `stack/targets/compose/compose_file.py`), so neither layer relies on the
other alone. Each refusal says what to change.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, StrictBool, StrictStr

PATH_MAX = 4096
NAME_MAX = 255
"""Linux limits, in bytes: a longer path fails in the container with ENAMETOOLONG, after `plan` said it was fine."""

MAX_TEXT = 1024
MAX_ARG = 4096
MAX_URL = 2048

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Format characters that reorder the text around them: a value could display as something it is not."""


def control_chars(value: str) -> list[str]:
    """Characters that can end a line or hide text in some reader: C0/C1 controls (tab, CR and LF included), line and
    paragraph separators (YAML 1.1 line breaks), lone surrogates (not encodable) and bidirectional overrides."""
    return [c for c in value if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") or c in _BIDI]


def _no_controls(value: str) -> None:
    bad = control_chars(value)
    if bad:
        shown = ", ".join(sorted({f"U+{ord(c):04X}" for c in bad}))
        raise ValueError(f"{value!r} contains control characters ({shown}); remove them")


def _no_macro(value: str) -> None:
    if "${" in value:
        raise ValueError(
            f"{value!r} contains '${{', which llama-swap expands as a macro (e.g. ${{env.LLAMA_SWAP_API_KEY}} "
            "would put the API key there); remove it"
        )


def _no_dollar(value: str) -> None:
    if "$" in value:
        raise ValueError(f"{value!r} contains '$', which docker-compose reads as a variable; rename it without '$'")


def _bounded(value: str, limit: int) -> None:
    if len(value) > limit:
        raise ValueError(f"{value[:40]!r}... is {len(value)} characters long; the limit is {limit}")


def matching(pattern: str | re.Pattern[str], fix: str, kind: str = "valid here") -> AfterValidator:
    """A token checked against `pattern` (whole string); the refusal says what the value is not (`kind`) and the
    fix, instead of the regex."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not {kind}: {fix}")
        return value

    return AfterValidator(check)


Name = Annotated[StrictStr, matching(NAME_RE, f"use {NAME_RULE}", "a valid name")]
"""Model ids, aliases, group ids, the embedding name, fallback names: one namespace in llama-swap and LiteLLM.

Names such as `1e3`, `0o17`, `true` or `null` are valid; the renderers quote them so they stay strings."""

CatalogRef = Annotated[StrictStr, matching(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9_]{1,16})?", "give key or key/QUANT, e.g. qwen2.5-7b/Q4_K_M",
    "a catalog key")]





def _path_limits(value: str) -> None:
    _no_controls(value)
    _no_dollar(value)
    size = len(value.encode("utf-8"))
    if size > PATH_MAX:
        raise ValueError(f"{value[:40]!r}... is {size} bytes long; paths are limited to {PATH_MAX}")
    for part in value.split("/"):
        if len(part.encode("utf-8")) > NAME_MAX:
            raise ValueError(f"{part[:40]!r}... is longer than {NAME_MAX} bytes, the limit for one file name")


def _check_relative_gguf(value: str) -> str:
    _path_limits(value)
    parts = value.split("/")
    if value.startswith("/") or ".." in parts:
        raise ValueError(f"{value!r} must be a path relative to models_dir, without '..'")
    if not parts[-1].endswith(".gguf") or parts[-1] == ".gguf":
        raise ValueError(f"{value!r} must name a .gguf file")
    return value


RelativeModelPath = Annotated[StrictStr, AfterValidator(_check_relative_gguf)]
"""A GGUF file under models_dir (`file` keys): relative, no `..`, no `$`, no control characters, within PATH_MAX."""

SYSTEM_DIRS = frozenset({"/", "/bin", "/boot", "/dev", "/etc", "/lib", "/proc", "/root", "/run", "/sbin", "/sys",
                         "/usr", "/var", "/var/run", "/var/lib/docker"})
"""Host directories never mounted into the containers as the models directory."""


def _check_host_dir(value: str) -> str:
    _path_limits(value)
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path on the Docker host")
    if ".." in parts:
        raise ValueError(f"{value!r} must not contain '..': give the directory itself")
    if "/" + "/".join(parts) in SYSTEM_DIRS:
        raise ValueError(f"{value!r} is a system directory; use a directory that holds only your GGUF files")
    return value


HostDir = Annotated[StrictStr, AfterValidator(_check_host_dir)]
"""`models_dir`: an absolute directory on the Docker host, bind-mounted read-only into the containers."""


def _check_text(value: str, limit: int) -> str:
    _bounded(value, limit)
    _no_controls(value)
    _no_macro(value)
    if value != value.strip():
        raise ValueError(f"{value!r} starts or ends with whitespace, which llama-swap trims; remove it")
    return value


def free_text(limit: int = MAX_TEXT) -> AfterValidator:
    """Free text (a description, a GPU name): one line, at most `limit` characters, no `${`. A lone `$` is kept:
    llama-swap only expands `${`, and compose never interpolates the config files it mounts."""
    return AfterValidator(lambda v: _check_text(v, limit))


Text = Annotated[StrictStr, free_text()]


def _check_arg(value: str) -> str:
    _bounded(value, MAX_ARG)
    _no_controls(value)
    _no_macro(value)
    return value


ArgvItem = Annotated[StrictStr, AfterValidator(_check_arg)]
"""One llama-server argument (`extra_args` items): no control characters (a newline would start a new `cmd` line
in llama-swap), no `${`. Which flags are allowed is `models.config`'s extra_args check."""


_HOST_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?"
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[_.]|__|-+){_ALNUM})*"
IMAGE_RE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?",
    re.ASCII,
)
"""Docker's reference grammar (distribution/reference): [registry[:port]/]path[:tag][@sha256:digest]."""


def _check_image(value: str) -> str:
    m = IMAGE_RE.fullmatch(value)
    if m is None or len(m.group("name")) > 255:
        raise ValueError(
            f"{value!r} is not an image reference: give registry/path:tag or registry/path@sha256:<64 hex>, "
            "lowercase path, no spaces or '$'"
        )
    if m.group("digest") is None and m.group("tag") in (None, "latest"):
        raise ValueError(f"{value!r} is not pinned; give a version tag (not 'latest') or @sha256: digest")
    return value


ImageRef = Annotated[StrictStr, AfterValidator(_check_image)]


def _check_url(value: str) -> str:
    _bounded(value, MAX_URL)
    _no_controls(value)
    if "${" in value:
        raise ValueError(f"{value!r} contains '${{', which nothing expands in LiteLLM's config; give the URL itself")
    if any(c.isspace() for c in value):
        raise ValueError(f"{value!r} contains whitespace; percent-encode it (%20)")
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises for a port out of range
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid URL ({exc}); give http(s)://host[:port][/path]") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"{value!r} must be an http:// or https:// URL with a host, e.g. https://api.example.com/v1")
    if "@" in url.netloc:
        raise ValueError(
            f"credentials in the URL would be written in plain text to LiteLLM's config file; remove them from "
            f"{url.scheme}://{url.hostname}... and put the key in the secret named by api_key_secret"
        )
    return value


HttpUrl = Annotated[StrictStr, AfterValidator(_check_url)]
"""An http(s) base URL without credentials (LiteLLM `api_base`): its file is readable in the container."""

ProviderModel = Annotated[StrictStr, matching(
    r"[a-z0-9_-]+/[!-~]{1,255}", "give provider/model, e.g. openai/gpt-4o-mini", "a LiteLLM model")]


_GO_TYPES = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
                     "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF"], "boolean"),
    **dict.fromkeys(["", "~", "null", "Null", "NULL"], "null"),
    **dict.fromkeys([".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
                     "-.INF"], "number"),
    "<<": "merge key",
}
_GO_NUMBER = re.compile(
    r"[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)"
)


def go_yaml_type(value: str) -> str | None:
    """What Go's YAML readers make of this unquoted scalar when it is not text: yaml.v3 (llama-swap, Compose v2,
    Pulumi) reads `1e3`, `0o17`, `09`, `-.5` as numbers, which PyYAML (YAML 1.1) keeps as text; yaml.v2 also reads
    `y`/`n` as booleans. Out-of-range numbers count as numbers."""
    if value in _GO_TYPES:
        return _GO_TYPES[value]
    if value[:1] in "+-.0123456789" and _GO_NUMBER.fullmatch(value.replace("_", "")):
        return "number"
    return None


def _pulumi_bool(value: Any) -> Any:
    """`pulumi config set key true` stores the string "true"; only that exact form stands for a boolean."""
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


TopLevelBool = Annotated[StrictBool, BeforeValidator(_pulumi_bool)]
"""A boolean top-level key: YAML true/false, or Pulumi's own string form "true"/"false" (how a top-level value
reaches the Pulumi program). Below the top level a boolean is a YAML boolean only."""


# --- the Docker provider's ssh settings (`docker:host`, `docker:sshOpts`) ---------------------------------------

_SSH_USER = re.compile(r"[A-Za-z0-9._][A-Za-z0-9._-]{0,31}")
_SSH_HOST = re.compile(rf"{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|[0-9A-Fa-f:.]+")

SSH_OPTIONS = frozenset(
    o.lower()
    for o in (
        "AddressFamily", "BindAddress", "BindInterface", "CASignatureAlgorithms", "CertificateFile", "CheckHostIP",
        "Ciphers", "Compression", "ConnectionAttempts", "ConnectTimeout", "FingerprintHash", "GlobalKnownHostsFile",
        "HashKnownHosts", "HostKeyAlgorithms", "HostKeyAlias", "IdentitiesOnly", "IdentityFile", "IPQoS",
        "KbdInteractiveAuthentication", "KexAlgorithms", "LogLevel", "MACs", "NumberOfPasswordPrompts",
        "PasswordAuthentication", "PreferredAuthentications", "PubkeyAcceptedAlgorithms", "PubkeyAcceptedKeyTypes",
        "PubkeyAuthentication", "RekeyLimit", "RequiredRSASize", "ServerAliveCountMax", "ServerAliveInterval",
        "StrictHostKeyChecking", "TCPKeepAlive", "UpdateHostKeys", "UserKnownHostsFile", "VerifyHostKeyDNS",
    )
)
"""`-o` options `docker:sshOpts` may set: how to authenticate, verify and keep the connection. Left out, because
they run or load local code, forward the agent or ports, send the environment, open another connection, or change
the destination: ProxyCommand, ProxyJump, LocalCommand, PermitLocalCommand, KnownHostsCommand, Match, Include,
PKCS11Provider, SecurityKeyProvider, IdentityAgent, ForwardAgent, LocalForward, RemoteForward, DynamicForward,
SendEnv, SetEnv, RemoteCommand, Control*, HostName, User, Port. Put those in ~/.ssh/config, which stays yours."""

SSH_FLAGS = frozenset({"-4", "-6", "-C", "-q", "-v", "-vv", "-vvv"})


def ssh_option_problems(opts: list[str]) -> list[tuple[int, str]]:
    """(index, problem) for each `docker:sshOpts` item outside the allow-list (`-i FILE`, `-o Key=Value`, flags)."""
    problems: list[tuple[int, str]] = []
    i = 0
    while i < len(opts):
        item = opts[i]
        bad = control_chars(item)
        if bad:
            problems.append((i, f"{item!r} contains control characters; remove them"))
        elif item in SSH_FLAGS:
            pass
        elif item in ("-i", "-o"):
            if i + 1 >= len(opts):
                problems.append((i, f"{item} needs a value after it"))
            elif item == "-o":
                problems += [(i + 1, p) for p in _ssh_o_problems(opts[i + 1])]
            elif control_chars(opts[i + 1]) or opts[i + 1].startswith("-"):
                problems.append((i + 1, f"{opts[i + 1]!r} is not an identity file path"))
            i += 1
        elif item.startswith("-o"):
            problems += [(i, p) for p in _ssh_o_problems(item[2:])]
        elif item.startswith("-i") and len(item) > 2:
            pass
        else:
            problems.append((i, f"{item!r} is not allowed; use -i FILE, -o Key=Value or one of {sorted(SSH_FLAGS)}"))
        i += 1
    return problems


def _ssh_o_problems(option: str) -> list[str]:
    if control_chars(option):
        return [f"{option!r} contains control characters; remove them"]
    keyword = re.split(r"[=\s]", option.strip(), maxsplit=1)[0]
    if keyword.lower() not in SSH_OPTIONS:
        return [
            f"ssh option {keyword!r} is not allowed here (it could run a local command, forward access or change "
            "the destination); set it in ~/.ssh/config for this host instead"
        ]
    return []


def ssh_host_problem(docker_host: str) -> str | None:
    """Why an `ssh://[user@]host[:port]` docker:host cannot be used as an ssh destination, or None."""
    if control_chars(docker_host) or any(c.isspace() for c in docker_host):
        return f"{docker_host!r} contains whitespace or control characters; remove them"
    try:
        url = urlsplit(docker_host)
        port = url.port
    except ValueError as exc:
        return f"{docker_host!r}: {exc}; give ssh://user@host[:port] with a port from 1 to 65535"
    if port == 0:
        return f"{docker_host!r}: port 0; give a port from 1 to 65535"
    if url.password is not None:
        return "a password in docker:host would be stored in plain text; use a key (docker:sshOpts: [-i, FILE])"
    host = url.hostname or ""
    if not _SSH_HOST.fullmatch(host):
        return f"{docker_host!r} has no valid host name (letters, digits, '-', '.'); give ssh://user@host"
    if url.username is not None and not _SSH_USER.fullmatch(url.username):
        return f"user {url.username!r} is not a valid login name (letters, digits, '.', '_', '-'; not starting '-')"
    return None
