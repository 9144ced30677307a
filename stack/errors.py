"""How a failure that is not the user's reaches the user: one message, its own exit code, never a traceback.

A refused config is a `models.errors.ConfigError` (exit 1, key paths), whichever layer found the problem (schema,
GGUF reading, sizing). Anything else escaping `plan`, `compose`, `fetch`, the download job or the Pulumi program
is a bug in this project, e.g. a `ValueError` from an invariant the validation should have guaranteed; it is
reported here as one, with how to report it, so it is never mistaken for a problem with the stack file.
"""

from __future__ import annotations

import os

EXIT_INTERNAL = 3
TRACEBACK_ENV = "LLS_TRACEBACK"
"""Set to 1 to let the traceback of an internal error through (for a bug report)."""
_MAX_DETAIL = 500


def show_traceback() -> bool:
    return os.environ.get(TRACEBACK_ENV) == "1"


def internal_error_message(exc: BaseException) -> str:
    detail = str(exc)
    if len(detail) > _MAX_DETAIL:
        detail = detail[:_MAX_DETAIL] + "..."
    return (
        f"internal error: {type(exc).__name__}: {detail}\n"
        "This is a bug in local-llm-stack, not a problem with your stack config. Please report it to the project's "
        f"issue tracker with this message, the command you ran and your stack file (rerun with {TRACEBACK_ENV}=1 "
        "for a traceback to attach)."
    )
