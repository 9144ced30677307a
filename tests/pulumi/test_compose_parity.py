"""The compose export and the Pulumi deployment say the same thing about every container.

`stack.targets.compose.compose_file.compose_service` and `stack.targets.pulumi.container_args` both map one
`ContainerSpec`; this compares their results field by field, so a spec field that one mapping forgets, or renders
differently, fails here. The intended differences are listed in `stack.targets.compose.compose_file`'s docstring:
image tag instead of pulled id, uploads as read-only bind mounts, secrets as `${VAR}` references.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import pulumi
import pytest

from models.load import parse_stack_config
from stack.deployment import build_deployment
from stack.gguf.sources import header_source_for
from stack.render.containers import ContainerSpec
from stack.sizing.plan import build_plan
from stack.targets.compose.compose_file import compose_service, secret_variable
from stack.targets.pulumi import container_args, program
from tests.pulumi.conftest import PROJECT, RecordingMocks, pulumi_test
from tests.unit.render_samples import deployment, raw

FILES = "docker-compose.files"


def _port(text: str) -> tuple[str, int, int, str]:
    address, _, rest = text.rpartition(":")  # "127.0.0.1:8081" / "[::1]:8081", then "8080/tcp"
    host, _, external = address.rpartition(":")
    internal, _, protocol = rest.partition("/")
    return host.strip("[]"), int(external), int(internal), protocol


def _pulumi_view(spec: ContainerSpec, args: dict[str, Any]) -> dict[str, Any]:
    hc = args["healthcheck"]
    return {
        "name": args["name"],
        "entrypoint": args.get("entrypoints", []),
        "command": args.get("command", []),
        "ports": [(p.ip, p.external, p.internal, p.protocol) for p in args["ports"]],
        "mounts": [(m.source, m.target, m.read_only) for m in args["mounts"] if m.type == "bind"],
        "files": [(u.file, u.content) for u in args["uploads"]],
        "networks": [list(n.aliases) for n in args["networks_advanced"]],
        "healthcheck": (list(hc.tests), hc.interval, hc.timeout, hc.retries, hc.start_period),
        "labels": {lab.label: lab.value for lab in args["labels"]},
        "restart": args["restart"],
        "logging": (args["log_driver"], args["log_opts"]),
        "stop": f"{args['stop_timeout']}s",
        "gpu": args.get("gpus"),
    }


def _compose_view(spec: ContainerSpec, svc: dict[str, Any]) -> dict[str, Any]:
    hc = svc["healthcheck"]
    volumes = svc.get("volumes", [])
    uploads = {u.path: u.content for u in spec.uploads}
    devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    gpu = None
    if devices:
        (device,) = devices
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        gpu = "all" if device.get("count") == "all" else "device=" + ",".join(device["device_ids"])
    return {
        "name": svc["container_name"],
        "entrypoint": svc.get("entrypoint", []),
        "command": svc.get("command", []),
        "ports": [_port(p) for p in svc["ports"]],
        "mounts": [(v["source"], v["target"], v["read_only"]) for v in volumes if not v["source"].startswith("./")],
        # An upload is a read-only bind mount of a file written next to the compose file, at the same path.
        "files": [(v["target"], uploads[v["target"]]) for v in volumes if v["source"].startswith("./")
                  if v["read_only"]],
        "networks": [n["aliases"] for n in svc["networks"].values()],
        "healthcheck": (hc["test"], hc["interval"], hc["timeout"], hc["retries"], hc["start_period"]),
        "labels": svc["labels"],
        "restart": svc["restart"],
        "logging": (svc["logging"]["driver"], svc["logging"]["options"]),
        "stop": svc["stop_grace_period"],
        "gpu": gpu,
    }


@pulumi_test
def test_compose_and_pulumi_map_every_spec_alike(mocks: RecordingMocks) -> Awaitable[None]:
    pairs = []
    for dep in (deployment(), deployment(gpu={"profile": "rtx-4090", "device": "device=1"}, bind_address="::1"),
                deployment(gpu={"profile": "cpu"})):
        for spec in dep.specs:
            secrets = {env: pulumi.Output.secret(f"value-of-{key}") for env, key in spec.secret_env.items()}
            args = container_args(spec, "sha256:img", "net-id", secrets)
            svc = compose_service(spec, FILES)
            assert _compose_view(spec, svc) == _pulumi_view(spec, args), spec.name
            pairs.append((spec, args, svc))

    async def envs() -> None:
        for spec, args, svc in pairs:
            value = args["envs"]
            entries = (await value.future() if isinstance(value, pulumi.Output) else value) or []
            pulumi_env = dict(e.split("=", 1) for e in entries)
            compose_env = dict(svc["environment"])
            for env, key in spec.secret_env.items():
                assert pulumi_env[env] == f"value-of-{key}"
                variable = secret_variable(key)
                assert compose_env[env].startswith(f"${{{variable}:?")
                pulumi_env[env] = compose_env[env] = f"<secret {key}>"
            assert compose_env == pulumi_env, spec.name

    return envs()


def test_compose_outputs_are_the_stack_outputs(mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m stack compose` writes the smoke suite's targets (its Deployment's outputs with the container names
    it gives the containers); they equal what `pulumi stack output` gives."""
    doc = {**raw(), "models_dir": "/nonexistent/local-llm-stack-models", "network": {"name": "ai"}}
    secrets = {"api_key": "sk-a", "litellm_master_key": "sk-m", "openai_api_key": "sk-o"}
    values = {f"{PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
    values |= {f"{PROJECT}:{k}": v for k, v in secrets.items()}
    pulumi.runtime.set_all_config(values, [f"{PROJECT}:{k}" for k in secrets])
    exported: dict[str, Any] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    names: dict[str, str] = {}

    @pulumi_test
    def run() -> Awaitable[None]:
        program.main()

        async def resolve() -> None:
            for service, name in exported["container_names"].items():
                names[service] = await name.future()

        return resolve()

    run()
    cfg = parse_stack_config(doc, frozenset(secrets))
    dep = build_deployment(build_plan(cfg, header_source_for(cfg.models_dir)), frozenset(secrets))
    assert dep.outputs(dep.container_names) == {**exported, "container_names": names}
    assert names == {"llama-swap": "ai-llama-swap", "embeddings": "ai-embeddings", "litellm": "ai-litellm"}
