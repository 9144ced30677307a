"""This repository's Pulumi program driven by the real Pulumi engine, as a user's `pulumi` commands drive it.

Pulumi's Automation API (`pulumi.automation`) runs the real CLI (`binaries.pulumi()`, the official one or the
toolchain build) with the Python language host and the pulumi-docker provider plugin registered with it. Each
project lives in a temporary directory:

* `Pulumi.yaml` names this repository's program (`main:` relative path to the repository root), with the
  interpreter of this test run as its runtime (its virtualenv when it has one);
* `Pulumi.<stack>.yaml` holds the stack config, edited the way a user edits it (the YAML file; secrets through
  `pulumi config set --secret`);
* a file backend (`file://<tmp>/state`) with passphrase-encrypted secrets, so nothing leaves the machine.

Automatic plugin downloads are off (`PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION`): a plugin version that is
not installed is an error, never a download.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from stack.gguf import writers as gm
from tests.harness import binaries
from tests.harness.smoke_runner import SmokeRun, run_smoke_suite

REPO = Path(__file__).resolve().parents[2]
PROJECT = "local-llm-stack"


def _runtime() -> dict[str, Any]:
    options: dict[str, Any] = {"toolchain": "pip"}
    if sys.prefix != sys.base_prefix:
        options["virtualenv"] = sys.prefix
    return {"name": "python", "options": options}


def pulumi_env(backend: Path, passphrase: str) -> dict[str, str]:
    """What every `pulumi` command of the project gets: the file backend, the passphrase, no network."""
    cli = binaries.pulumi()
    path = os.pathsep.join([str(cli.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {
        "PATH": path,
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": passphrase,
        "PULUMI_SKIP_UPDATE_CHECK": "1",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
    }


@dataclass(frozen=True)
class Step:
    """One resource step of a preview or update: URN, type, operation (`create`, `same`, `replace`, ...), and the
    properties whose change caused it."""

    urn: str
    type: str
    op: str
    diffs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]


@dataclass
class Outcome:
    """What one engine operation did: every resource step, its summary, the text it printed, its wall time."""

    steps: list[Step]
    summary: dict[str, int]
    output: str
    seconds: float

    def changed(self) -> dict[str, str]:
        """`name → op` for every step that is not `same`, folding a replacement's three steps into `replace`."""
        out: dict[str, str] = {}
        for s in self.steps:
            if s.op == "same":
                continue
            op = "replace" if s.op in ("replace", "create-replacement", "delete-replaced") else s.op
            out[s.name] = op
        return out


