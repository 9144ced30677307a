"""Deterministic YAML for rendered config files: same document, same bytes.

Key order is the insertion order the renderers choose; lines are never wrapped (a wrapped `cmd` is still
valid YAML but makes diffs unreadable), and no anchors are emitted when the same object appears twice.
"""

from __future__ import annotations

from typing import Any

import yaml


class DoubleQuoted(str):
    """A scalar emitted in double quotes: llama-swap escapes `\\` and `"` when it expands `${env.X}` into it."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _double_quoted(dumper: yaml.SafeDumper, data: DoubleQuoted) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style='"')


_Dumper.add_representer(DoubleQuoted, _double_quoted)


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
