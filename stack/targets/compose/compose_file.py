"""A `Deployment` as a docker-compose file, from the same `ContainerSpec`s the Pulumi components consume.

`compose_service` is the one mapping from a spec to a compose service, the counterpart of
`stack.targets.pulumi.container.container_args` for pulumi-docker; `compose_project` puts the services, the
network and the start order together. Pure functions: writing the files is `stack.cli`'s job.

The file uses the Compose Specification (no `version:` key): Debian bookworm's `docker-compose` 1.29.2 reads it
(GPU requests via `deploy.resources.reservations.devices` need >= 1.28), and so does Compose v2 (`docker compose`).

What differs from the Pulumi deployment, because compose has no equivalent, and what is added:

* **uploads**: compose cannot copy a file into a container. Each rendered config file is written next to the
  compose file, under `<compose file stem>.files/<service>/<path in the container>`, and bind-mounted read-only
  at that path (`upload_source`). The spec's config-hash label changes with the file's content, so a changed
  file changes the service and `docker-compose up` replaces its container, as `pulumi up` does. (The CLI
  leaves an unchanged file alone and replaces a changed one by rename: a running container keeps what it read.)
* **secrets**: their values never enter the file. Each secret environment variable is a `${VARIABLE:?...}`
  reference to the shell environment of `docker-compose up`, one variable per secret key (`secret_variable`:
  the names the smoke suite reads too); compose refuses to start when one is unset.
* **images** are referred to by tag (Pulumi pins the image id it pulled).
* **outputs**: the CLI writes the Deployment's outputs, what `pulumi stack output --json` would print, to
  `<stem>.outputs.json`, so the smoke suite (`tests/smoke --targets`) checks a compose deployment like a Pulumi one.
* **start order**: a service waits for those it comes `after` to be healthy (`depends_on: condition:
  service_healthy`), where Pulumi waits for every container to be healthy (`wait`) and creates it after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from models.config import GpuConfig, StackConfig
from stack.deployment import Deployment
from stack.render.containers import ContainerSpec, NetworkSpec, UploadSpec, go_duration
from stack.render.litellm import LITELLM_MASTER_KEY_ENV, cloud_key_env
from stack.render.llama_swap import LLAMA_SWAP_API_KEY_ENV
from stack.render.yaml_text import dump_yaml

SECRET_VARIABLES = {"api_key": LLAMA_SWAP_API_KEY_ENV, "litellm_master_key": LITELLM_MASTER_KEY_ENV}
"""Secret config key → the shell variable compose reads its value from (cloud keys: `cloud_key_env`)."""

NVIDIA_DRIVER = "nvidia"
GPU_CAPABILITIES = ["gpu"]


def with_cpu_profile(cfg: StackConfig) -> StackConfig:
    """`cfg` on the `cpu` GPU profile (`compose --cpu`): no GPU request, `-ngl 0`, no VRAM gate; all else equal."""
    return cfg.model_copy(update={"gpu": GpuConfig(profile="cpu", device=cfg.gpu.device)})


def secret_variable(secret_key: str) -> str:
    """The shell variable that holds a secret config key's value when the compose file is run."""
    return SECRET_VARIABLES.get(secret_key) or cloud_key_env(secret_key)


def escape(value: str) -> str:
    """A literal string for a compose file: compose interpolates `$NAME`/`${NAME}` everywhere, `$$` is a `$`.

    Every value of ours goes through it (the validation already keeps `$` out of paths and image names), so a `$`
    can only reach compose's interpolation through the `${VARIABLE:?...}` secret references."""
    return value.replace("$", "$$")


def _secret_reference(secret_key: str) -> str:
    variable = secret_variable(secret_key)
    return f"${{{variable}:?set {variable} to the {secret_key} secret}}"


def upload_source(spec: ContainerSpec, upload: UploadSpec, files_dir: str) -> str:
    """Where an uploaded file lives on the host, relative to the compose file's directory.

    `files_dir` is the directory next to the compose file that holds every service's files; the container path
    is kept below the service's directory, so two services may upload the same path.
    """
    inside = PurePosixPath(upload.path)
    if not inside.is_absolute() or ".." in inside.parts:
        raise ValueError(f"{spec.service}: upload path {upload.path!r} must be absolute and without '..'")
    return f"./{PurePosixPath(files_dir, spec.service, *inside.parts[1:])}"


def _port(host_ip: str, external: int, internal: int, protocol: str) -> str:
    host = f"[{host_ip}]" if ":" in host_ip else host_ip
    return f"{host}:{external}:{internal}/{protocol}"


def _gpu_devices(device: str) -> list[dict[str, Any]]:
    """`gpu.device` (`all` or `device=<id>`, docker's `--gpus` syntax as Pulumi passes it) as a device request."""
    request: dict[str, Any] = {"driver": NVIDIA_DRIVER}
    if device == "all":
        request["count"] = "all"
    elif device.startswith("device="):
        request["device_ids"] = device.removeprefix("device=").split(",")
    else:
        raise ValueError(f"unsupported GPU device {device!r}; expected 'all' or 'device=<id>'")
    request["capabilities"] = list(GPU_CAPABILITIES)
    return [request]


