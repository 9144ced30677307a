"""`python -m stack plan`: validate and size a stack config without the Pulumi CLI.

Exit codes: 0 valid and fits, 1 invalid config, 2 valid but a co-resident set does not fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from models.load import ConfigError, load_stack_file
from stack.container_specs import build_container_specs
from stack.header_sources import header_source_for
from stack.plan import build_plan
from stack.render_paths import CONTAINER_PATHS
from stack.report import files_summary, render_files_text, render_text

EXIT_OK, EXIT_INVALID, EXIT_DOES_NOT_FIT = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser("plan", help="validate a stack config and print its VRAM report")
    plan.add_argument("--config", default="Pulumi.dev.yaml", help="stack file (default: %(default)s)")
    plan.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    plan.add_argument(
        "--models-dir",
        help="where the GGUF files are readable here (default: models_dir on the docker:host over ssh, "
        "else the local models_dir when it exists)",
    )
    return parser


def run_plan(config: str, as_json: bool, models_dir: str | None) -> int:
    try:
        stack_file = load_stack_file(config)
        cfg = stack_file.config
        headers = header_source_for(
            cfg.models_dir, stack_file.docker_host, stack_file.docker_ssh_opts,
            Path(models_dir) if models_dir else None,
        )
        plan = build_plan(cfg, headers)
        for problem in getattr(headers, "problems", ()):
            print(f"warning: {problem}; sizing that model from its config or the catalog", file=sys.stderr)
    except ConfigError as exc:
        if as_json:
            print(json.dumps({"valid": False, "errors": [{"key": k, "message": m} for k, m in exc.problems]}))
        else:
            print(f"{config}: invalid stack config", file=sys.stderr)
            for key, msg in exc.problems:
                print(f"  {key}: {msg}", file=sys.stderr)
        return EXIT_INVALID
    specs = build_container_specs(plan.config, CONTAINER_PATHS, api_key_enabled="api_key" in stack_file.secret_keys)
    if as_json:
        print(json.dumps({"valid": True, **plan.to_json(), "containers": files_summary(specs)}, indent=2))
    else:
        print(render_text(plan), end="")
        print()
        print(render_files_text(specs), end="")
    return EXIT_OK if plan.fits else EXIT_DOES_NOT_FIT


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "plan":
        return run_plan(args.config, args.json, args.models_dir)
    return EXIT_INVALID
