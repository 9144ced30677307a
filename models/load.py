"""The one path from a stack file (or Pulumi's config) to a validated `StackConfig`.

Both `pulumi up` and `python -m stack plan` go through `parse_stack_config`, so they accept and
refuse exactly the same configs, with the same key-path messages.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from models.config import SECRET_KEYS, StackConfig
from models.values import control_chars, ssh_host_problem, ssh_option_problems

PROVIDER_NAMESPACES = frozenset({"docker", "pulumi"})
"""Config namespaces that belong to providers or the engine, not to this project."""

UNKNOWN_KEY = "unknown key; check its spelling against the config reference in README.md"


class ConfigError(ValueError):
    """An invalid stack config; each problem names the key path and what was expected."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in self.problems))


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


def _describe(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return UNKNOWN_KEY
    if err["type"] == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] in _TYPE_HINTS:
        return f"{_TYPE_HINTS[err['type']]}; got {err['input']!r}"
    if err["loc"] and err["loc"][-1] == "[key]" and err["type"] != "value_error":
        return f"invalid name {err['input']!r}: {msg} (letters, digits, '.', '_', '-')"
    return msg


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
    for full_key, value in config.items():
        namespace, sep, key = str(full_key).rpartition(":")
        if sep and namespace in PROVIDER_NAMESPACES:
            continue
        key = key if sep else str(full_key)
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; Pulumi's Go YAML reader refuses the file. Refuse it here too."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


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
    except yaml.YAMLError as exc:
        raise ConfigError([(str(p), f"not valid YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigError([(str(p), "YAML nested too deeply to be a stack file")]) from None
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
