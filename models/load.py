"""The one path from a stack file (or Pulumi's config) to a validated `StackConfig`.

Both `pulumi up` and `python -m stack plan` go through `parse_stack_config`, so they accept and
refuse exactly the same configs, with the same key-path messages.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.config import SECRET_KEYS, StackConfig
from models.errors import ConfigError as ConfigError
from models.values import control_chars, ssh_host_problem, ssh_option_problems

PROVIDER_NAMESPACES = frozenset({"docker", "pulumi"})
"""Config namespaces that belong to providers or the engine, not to this project."""

UNKNOWN_KEY = "unknown key; check its spelling against the config reference in README.md"


@dataclass(frozen=True)
class StackFile:
    """A validated stack config and the names of the keys it holds as Pulumi secrets."""

    config: StackConfig
    secret_keys: frozenset[str]
    path: Path | None = None
    docker_host: str | None = None
    docker_ssh_opts: tuple[str, ...] = ()


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(prefix: str, sub: str) -> str:
    if not prefix:
        return sub
    return f"{prefix}{sub}" if sub.startswith("[") else f"{prefix}.{sub}"


_TYPE_HINTS = {
    "int_type": "expected a whole number such as 4096, written without quotes or a decimal point",
    "bool_type": "expected true or false, written without quotes",
    "float_type": "expected a number such as 1234.5, written without quotes",
    "string_type": "expected text; quote it if YAML reads it as something else",
}
"""Strict scalars: YAML's `true` is not 1, nor `"2048"` or `2048.0` an integer, nor `"yes"` a boolean."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 60, 60


def brief(value: Any) -> str:
    """A refused value as a message shows it: bounded, so a YAML alias bomb's shared leaves are never expanded."""
    return _REPR.repr(value)


