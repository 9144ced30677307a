"""Everything the product emits for every stack file in the repo, written to one directory for a before/after diff.

For a refactor that must not change behaviour: run it on the old commit and on the new one, then
`diff -r before after`. Per stack file it records `plan --json`, `plan` text, `compose` and `compose --cpu` (the
compose file, the files beside it, the outputs JSON, stdout/stderr and exit codes), and the resource graph the
Pulumi program registers under mocks (type, name, parent, dependencies, inputs, options; sorted, since registrations
race) with its exports.

    python scripts/behaviour_snapshot.py OUT_DIR
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf.json_format import MessageToDict
from pulumi.runtime.mocks import MockMonitor

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["LLS_OFFLINE"] = "1"
from tests.pulumi.conftest import RecordingMocks, set_config_from_stack_file  # noqa: E402 (needs the repo on sys.path)

os.environ.pop("LLS_TRACEBACK", None)


def stack_files() -> list[Path]:
    return sorted(REPO.glob("Pulumi.*.yaml")) + sorted((REPO / "tests/hostile/stacks").glob("*.yaml"))


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from stack.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*")) if p.is_file()}


class _Monitor(MockMonitor):
    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.requests: list[dict[str, Any]] = []

    def RegisterResource(self, request: Any) -> Any:
        doc = MessageToDict(request, preserving_proto_field_name=True)
        doc.get("object", {}).pop("__provider", None)  # a pickled class: its bytes name the module path
        for where in ("sourcePosition", "source_position", "stackTrace", "stack_trace"):
            doc.pop(where, None)  # source locations, not behaviour
        doc["dependencies"] = sorted(doc.get("dependencies", []))
        for deps in doc.get("propertyDependencies", {}).values():
            deps["urns"] = sorted(deps.get("urns", []))
        self.requests.append(doc)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def _program_module() -> Any:
    """The Pulumi program's module, where it lives now or where it lived before `stack/` had packages."""
    for name in ("stack.targets.pulumi.program", "stack.program"):
        with contextlib.suppress(ModuleNotFoundError):
            return importlib.import_module(name)
    raise ModuleNotFoundError("the Pulumi program module")


def _program_graph(path: Path) -> dict[str, Any]:
    mocks = RecordingMocks()
    monitor = _Monitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="local-llm-stack", stack="test", preview=False, monitor=monitor)
    set_config_from_stack_file(path)
    exported: dict[str, Any] = {}
    real_export = pulumi.export

    def export(name: str, value: Any) -> None:
        pulumi.Output.from_input(value).apply(lambda v: exported.__setitem__(name, v))

    module = _program_module()
    setattr(pulumi, "export", export)  # noqa: B010 (patched for the run, restored below)
    error = ""
    try:
        pulumi.runtime.test(module.main)()  # type: ignore[no-untyped-call]
    except Exception as exc:  # the refusal text is part of the behaviour
        error = f"{type(exc).__name__}: {exc}"
    finally:
        setattr(pulumi, "export", real_export)  # noqa: B010
    resources = sorted(monitor.requests, key=lambda r: (r.get("type", ""), r.get("name", "")))
    return {"error": error, "resources": resources, "exports": exported}


def snapshot(path: Path, out: Path) -> None:
    out.mkdir(parents=True)
    config = str(path.relative_to(REPO))
    codes = []
    for name, argv in {"plan_json": ["plan", "--json", "--config", config, "--offline"],
                       "plan_text": ["plan", "--config", config, "--offline"]}.items():
        code, stdout, stderr = _cli(argv)
        codes.append(code)
        (out / f"{name}.txt").write_text(f"exit {code}\n--- stdout\n{stdout}--- stderr\n{stderr}", encoding="utf-8")
    if codes[0] == 1:
        return  # refused by the loader; compose refuses it the same way and the Pulumi CLI never runs the program
    for name, extra in {"compose": [], "compose_cpu": ["--cpu"]}.items():
        with tempfile.TemporaryDirectory() as tmp:
            code, stdout, stderr = _cli(["compose", "--config", config, "--offline",
                                         "--out", f"{tmp}/docker-compose.yml", *extra])
            files = _tree(Path(tmp))
        text = f"exit {code}\n--- stdout\n{stdout}--- stderr\n{stderr}".replace(tmp, "<out>")
        (out / f"{name}.txt").write_text(text, encoding="utf-8")
        for rel, content in files.items():
            target = out / f"{name}.files" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
    graph = _program_graph(path)
    (out / "pulumi_graph.json").write_text(json.dumps(graph, indent=1, sort_keys=True, default=str) + "\n",
                                           encoding="utf-8")


def main() -> int:
    out = Path(sys.argv[1]).resolve()
    os.chdir(REPO)
    out.mkdir(parents=True, exist_ok=False)
    for path in stack_files():
        snapshot(path, out / path.name.removesuffix(".yaml"))
    print(f"{len(stack_files())} stack files -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