def _collector() -> tuple[list[Step], Callable[[auto.EngineEvent], None]]:
    steps: list[Step] = []

    def on_event(event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is not None and pre.metadata is not None:
            m = pre.metadata
            steps.append(Step(m.urn, m.type, str(m.op.value), tuple(m.diffs or ())))

    return steps, on_event


@dataclass
class PulumiProject:
    """A stack of this repository's program in a temporary project directory; see the module docstring."""

    workdir: Path
    stack_name: str
    passphrase: str = field(default_factory=lambda: secrets.token_hex(16))
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for every `pulumi` command (e.g. `LLS_OFFLINE=0` for a stack whose sources are served)."""
    stack: auto.Stack = field(init=False)

    @property
    def stack_file(self) -> Path:
        return self.workdir / f"Pulumi.{self.stack_name}.yaml"

    @property
    def env(self) -> dict[str, str]:
        return {**pulumi_env(self.workdir / "state", self.passphrase), **self.extra_env}

    def create(self, config: Mapping[str, Any], secret_values: Mapping[str, str]) -> None:
        """`pulumi stack init`, the plain config written into the stack file, each secret set with `--secret`."""
        (self.workdir / "state").mkdir(parents=True, exist_ok=True)
        main = os.path.relpath(REPO, self.workdir)
        settings = {"name": PROJECT, "runtime": _runtime(), "main": main}
        (self.workdir / "Pulumi.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
        cli = binaries.pulumi()
        opts = auto.LocalWorkspaceOptions(
            work_dir=str(self.workdir),
            env_vars=self.env,
            secrets_provider="passphrase",
            pulumi_command=auto.PulumiCommand(root=str(cli.parent.parent), skip_version_check=True),
        )
        self.stack = auto.create_stack(self.stack_name, work_dir=str(self.workdir), opts=opts)
        self.edit_config(lambda c: c.update({f"{PROJECT}:{k}": v for k, v in config.items()}))
        for key, value in secret_values.items():
            self.stack.set_config(f"{PROJECT}:{key}", auto.ConfigValue(value, secret=True))

    def edit_config(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Change `config:` of the stack file in place, keeping its encryption salt and encrypted secrets."""
        doc = yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else {}
        doc = doc or {}
        config = doc.setdefault("config", {})
        change(config)
        self.stack_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    def set_value(self, *path: str, value: Any) -> None:
        """Set `local-llm-stack:<path[0]>.<path[1]>...` in the stack file (creating mappings on the way)."""

        def change(config: dict[str, Any]) -> None:
            node = config
            keys = [f"{PROJECT}:{path[0]}", *path[1:]]
            for key in keys[:-1]:
                node = node.setdefault(key, {})
            node[keys[-1]] = value

        self.edit_config(change)

    def _run(self, verb: str, **kwargs: Any) -> Outcome:
        steps, on_event = _collector()
        lines: list[str] = []
        t0 = time.monotonic()
        try:
            result = getattr(self.stack, verb)(on_event=on_event, on_output=lines.append, color="never", **kwargs)
        except auto.CommandError as exc:
            raise PulumiFailed(verb, "\n".join(lines), str(exc)) from None
        seconds = time.monotonic() - t0
        summary = getattr(result, "change_summary", None) or getattr(result.summary, "resource_changes", None) or {}
        return Outcome(steps, {str(k.value if hasattr(k, "value") else k): v for k, v in summary.items()},
                       "\n".join(lines), seconds)

    def preview(self, **kwargs: Any) -> Outcome:
        return self._run("preview", diff=True, **kwargs)

    def up(self, **kwargs: Any) -> Outcome:
        return self._run("up", **kwargs)

    def refresh(self, **kwargs: Any) -> Outcome:
        return self._run("refresh", **kwargs)

    def destroy(self, **kwargs: Any) -> Outcome:
        return self._run("destroy", **kwargs)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The real `pulumi` command in the project directory, as a user types it."""
        return subprocess.run(
            [str(binaries.pulumi()), *args, "--stack", self.stack_name, "--non-interactive"],
            cwd=self.workdir, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout,
            check=False,
        )

    def outputs_json(self, path: Path) -> Path:
        """`pulumi stack output --json > outputs.json`, the smoke suite's input."""
        proc = self.cli("stack", "output", "--json")
        if proc.returncode != 0:
            raise PulumiFailed("stack output", proc.stdout, proc.stderr)
        path.write_text(proc.stdout)
        return path

    def export(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """`pulumi stack export`; secrets stay encrypted unless `show_secrets`."""
        proc = self.cli("stack", "export", *(["--show-secrets"] if show_secrets else []))
        if proc.returncode != 0:
            raise PulumiFailed("stack export", proc.stdout, proc.stderr)
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def resources(self) -> list[dict[str, Any]]:
        """The state's resources for before/after comparisons: secrets decrypted (every state write encrypts them
        anew, with a new nonce) and without timestamps."""
        out = []
        for r in self.export(show_secrets=True)["deployment"].get("resources", []):
            out.append({k: v for k, v in r.items() if k not in ("created", "modified")})
        return out

    def remove(self) -> None:
        self.stack.workspace.remove_stack(self.stack_name)


class PulumiFailed(AssertionError):
    """A `pulumi` operation exited non-zero; carries what it printed."""

    def __init__(self, verb: str, output: str, error: str) -> None:
        self.verb, self.output, self.error = verb, output, error
        super().__init__(f"pulumi {verb} failed:\n{output[-6000:]}\n{error[-6000:]}")


def smoke_on_outputs(project: PulumiProject, tmp: Path, secrets: Mapping[str, str], label: str) -> SmokeRun:
    """`pulumi stack output --json`, then the smoke suite on it with the deployment's keys in the environment;
    asserts that it passed and returns the run."""
    targets = project.outputs_json(tmp / f"outputs-{label}.json")
    env = {"LLAMA_SWAP_API_KEY": secrets["api_key"], "LITELLM_MASTER_KEY": secrets["litellm_master_key"]}
    # Random weights never open a tool call by themselves: the forced tool-call check gets a logit bias.
    bias = json.dumps({"chat": gm.tool_call_bias(gm.chat_model()[1])})
    run = run_smoke_suite(targets, tmp / f"smoke-{label}.xml", env, f"--tool-call-logit-bias={bias}")
    assert run.rc == 0 and not run.failed, f"smoke suite ({label}) failed:\n{run.output[-8000:]}"
    return run