def compose_service(spec: ContainerSpec, files_dir: str) -> dict[str, Any]:
    """One compose service with everything `container_args` gives pulumi-docker, in compose's terms.

    `files_dir`: the directory (relative to the compose file) the uploads are written to; see `compose_files`.
    """
    hc = spec.healthcheck
    env: dict[str, str] = {name: escape(value) for name, value in spec.env.items()}
    env |= {name: _secret_reference(key) for name, key in spec.secret_env.items()}
    service: dict[str, Any] = {
        "container_name": escape(spec.name),
        "image": escape(spec.image),
    }
    if spec.entrypoint:
        service["entrypoint"] = [escape(a) for a in spec.entrypoint]
    if spec.command:
        service["command"] = [escape(a) for a in spec.command]
    service["environment"] = dict(sorted(env.items()))
    service["ports"] = [_port(p.host_ip, p.external, p.internal, p.protocol) for p in spec.ports]
    volumes = [
        {"type": "bind", "source": escape(m.source), "target": escape(m.target), "read_only": m.read_only}
        for m in spec.mounts
    ]
    volumes += [
        {"type": "bind", "source": escape(upload_source(spec, u, files_dir)), "target": escape(u.path),
         "read_only": True}
        for u in spec.uploads
    ]
    if volumes:
        service["volumes"] = volumes
    service["networks"] = {n.network: {"aliases": [escape(a) for a in n.aliases]} for n in spec.networks}
    service["healthcheck"] = {
        "test": [escape(a) for a in hc.test],
        "interval": go_duration(hc.interval_s),
        "timeout": go_duration(hc.timeout_s),
        "retries": hc.retries,
        "start_period": go_duration(hc.start_period_s),
    }
    service["labels"] = {k: escape(v) for k, v in spec.labels.items()}
    service["restart"] = spec.restart
    service["logging"] = {"driver": spec.log_driver, "options": dict(spec.log_opts)}
    service["stop_grace_period"] = go_duration(spec.stop_timeout_s)
    if spec.gpu:
        service["deploy"] = {"resources": {"reservations": {"devices": _gpu_devices(spec.gpu_device)}}}
    return service


def compose_network(spec: NetworkSpec) -> dict[str, Any]:
    """The stack's network under its own name (not `<project>_<key>`), as Pulumi creates it."""
    return {"name": escape(spec.name), "driver": spec.driver, "labels": {k: escape(v) for k, v in spec.labels.items()}}


def compose_project(deployment: Deployment, files_dir: str) -> dict[str, Any]:
    """The whole compose document: every service, started after the healthy services it comes `after`, and the
    network."""
    network = deployment.network
    services: dict[str, Any] = {}
    for svc in deployment.services:
        unknown = [n.network for n in svc.spec.networks if n.network != network.name]
        if unknown:
            raise ValueError(f"{svc.key}: attached to networks {unknown} the stack does not declare")
        service = compose_service(svc.spec, files_dir)
        if svc.after:
            service["depends_on"] = {name: {"condition": "service_healthy"} for name in svc.after}
        services[svc.key] = service
    return {"services": services, "networks": {network.name: compose_network(network)}}


@dataclass(frozen=True)
class ComposeFile:
    """What `python -m stack compose` writes: the compose text, and the upload files relative to its directory."""

    text: str
    files_dir: str
    files: dict[str, str]
    """Relative path (as in the compose file, without `./`) → content."""

    secret_variables: tuple[str, ...]
    """Shell variables `docker-compose up` needs, sorted."""


def compose_files(specs: Iterable[ContainerSpec], files_dir: str) -> dict[str, str]:
    """Relative host path → content of every upload, at the paths `compose_service` mounts."""
    out: dict[str, str] = {}
    for spec in specs:
        for upload in spec.uploads:
            out[upload_source(spec, upload, files_dir).removeprefix("./")] = upload.content
    return out


def files_stem(compose_name: str) -> str:
    """`docker-compose.yml` → `docker-compose`: the prefix of the files written beside the compose file."""
    return PurePosixPath(compose_name).name.rsplit(".", 1)[0] or "compose"


def files_dir_for(compose_name: str) -> str:
    """`docker-compose.yml` → `docker-compose.files`: the uploads' directory, next to the compose file."""
    return f"{files_stem(compose_name)}.files"


def secret_variables_of(specs: Iterable[ContainerSpec]) -> dict[str, str]:
    """Shell variable → the secret config key it carries, for every secret the specs use; one key per variable."""
    out: dict[str, str] = {}
    for spec in specs:
        for key in spec.secret_env.values():
            variable = secret_variable(key)
            if out.setdefault(variable, key) != key:
                raise ValueError(f"secrets {out[variable]!r} and {key!r} would both be read from ${variable}")
    return out


def render_compose(deployment: Deployment, compose_name: str, *, header: str = "") -> ComposeFile:
    """The compose file named `compose_name` (its text, with `header` as a comment) and the files beside it."""
    specs = deployment.specs
    files_dir = files_dir_for(compose_name)
    doc = compose_project(deployment, files_dir)
    variables = sorted(secret_variables_of(specs))
    lines = [
        "Generated by `python -m stack compose` from the stack's container specs; do not edit, regenerate.",
        f"Config files the containers read are in {files_dir}/ next to this file (bind-mounted read-only).",
    ]
    if variables:
        lines.append(f"Secrets come from the environment of docker-compose: {', '.join(variables)}.")
    if header:
        lines.append(header)
    return ComposeFile(dump_yaml(doc, "\n".join(lines)), files_dir, compose_files(specs, files_dir), tuple(variables))
