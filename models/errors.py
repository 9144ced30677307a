"""The one refusal type: every problem a stack config can have, as key paths with what to do about each.

Raised by the loader, the schema, the GGUF reading and the sizing alike, so every entry point (`plan`, `compose`,
`fetch`, the Pulumi program) reports refusals one way: exit 1, `key: message` lines, no traceback. Anything
else that escapes is a bug and is reported by `stack.errors.internal_error_message`.
"""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """An invalid stack config; each problem names the key path and what was expected."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in self.problems))

    def under(self, prefix: str) -> ConfigError:
        """The same problems with their keys below `prefix` (a model's `models.<id>`): code deep in the sizing knows
        the setting at fault, only its caller knows where that setting sits in the stack file."""
        return ConfigError((f"{prefix}.{key}", message) for key, message in self.problems)
