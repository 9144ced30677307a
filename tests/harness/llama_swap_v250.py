"""Structural checks of a rendered llama-swap config against the documented facts of llama-swap v250.

Why this exists instead of loading the file in llama-swap: the real llama-swap cannot be installed on this
machine (the Go module proxy answers 403 for github.com/mostlygeek/llama-swap, no other registry carries it),
and v250 has no `-validate` flag anyway (it came after v250). These checks are what v250's loader would refuse
or silently get wrong, taken from `../shared/reference/llama-swap.md` (§1.1-1.8, `internal/config/load.go`):
no key v250 does not know (it ignores unknown keys, so a typo deploys a default), `${PORT}` in every cmd that
has a `${PORT}` proxy, no macro it would not expand, `healthCheckTimeout >= 15` (lower is clamped silently),
group members and matrix references that are real model ids, each model in at most one group, aliases unique
and distinct from ids, `apiKeys` without spaces, env macros only inside double-quoted scalars (llama-swap
escapes `\\` and `"` when it expands them into the text).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

TOP_LEVEL_KEYS = frozenset({
    "healthCheckTimeout", "globalTTL", "unloadTimeout", "logLevel", "logTimeFormat", "logToStdout",
    "metricsMaxInMemory", "captureBuffer", "store", "ui", "performance", "startPort", "sendLoadingState",
    "includeAliasesInList", "macros", "apiKeys", "models", "groups", "matrix", "routing", "hooks", "profiles",
    "selectors", "peers", "upstream", "logRequests",
})
MODEL_KEYS = frozenset({
    "cmd", "cmdStop", "proxy", "aliases", "env", "checkEndpoint", "ttl", "unloadTimeout", "unlisted",
    "useModelName", "name", "description", "concurrencyLimit", "filters", "macros", "metadata",
    "sendLoadingState", "timeouts", "compat", "capabilities",
})
GROUP_KEYS = frozenset({"swap", "exclusive", "persistent", "members"})
MATRIX_KEYS = frozenset({"vars", "evict_costs", "sets"})
PEER_KEYS = frozenset({"proxy", "apiKey", "models", "filters", "timeouts"})
LOG_LEVELS = frozenset({"debug", "info", "warn", "error"})

_MACRO = re.compile(r"\$\{([^}]*)\}")
_ENV_MACRO = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")
_MATRIX_TOKEN = re.compile(r"\s*(?:([A-Za-z0-9._-]+)|(\+[A-Za-z0-9._-]+)|([&|()]))")


def _unknown(where: str, mapping: Mapping[str, Any], known: frozenset[str]) -> list[str]:
    return [f"{where}.{k}: key unknown to llama-swap v250 (it would be ignored)" for k in mapping if k not in known]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _macro_problems(where: str, text: str, allowed: frozenset[str]) -> list[str]:
    return [
        f"{where}: macro ${{{name}}} would not be expanded by llama-swap"
        for name in _MACRO.findall(text)
        if name not in allowed and not name.startswith("env.")
    ]


def _matrix_refs(expr: str) -> list[str]:
    """Identifiers of one matrix set (`a & (b | c)`, `+other`); raises ValueError on a malformed expression."""
    pos, idents, depth, expect_operand = 0, [], 0, True
    while pos < len(expr):
        m = _MATRIX_TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            if expr[pos:].strip() == "":
                break
            raise ValueError(f"unexpected {expr[pos:]!r}")
        ident, ref, op = m.groups()
        pos = m.end()
        if ident or ref:
            if not expect_operand:
                raise ValueError(f"missing operator before {ident or ref!r}")
            idents.append(ident or ref)
            expect_operand = False
        elif op == "(":
            depth, expect_operand = depth + 1, True
        elif op == ")":
            depth -= 1
            if depth < 0 or expect_operand:
                raise ValueError("unbalanced ')'")
        else:
            if expect_operand:
                raise ValueError(f"operator {op!r} without a left operand")
            expect_operand = True
    if depth != 0 or expect_operand:
        raise ValueError("incomplete expression")
    return idents


def _check_models(models: Mapping[str, Any]) -> tuple[list[str], dict[str, str]]:
    problems: list[str] = []
    owner: dict[str, str] = {}
    for mid, m in models.items():
        where = f"models.{mid}"
        if not isinstance(m, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        problems += _unknown(where, m, MODEL_KEYS)
        cmd = m.get("cmd")
        if not isinstance(cmd, str) or not cmd.strip():
            problems.append(f"{where}.cmd: required, a non-empty string")
            continue
        proxy = str(m.get("proxy", "http://localhost:${PORT}"))
        if "${PORT}" in proxy and "${PORT}" not in cmd:
            problems.append(f"{where}.cmd: has no ${{PORT}} but proxy {proxy!r} uses it (llama-swap refuses this)")
        if "${PORT}" not in cmd:
            problems.append(f"{where}.cmd: no ${{PORT}}: the model would not listen where llama-swap assigns")
        allowed = frozenset({"PORT", "MODEL_ID"})
        problems += _macro_problems(f"{where}.cmd", cmd, allowed) + _macro_problems(f"{where}.proxy", proxy, allowed)
        try:
            argv = shlex.split(cmd.replace("${PORT}", "1").replace("${MODEL_ID}", mid), posix=True)
        except ValueError as exc:
            problems.append(f"{where}.cmd: POSIX shlex cannot split it ({exc})")
        else:
            if not argv or not argv[0].startswith("/"):
                problems.append(f"{where}.cmd: the program is not an absolute path ({argv[:1]})")
        parts = urlsplit(proxy.replace("${PORT}", "1"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"{where}.proxy: {proxy!r} is not an http(s) URL")
        check = m.get("checkEndpoint", "/health")
        if not isinstance(check, str) or not (check.startswith("/") or check == "none"):
            problems.append(f"{where}.checkEndpoint: {check!r} must start with '/' or be 'none'")
        for key, low in (("ttl", -1), ("concurrencyLimit", 0), ("unloadTimeout", 0)):
            if key in m and not (_is_int(m[key]) and m[key] >= low):
                problems.append(f"{where}.{key}: {m[key]!r} must be an integer >= {low}")
        aliases = m.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            problems.append(f"{where}.aliases: must be a list of names")
            continue
        for alias in aliases:
            if alias in models:
                problems.append(f"{where}.aliases: {alias!r} is a model id")
            elif alias in owner:
                problems.append(f"{where}.aliases: duplicate alias {alias!r} (also models.{owner[alias]})")
            else:
                owner[alias] = mid
    return problems, owner


def _check_groups(groups: Any, models: Mapping[str, Any], aliases: Mapping[str, str]) -> list[str]:
    if not isinstance(groups, Mapping):
        return ["groups: expected a mapping"]
    problems: list[str] = []
    member_of: dict[str, str] = {}
    for gid, g in groups.items():
        where = f"groups.{gid}"
        if not isinstance(g, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        problems += _unknown(where, g, GROUP_KEYS)
        problems += [f"{where}.{k}: {g[k]!r} must be a boolean" for k in ("swap", "exclusive", "persistent")
                     if k in g and not isinstance(g[k], bool)]
        members = g.get("members")
        if not isinstance(members, list) or not members:
            problems.append(f"{where}.members: required, a non-empty list of model ids")
            continue
        for member in members:
            if member not in models:
                hint = f" (an alias of {aliases[member]!r}; groups need real ids)" if member in aliases else ""
                problems.append(f"{where}.members: {member!r} is not a model id{hint}")
            elif member in member_of:
                problems.append(f"{where}.members: {member!r} is also in groups.{member_of[member]}")
            else:
                member_of[member] = gid
    return problems


def _check_matrix(matrix: Any, models: Mapping[str, Any]) -> list[str]:
    if not isinstance(matrix, Mapping):
        return ["matrix: expected a mapping"]
    problems = _unknown("matrix", matrix, MATRIX_KEYS)
    variables = matrix.get("vars") or {}
    problems += [f"matrix.vars.{k}: {v!r} is not a model id" for k, v in variables.items() if v not in models]
    sets = matrix.get("sets")
    if not isinstance(sets, Mapping) or not sets:
        return [*problems, "matrix.sets: required, at least one set"]
    for sid, expr in sets.items():
        try:
            refs = _matrix_refs(str(expr))
        except ValueError as exc:
            problems.append(f"matrix.sets.{sid}: {expr!r} is not a valid set expression ({exc})")
            continue
        for ref in refs:
            if ref.startswith("+"):
                if ref[1:] not in sets:
                    problems.append(f"matrix.sets.{sid}: {ref!r} refers to no set")
            elif ref not in models and ref not in variables:
                problems.append(f"matrix.sets.{sid}: {ref!r} is neither a model id nor a var")
    for key, cost in (matrix.get("evict_costs") or {}).items():
        if key not in models and key not in variables:
            problems.append(f"matrix.evict_costs.{key}: not a model id or var")
        if not (_is_int(cost) and cost >= 1):
            problems.append(f"matrix.evict_costs.{key}: {cost!r} must be a positive integer")
    return problems


def _check_peers(peers: Any, local_names: set[str]) -> list[str]:
    if not isinstance(peers, Mapping):
        return ["peers: expected a mapping"]
    problems: list[str] = []
    for pid, peer in peers.items():
        where = f"peers.{pid}"
        problems += _unknown(where, peer, PEER_KEYS)
        parts = urlsplit(str(peer.get("proxy", "")))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"{where}.proxy: {peer.get('proxy')!r} is not an http(s) URL")
        names = peer.get("models")
        if not isinstance(names, list) or not names:
            problems.append(f"{where}.models: required, a non-empty list")
            continue
        problems += [f"{where}.models: {n!r} is also a local model id or alias (the local one would win)"
                     for n in names if n in local_names]
    return problems


def _check_env_macros(text: str) -> list[str]:
    problems = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for m in _ENV_MACRO.finditer(line):
            before, after = line[: m.start()], line[m.end() :]
            if before.count('"') % 2 == 0 or '"' not in after:
                problems.append(f"{m.group(0)} outside a double-quoted scalar: {line.strip()!r}")
    return problems


def check_llama_swap_config(text: str) -> list[str]:
    """Every problem found, each starting with its key path; empty when v250 would load the file as meant."""
    problems = _check_env_macros(text)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [*problems, f"(file): not valid YAML: {exc}"]
    if not isinstance(doc, Mapping):
        return [*problems, "(file): expected a mapping"]
    problems += _unknown("(top level)", doc, TOP_LEVEL_KEYS)
    hct = doc.get("healthCheckTimeout", 120)
    if not (_is_int(hct) and hct >= 15):
        problems.append(f"healthCheckTimeout: {hct!r} must be an integer >= 15 (v250 clamps lower values to 15)")
    if doc.get("logLevel", "info") not in LOG_LEVELS:
        problems.append(f"logLevel: {doc.get('logLevel')!r} not one of {sorted(LOG_LEVELS)}")
    start = doc.get("startPort", 5800)
    if not (_is_int(start) and 1 <= start <= 65535):
        problems.append(f"startPort: {start!r} must be a port number")
    if "sendLoadingState" in doc and not isinstance(doc["sendLoadingState"], bool):
        problems.append("sendLoadingState: must be a boolean")
    keys = doc.get("apiKeys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k and " " not in k for k in keys):
        problems.append("apiKeys: must be a list of non-empty keys without spaces")
    models = doc.get("models")
    if not isinstance(models, Mapping) or not models:
        return [*problems, "models: required, at least one model"]
    model_problems, aliases = _check_models(models)
    problems += model_problems
    if "groups" in doc and "matrix" in doc:
        problems.append("groups, matrix: both set (v250 refuses the combination)")
    if "groups" in doc:
        problems += _check_groups(doc["groups"], models, aliases)
    if "matrix" in doc:
        problems += _check_matrix(doc["matrix"], models)
    if "peers" in doc:
        problems += _check_peers(doc["peers"], set(models) | set(aliases))
    return problems
