"""`python -m stack plan`: validate and size a stack config without the Pulumi CLI.
`python -m stack compose`: the same checks, then the stack's containers as a docker-compose file.
`python -m stack fetch`: the same checks, then the declared model sources downloaded into models_dir.

Exit codes: 0 valid and fits, 1 invalid config or command line, 2 valid but a co-resident set does not fit,
3 internal error (a bug in local-llm-stack; the message says how to report it).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from models.errors import ConfigError
from models.load import StackFile, load_stack_file
from models.sources import sourced_parts
from models.values import control_chars
from stack.deployment import build_deployment
from stack.errors import EXIT_INTERNAL, internal_error_message, show_traceback
from stack.fetch.fetcher import Fetcher, Progress, fetch_all, hf_token
from stack.fetch.http_client import DEFAULT_TIMEOUT_S, HttpClient, origin
from stack.gguf.header import file_problem
from stack.gguf.remote import with_sources
from stack.gguf.sources import HeaderSource, header_source_for
from stack.report import files_summary, render_files_text, render_text
from stack.sizing.plan import Plan, build_plan
from stack.sources_report import downloads_json, file_rows
from stack.sources_report import render_files_text as render_sources_text
from stack.targets.compose.compose_file import files_stem, render_compose, with_cpu_profile

EXIT_OK, EXIT_INVALID, EXIT_DOES_NOT_FIT = 0, 1, 2
COMMAND_LINE = "(command line)"
"""The key of a refused command line (an unknown option, a missing value)."""


class UsageError(Exception):
    """argparse would exit 2, the code for 'does not fit'; a bad command line is a refusal (exit 1) instead."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see {self.prog} --help")


def printable(text: str, keep_newlines: bool = False) -> str:
    """Text for a terminal: control characters from a stack file or a path shown as escapes, so a value cannot
    clear the screen, hide text or start a line that reads like another refusal."""
    bad = set(control_chars(text)) - ({"\n"} if keep_newlines else set())
    if not bad:
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if c in bad else c for c in text)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="validate a stack config and print its VRAM report")
    plan.add_argument("--config", default="Pulumi.dev.yaml", help="stack file (default: %(default)s)")
    plan.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    plan.add_argument(
        "--models-dir",
        help="where the GGUF files are readable here (default: models_dir on the docker:host over ssh, "
        "else the local models_dir when it exists)",
    )
    plan.add_argument("--offline", action="store_true",
                      help="read no remote header: files not in models_dir are sized from the config or the catalog")
    compose = sub.add_parser(
        "compose",
        help="validate a stack config like plan, then write it as a docker-compose file",
        description="Write the stack's containers (the same specs `pulumi up` deploys) as a docker-compose file, "
        "with the config files they read next to it in <name>.files/. Refuses an invalid config (exit 1) or one "
        "that does not fit (exit 2) like plan, writing nothing. Secrets stay out of the file: docker-compose reads "
        "them from its environment (LLAMA_SWAP_API_KEY, LITELLM_MASTER_KEY, cloud keys).",
    )
    compose.add_argument("--config", default="Pulumi.dev.yaml", help="stack file (default: %(default)s)")
    compose.add_argument("--out", default="docker-compose.yml", help="compose file to write (default: %(default)s)")
    compose.add_argument(
        "--cpu", action="store_true",
        help="use the cpu GPU profile whatever the stack file says: no GPU request, -ngl 0, no VRAM gate",
    )
    compose.add_argument("--models-dir", help="as for plan: where the GGUF files are readable here")
    compose.add_argument("--offline", action="store_true", help="as for plan: read no remote header")
    fetch = sub.add_parser(
        "fetch",
        help="validate and size a stack like plan, then download its declared model sources into models_dir",
        description="Check the stack like plan (refusing an invalid config, exit 1, or one that does not fit, exit "
        "2, before any download), then download every declared source that is not in models_dir yet: resumable, "
        "sha256-verified, renamed into place only when complete. A token for gated repositories comes from "
        "HF_TOKEN, else from the stack's hf_token secret through `pulumi config get`. Exit 1 if a file failed.",
    )
    fetch.add_argument("--config", default="Pulumi.dev.yaml", help="stack file (default: %(default)s)")
    fetch.add_argument("--models-dir", help="download here instead of the stack's models_dir")
    fetch.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                       help="seconds without an answer (or with almost no data) before a server counts as stalled "
                       "(default: %(default)s)")
    fetch.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def _models_dir_override(models_dir: str | None) -> Path | None:
    """`--models-dir` must name an existing directory: a typo would otherwise turn every model into a missing file,
    and a path the OS refuses (longer than PATH_MAX, a name over NAME_MAX) into an error per model."""
    if models_dir is None:
        return None
    try:
        is_dir = stat.S_ISDIR(os.stat(models_dir).st_mode)
        problem = "" if is_dir else "not a directory"
    except (OSError, ValueError) as exc:
        problem = getattr(exc, "strerror", None) or str(exc)
    if problem:
        raise ConfigError([("--models-dir", f"cannot use {models_dir!r}: {problem}; give the directory that holds "
                                            "the GGUF files here, or leave --models-dir out")])
    return Path(models_dir)


