"""Deterministic YAML for rendered config files: same document, same bytes, and every string read back as that string.

Key order is the insertion order the renderers choose; lines are never wrapped (a wrapped `cmd` is still
valid YAML but makes diffs unreadable), and no anchors are emitted when the same object appears twice.

Strings are written plain only when no reader of these files takes them for another type. PyYAML's dumper quotes
what YAML 1.1 resolves (PyYAML itself: LiteLLM, docker-compose 1.29); `_go_resolves` adds what Go's yaml.v3
resolves besides (llama-swap, Compose v2): `1e3`, `0o17`, `09`, `-.5`, `1.e5` are numbers there, and llama-swap,
which decodes its file into untyped values first, would serve model `1e3` as `1000` (or load no model at all).
yaml.v2 reads `y` and `n` as booleans; they are quoted too. Everything else PyYAML already escapes or quotes
(`: `, ` #`, a leading `-`, `'`, non-printable characters).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from models.values import go_yaml_type

_TIMESTAMP = re.compile(r"[0-9]{4}-")


def _go_resolves(value: str) -> bool:
    """Whether Go's yaml.v3 or yaml.v2 reads this plain scalar as something other than a string; anything shaped
    like a date is quoted too."""
    return go_yaml_type(value) is not None or bool(_TIMESTAMP.match(value))


class DoubleQuoted(str):
    """A scalar emitted in double quotes: llama-swap escapes `\\` and `"` when it expands `${env.X}` into it."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _double_quoted(dumper: yaml.SafeDumper, data: DoubleQuoted) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'" if _go_resolves(data) else None)


_Dumper.add_representer(DoubleQuoted, _double_quoted)
_Dumper.add_representer(str, _str)


def dump_yaml(doc: dict[str, Any], header: str) -> str:
    """`header` becomes leading `#` comment lines; the result ends with exactly one newline."""
    body = yaml.dump(
        doc,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
        indent=2,
    )
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comments + body