def _describe(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return UNKNOWN_KEY
    if err["type"] == "missing":
        return "required key is missing; add it (see the config reference in README.md)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] in _TYPE_HINTS:
        return f"{_TYPE_HINTS[err['type']]}; got {brief(err['input'])}"
    if err["loc"] and err["loc"][-1] == "[key]" and err["type"] != "value_error":
        return f"invalid name {brief(err['input'])}: {msg} (letters, digits, '.', '_', '-')"
    return msg


def _non_text_key(loc: tuple[int | str, ...], key: Any) -> tuple[str, str]:
    """A mapping key YAML read as a number, boolean or null: named at the mapping, since it has no name."""
    kind = "null" if key is None else type(key).__name__.replace("bool", "a boolean").replace("float", "a number")
    kind = kind.replace("int", "a number") if isinstance(key, int) and not isinstance(key, bool) else kind
    return _loc_path(loc) or "(top level)", f"key {brief(key)} is {kind} to YAML, not a name; quote it as written"


_UNION_TAG = re.compile(r"[a-z-]+\[")


def _is_tag(loc: tuple[int | str, ...], i: int) -> bool:
    """Whether `loc[i]` names a union member (`ArchConfig`, `dict[...]`, `literal['auto']`), not a key."""
    part = loc[i]
    if not isinstance(part, str) or part == "[key]":
        return part == "[key]"
    followed_by_key = i + 1 < len(loc) and loc[i + 1] == "[key]"
    return not followed_by_key and (part[:1].isupper() or bool(_UNION_TAG.match(part)))


def _other_branch(err: Mapping[str, Any]) -> bool:
    """A union member's type error when the input plainly belongs to another member: `groups: {...}` is no
    misspelt `auto`, and `groups: autox` no malformed mapping. Only the branch that was meant is reported."""
    tags = [p for i, p in enumerate(err["loc"]) if _is_tag(err["loc"], i) and p != "[key]"]
    if not tags:
        return False
    if err["type"] == "literal_error":
        return not isinstance(err["input"], str)
    return err["type"] in ("dict_type", "model_type", "list_type") and isinstance(err["input"], str)


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """Flatten pydantic errors into (key path, message) pairs, expanding cross-field checks."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        if _other_branch(err):
            continue
        # Union members (e.g. `arch: ArchConfig | None`) add the type name to the location.
        loc = tuple(p for i, p in enumerate(err["loc"]) if not _is_tag(err["loc"], i))
        if err["loc"][-1:] == ("[key]",) and not isinstance(err["input"], str):
            problems.append(_non_text_key(loc[:-1], err["input"]))
            continue
        prefix = _loc_path(loc)
        ctx = err.get("ctx") or {}
        if err["type"] == "invalid_keys" and "problems" in ctx:
            problems.extend((_join(prefix, sub), msg) for sub, msg in ctx["problems"])
        else:
            problems.append((prefix or "(top level)", _describe(err)))
    return problems


def split_pulumi_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """Strip `<project>:` prefixes; separate `{secure: ...}` values, whose plaintext we never read."""
    plain: dict[str, Any] = {}
    secrets: set[str] = set()
    spelt: dict[str, str] = {}
    for full_key, value in config.items():
        namespace, sep, key = str(full_key).rpartition(":")
        if sep and namespace in PROVIDER_NAMESPACES:
            continue
        key = key if sep and key else str(full_key)
        if key in spelt:
            raise ConfigError([(key or str(full_key), f"set twice, as {spelt[key]!r} and {str(full_key)!r}; keep one")])
        spelt[key] = str(full_key)
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            secrets.add(key)
        else:
            plain[key] = value
    return plain, frozenset(secrets)


def _secret_problems(plain: Mapping[str, Any], secrets: frozenset[str], cfg: StackConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    cloud = cfg.cloud_secret_keys()
    for key in (*SECRET_KEYS, *cloud):
        if key in plain:
            problems.append((key, f"must be a secret, not plain text: pulumi config set --secret {key} <value>"))
    if not cfg.bind_is_loopback and not cfg.litellm.enabled and "api_key" not in secrets \
            and not cfg.expose_unauthenticated:
        problems.append((
            "bind_address",
            f"{cfg.bind_address} would publish llama-swap and the embedding server to the network with no key: set "
            "the api_key secret (pulumi config set --secret api_key <value>), or enable litellm (then only LiteLLM, "
            "with its master key, is published there), or accept it with expose_unauthenticated: true",
        ))
    if cfg.litellm.enabled:
        for key in ("litellm_master_key", *cloud):
            if key not in secrets and key not in plain:
                problems.append(
                    (key, f"required when litellm.enabled is true: pulumi config set --secret {key} <value>")
                )
    return problems


def parse_stack_config(
    raw: Mapping[str, Any], secrets: frozenset[str] = frozenset()
) -> StackConfig:
    """Validate plain config values; secrets are checked by name only (their values stay encrypted)."""
    known = set(StackConfig.model_fields)
    unknown = sorted(k for k in raw if k not in known and k not in SECRET_KEYS)
    try:
        cfg = StackConfig.model_validate({k: v for k, v in raw.items() if k in known})
    except ValidationError as exc:
        raise ConfigError(problems_of(exc) + [(k, UNKNOWN_KEY) for k in unknown]) from None
    cloud = set(cfg.cloud_secret_keys())
    problems = [(k, UNKNOWN_KEY) for k in unknown if k not in cloud]
    problems += _secret_problems(raw, secrets, cfg)
    if problems:
        raise ConfigError(problems)
    return cfg


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """Reads a stack file the way Pulumi does (Go's yaml.v3), so `plan` checks the values `pulumi up` deploys.

    PyYAML follows YAML 1.1; yaml.v3 differs where it matters here: `1e3`, `0o17`, `09` and `-.5` are numbers
    (PyYAML: text; an alias `1e3` would be deployed as `1000`), `yes`/`no`/`on`/`off` and `1:30` are text (PyYAML:
    a boolean, the integer 90). Dates stay dates (refused where text is meant). PyYAML keeps the last of two equal
    keys; Pulumi refuses the file, and so does this loader."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue  # merged keys may be overridden by the mapping's own (YAML merge semantics)
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                line = key_node.start_mark.line + 1
                raise _DuplicateKey(f"line {line}: duplicate key {key!r}; keep one (Pulumi refuses the file)")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_go_int(self, node: yaml.ScalarNode) -> int | float | str:
        """strconv.ParseInt(s, 0, 64) after removing `_`: a leading 0 means octal; `09` falls through to a float."""
        text = str(self.construct_scalar(node))
        plain = text.replace("_", "")
        digits = plain.lstrip("+-")
        try:
            if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
                return int(plain, 8) if set(digits) <= set("01234567") else float(plain)
            return int(plain, 0)
        except ValueError:
            return text

    def construct_go_float(self, node: yaml.ScalarNode) -> float | str:
        text = str(self.construct_scalar(node))
        special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}.get(text.lower())
        try:
            return float(special or (text if text.startswith(".") else text.replace("_", "")))
        except ValueError:
            return text


MERGE_TAG = "tag:yaml.org,2002:merge"
_UniqueKeyLoader.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"(?:true|True|TRUE|false|False|FALSE)", "tTfF"),
    ("null", r"(?:~|null|Null|NULL|)", ["~", "n", "N", ""]),
    ("int", r"[-+]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9][0-9_]*)", "-+0123456789"),
    ("float", r"[-+]?(?:\.[0-9_]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9_]+)?|[-+]?\.(?:inf|Inf|INF)|"
              r"\.(?:nan|NaN|NAN)", "-+0123456789."),
    ("merge", r"<<", "<"),
    ("timestamp", r"[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9]"
                  r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)?", "0123456789"),
):
    _UniqueKeyLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first))
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_go_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_go_float)