def _load_and_plan(
    config: str, models_dir: str | None, *, cpu: bool = False, offline: bool = False, timeout: float | None = None,
) -> tuple[StackFile, Plan, HeaderSource | None, HttpClient]:
    """The one validate-and-size path of every subcommand; raises ConfigError. The client carries the token for
    `hf_endpoint` (fetch downloads with it)."""
    override = _models_dir_override(models_dir)
    stack_file = load_stack_file(config)
    cfg = with_cpu_profile(stack_file.config) if cpu else stack_file.config
    base = header_source_for(cfg.models_dir, stack_file.docker_host, stack_file.docker_ssh_opts, override)
    token = None
    if sourced_parts(cfg):
        token, note = hf_token(stack_file.path, stack_file.secret_keys)
        if note:
            print(printable(f"warning: {note}"), file=sys.stderr)
    client = HttpClient(token=token, token_origin=origin(cfg.hf_endpoint), timeout=timeout or DEFAULT_TIMEOUT_S)
    headers = with_sources(cfg, base, offline=offline, client=client)
    try:
        plan = build_plan(cfg, headers)
    finally:
        for source in (base, headers) if headers is not base else (base,):
            for problem in getattr(source, "problems", ()):
                print(printable(f"warning: {problem}; sizing that model from its config or the catalog"),
                      file=sys.stderr)
    for warning in plan.warnings:
        print(printable(f"warning: {warning}"), file=sys.stderr)
    return stack_file, plan, headers, client


def _print_invalid(config: str, exc: ConfigError) -> None:
    print(f"{printable(config)}: invalid stack config", file=sys.stderr)
    for key, msg in exc.problems:
        print(f"  {printable(key)}: {printable(msg, keep_newlines=True).replace(chr(10), chr(10) + '    ')}",
              file=sys.stderr)


def _errors_json(problems: Sequence[tuple[str | None, str]], **extra: bool) -> str:
    return json.dumps({"valid": False, **extra, "errors": [{"key": k, "message": m} for k, m in problems]})


def run_plan(config: str, as_json: bool, models_dir: str | None, offline: bool = False) -> int:
    try:
        stack_file, plan, headers, _ = _load_and_plan(config, models_dir, offline=offline)
    except ConfigError as exc:
        if as_json:
            print(_errors_json(exc.problems))
        else:
            _print_invalid(config, exc)
        return EXIT_INVALID
    deployment = build_deployment(plan, stack_file.secret_keys)
    rows = file_rows(plan.config, plan, headers)
    downloads = downloads_json(rows, headers)
    if as_json:
        print(json.dumps({"valid": True, **plan.to_json(), "files": [r.to_json() for r in rows],
                          "downloads": downloads, "containers": files_summary(deployment)}, indent=2))
    else:
        print(render_text(plan), end="")
        print()
        for line in render_sources_text(rows, downloads).splitlines():
            print(printable(line))
        print()
        print(render_files_text(deployment), end="")
    return EXIT_OK if plan.fits else EXIT_DOES_NOT_FIT


