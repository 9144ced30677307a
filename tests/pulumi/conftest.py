"""The one Pulumi mock setup for these tests: `preview=False`, so applies run and assertions are real."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import pulumi
import pytest
import yaml
from pulumi.runtime.mocks import MockMonitor

PROJECT = "local-llm-stack"

IMAGE_TYPE = "docker:index/remoteImage:RemoteImage"
DOWNLOAD_TYPE = "pulumi-python:dynamic/local-llm-stack:ModelDownload"


def mock_image_id(image: str) -> str:
    return f"sha256:mock-{image}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Echoes inputs as outputs, computes `imageId`, reports each model download as done (a digest per part), and
    records every registration for assertions."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == IMAGE_TYPE:
            outputs["imageId"] = mock_image_id(args.inputs["name"])
        if args.typ == DOWNLOAD_TYPE:
            digests = [p.get("sha256") or f"{p['local']}-digest" for p in args.inputs["parts"]]
            outputs |= {"ok": True, "error": "", "sha256": digests, "downloaded_bytes": 0,
                        "actions": ["downloaded"] * len(digests)}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]


class RecordingMonitor(MockMonitor):
    """Keeps the raw registration requests: resource options (parent, deleteBeforeReplace,
    replaceOnChanges, dependencies) are not passed to `Mocks.new_resource`."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.requests: list[Any] = []

    def RegisterResource(self, request: Any) -> Any:
        self.requests.append(request)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def request(self, name: str) -> Any:
        (found,) = [r for r in self.requests if r.name == name]
        return found


F = TypeVar("F", bound=Callable[..., Any])


def pulumi_test(fn: F) -> F:
    """`pulumi.runtime.test` with its type kept: runs `fn` and awaits what it returns and every registration."""
    return cast(F, pulumi.runtime.test(fn))  # type: ignore[no-untyped-call]


MOCKS = RecordingMocks()
MONITOR = RecordingMonitor(MOCKS)
pulumi.runtime.set_mocks(MOCKS, project=PROJECT, stack="test", preview=False, monitor=MONITOR)


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    """Fresh records and empty config for each test."""
    MOCKS.resources.clear()
    MONITOR.requests.clear()
    pulumi.runtime.set_all_config({}, [])
    yield MOCKS
    MOCKS.resources.clear()
    MONITOR.requests.clear()
    pulumi.runtime.set_all_config({}, [])


def set_config_from_stack_file(path: Path) -> None:
    """Hand a stack file's `config:` to the program the way the Pulumi CLI does: top-level values as text, objects
    and lists as JSON, `{secure: ...}` values as secrets (a dummy value)."""
    entries = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]
    values: dict[str, str] = {}
    secret_keys = []
    for key, value in entries.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = f"sk-dummy-{key}"
            secret_keys.append(key)
        else:
            values[key] = value if isinstance(value, str) else json.dumps(value)
    pulumi.runtime.set_all_config(values, secret_keys)