def load_stack_file(path: str | Path) -> StackFile:
    """Read a `Pulumi.<stack>.yaml` file and validate its `config:` block."""
    p = Path(path)
    unreadable = "cannot read the stack file: {}; give the path of a readable Pulumi.<stack>.yaml"
    if "\0" in str(p):
        raise ConfigError([(str(p), unreadable.format("the path holds a NUL character"))])
    try:
        doc = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except OSError as exc:
        raise ConfigError([(str(p), unreadable.format(exc.strerror or exc))]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([(str(p), f"not UTF-8 text (byte {exc.start}): save the stack file as UTF-8")]) from None
    except _DuplicateKey as exc:
        raise ConfigError([(str(p), str(exc))]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([(str(p), f"not valid YAML; fix it where shown: {exc}")]) from None
    except RecursionError:
        raise ConfigError([(str(p), "YAML nested too deeply to be a stack file; write the config as README.md "
                                    "shows (a few levels)")]) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("config"), Mapping):
        raise ConfigError([(str(p), "expected a Pulumi stack file with a top-level 'config:' mapping")])
    plain, secrets = split_pulumi_config(doc["config"])
    host, opts = docker_settings(doc["config"].get("docker:host"), doc["config"].get("docker:sshOpts"))
    return StackFile(parse_stack_config(plain, secrets), secrets, p, docker_host=host, docker_ssh_opts=opts)


def docker_settings(host: Any, ssh_opts: Any) -> tuple[str | None, tuple[str, ...]]:
    """`docker:host` and `docker:sshOpts`, the Docker provider's keys: `plan` runs ssh with them to read GGUF headers,
    so the destination must be a host (not an option) and the options an allow-list that cannot run local commands
    (`models.values.SSH_OPTIONS`)."""
    if host is not None and (not isinstance(host, str) or control_chars(host)):
        raise ConfigError([("docker:host", "must be a string such as unix:///var/run/docker.sock or ssh://user@host")])
    if isinstance(host, str) and host.startswith("ssh://"):
        problem = ssh_host_problem(host)
        if problem is not None:
            raise ConfigError([("docker:host", problem)])
    opts = ssh_opts if ssh_opts is not None else []
    if not isinstance(opts, list) or not all(isinstance(o, str) for o in opts):
        raise ConfigError([("docker:sshOpts", "must be a list of strings, e.g. [-i, ~/.ssh/id_ed25519]")])
    problems = ssh_option_problems(opts)
    if problems:
        raise ConfigError([(f"docker:sshOpts[{i}]", msg) for i, msg in problems])
    return host or None, tuple(opts)