def _unchanged(path: Path, content: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == content
    except (OSError, UnicodeDecodeError):
        return False


def _write_all(files: dict[Path, str]) -> None:
    """Write every file or none: each changed file is staged as a temporary file next to it, and only when all are
    staged are they renamed into place (a running container keeps the file it mounted until it is replaced).
    On an OSError the staged files and the directories made for them are removed, and the error is raised."""
    made: list[Path] = []
    staged: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            if _unchanged(path, content):
                continue
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            missing = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
            for d in reversed(missing):
                d.mkdir()
                made.append(d)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(content)
            os.chmod(tmp, 0o644)
    except BaseException:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    for tmp, path in staged:
        os.replace(tmp, path)


def run_compose(config: str, out: str, cpu: bool, models_dir: str | None, offline: bool = False) -> int:
    try:
        stack_file, plan, _, _ = _load_and_plan(config, models_dir, cpu=cpu, offline=offline)
        if plan.config.target != "docker":
            raise ConfigError([("target", f"compose writes the docker target, and this stack's target is "
                                          f"{plan.config.target}; deploy it with pulumi up, or set target: docker")])
    except ConfigError as exc:
        _print_invalid(config, exc)
        return EXIT_INVALID
    if not plan.fits:
        print(render_text(plan), end="", file=sys.stderr)
        print(f"{config}: does not fit; nothing written", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    out_path = Path(out)
    deployment = build_deployment(plan, stack_file.secret_keys)
    result = render_compose(deployment, out_path.name,
                            header=f"Stack file: {config}" + (" with --cpu (gpu.profile: cpu)" if cpu else ""))
    outputs = deployment.outputs(deployment.container_names)
    outputs_path = out_path.with_name(f"{files_stem(out_path.name)}.outputs.json")
    files = {out_path.parent / rel: content for rel, content in result.files.items()}
    files[outputs_path] = json.dumps(outputs, indent=2) + "\n"
    files[out_path] = result.text
    try:
        _write_all(files)
    except (OSError, ValueError) as exc:
        where = getattr(exc, "filename", None) or out_path
        reason = getattr(exc, "strerror", None) or str(exc)
        print(printable(f"--out: cannot write {where}: {reason}; nothing written; choose a writable path"),
              file=sys.stderr)
        return EXIT_INVALID
    services = ", ".join(svc.key for svc in deployment.services)
    print(f"wrote {out_path}: services {services} on network {plan.config.network.name}; "
          f"{len(result.files)} config file(s) under {out_path.parent / result.files_dir}")
    print(f"wrote {outputs_path}: the stack outputs, for `pytest tests/smoke --targets={outputs_path}`")
    if result.secret_variables:
        print(f"docker-compose reads secrets from the environment: {', '.join(result.secret_variables)}")
    print(f"run: docker-compose -f {out_path} up -d")
    return EXIT_OK


def run_fetch(config: str, models_dir: str | None, timeout: float, quiet: bool) -> int:
    try:
        stack_file = load_stack_file(config)
        if models_dir is None and stack_file.docker_host and stack_file.docker_host.startswith("ssh://"):
            raise ConfigError([("docker:host", f"{stack_file.docker_host}: fetch downloads into a directory of this "
                                               "machine; run it on the Docker host, or give --models-dir")])
        target = Path(models_dir or stack_file.config.models_dir)
        stack_file, plan, _, client = _load_and_plan(config, str(target) if target.is_dir() else None,
                                                     timeout=timeout)
    except ConfigError as exc:
        _print_invalid(config, exc)
        return EXIT_INVALID
    if not plan.fits:
        print(render_text(plan), end="", file=sys.stderr)
        print(f"{config}: does not fit; nothing downloaded", file=sys.stderr)
        return EXIT_DOES_NOT_FIT
    parts = list(sourced_parts(plan.config).values())
    if not parts:
        print(f"{config}: no model declares a source; nothing to fetch")
        return EXIT_OK
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"models_dir: cannot create {target}: {exc.strerror or exc}; create it or give --models-dir",
              file=sys.stderr)
        return EXIT_INVALID
    fetcher = Fetcher(client, target, Progress(enabled=not quiet), check=file_problem)
    done, failed = fetch_all(fetcher, parts)
    for outcome in done:
        part = outcome.part
        if outcome.action == "downloaded":
            rate = outcome.bytes / outcome.seconds / 2**20 if outcome.seconds > 0 else 0.0
            resumed = f", resumed at {outcome.resumed_from:,} bytes" if outcome.resumed_from else ""
            print(f"{part.key}: downloaded {part.local} ({outcome.bytes:,} bytes in {outcome.seconds:.1f} s, "
                  f"{rate:,.1f} MiB/s{resumed}), sha256 {outcome.sha256}")
            if part.sha256 is None:
                print(f"  unpinned: record it as {part.key}.sha256"
                      + (f" (item {part.part - 1} of the list)" if part.parts > 1 else "") + f": {outcome.sha256}")
        elif outcome.action == "present":
            print(f"{part.key}: {part.local} is already there and verified")
        else:
            print(f"{part.key}: {part.local} is already there (no sha256 declared: not checked)")
    for failure in failed:
        print(printable(f"{failure.key}: {failure.message}"), file=sys.stderr)
    if failed:
        print(f"{config}: {len(failed)} of {len(parts)} file(s) not fetched; nothing partial was put in place",
              file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "plan":
        return run_plan(args.config, args.json, args.models_dir, args.offline)
    if args.command == "compose":
        return run_compose(args.config, args.out, args.cpu, args.models_dir, args.offline)
    if args.command == "fetch":
        return run_fetch(args.config, args.models_dir, args.timeout, args.quiet)
    return EXIT_INVALID


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except UsageError as exc:
        if "--json" in argv:
            print(_errors_json([(COMMAND_LINE, str(exc))]))
        else:
            print(printable(f"{COMMAND_LINE}: {exc}"), file=sys.stderr)
        return EXIT_INVALID
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if show_traceback():
            raise
        message = internal_error_message(exc)
        if getattr(args, "json", False):
            print(_errors_json([(None, message)], internal_error=True))
        else:
            print(printable(message, keep_newlines=True), file=sys.stderr)
        return EXIT_INTERNAL
