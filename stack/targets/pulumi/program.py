"""The Pulumi program: read the stack config, refuse what is invalid or does not fit, then deploy.

Validation and sizing happen before the first resource is registered, so a refused config changes
nothing on the host. It goes through `models.load.parse_stack_config` and `stack.sizing.plan.build_plan`, the
same gate as `python -m stack plan`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from models.errors import ConfigError
from models.load import docker_settings, parse_stack_config
from stack.deployment import Deployment, build_deployment
from stack.errors import internal_error_message, show_traceback
from stack.gguf.remote import pending_downloads, token_from_env, with_sources
from stack.gguf.sources import header_source_for
from stack.render.downloads import download_specs
from stack.report import render_text
from stack.sizing.plan import Plan, build_plan
from stack.targets.pulumi import LocalLlmStack

STACK_RESOURCE_NAME = "local-llm-stack"
TOO_DEEP = "nested too deeply to be stack config; write it as README.md's config reference shows (a few levels)"


class StackRefused(pulumi.RunError):
    """Raised before any resource exists; Pulumi prints the message without a traceback."""


def _ssh_opts(docker: pulumi.Config) -> Any:
    """`docker:sshOpts` as the provider reads it (a JSON list); text that is no JSON is refused at the key."""
    try:
        return docker.get_object("sshOpts")
    except (pulumi.ConfigTypeError, RecursionError):
        raise ConfigError([("docker:sshOpts", "must be a list of strings, e.g. [-i, ~/.ssh/id_ed25519]")]) from None


def _decode(value: Any) -> Any:
    """Objects and lists arrive as JSON text; plain strings (paths, addresses) are kept as they are."""
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, dict | list) or decoded is None else value


def read_config(project: str) -> tuple[dict[str, Any], frozenset[str]]:
    """This project's plain config values and the names of its secret keys; secret values are not read here.

    The Python language host loads every key and the secret key list with `set_all_config`; the
    `PULUMI_CONFIG` environment is the fallback it reads them from.
    """
    entries: dict[str, Any] = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_names = set(runtime_config.get_config_secret_keys_env())
    raw: dict[str, Any] = {}
    secrets: set[str] = set()
    nested: list[tuple[str, str]] = []
    prefix = f"{project}:"
    for full_key, value in entries.items():
        if not full_key.startswith(prefix):
            continue
        key = full_key.removeprefix(prefix)
        if runtime_config.is_config_secret(full_key) or full_key in secret_names:
            secrets.add(key)
            continue
        try:
            raw[key] = _decode(value)
        except RecursionError:
            nested.append((key, TOO_DEEP))
    if nested:
        raise ConfigError(nested)
    return raw, frozenset(secrets)


def load_checked_plan(raw: Mapping[str, Any], secret_keys: frozenset[str]) -> Plan:
    """The sizing plan of the stack to deploy; raises `StackRefused` for an invalid or oversized stack.

    Its `config` is the one to deploy: with `groups: auto` it carries the matrix the sizing chose.
    """
    try:
        cfg = parse_stack_config(raw, secret_keys)
        docker = pulumi.Config("docker")
        host, ssh_opts = docker_settings(docker.get("host"), _ssh_opts(docker))
        if host is not None and not host.startswith(("unix://", "ssh://")) and download_specs(cfg):
            raise ConfigError([("docker:host", f"{host}: pulumi up downloads the models' sources on the Docker "
                                               "host over unix:// or ssh:// only; use one of them, or put the files "
                                               "in models_dir first (python -m stack fetch on the Docker host)")])
        headers = with_sources(cfg, header_source_for(cfg.models_dir, host, ssh_opts), token=_hf_token())
        plan = build_plan(cfg, headers)
    except ConfigError as exc:
        raise StackRefused(f"invalid stack config:\n{exc}") from None
    if not plan.fits:
        raise StackRefused(render_text(plan))
    for problem in getattr(headers, "problems", ()):
        pulumi.log.warn(f"{problem}; sized from the config or the catalog")
    if cfg.target == "kubernetes":
        for dl in download_specs(cfg):
            if dl.network_mode == "host":
                pulumi.log.warn(f"{dl.parts[0].key}: {dl.parts[0].url} is on loopback, which inside a pod is the "
                                "pod itself: its init container cannot download it; serve the mirror at an address "
                                f"the pods reach, or put {dl.file} in the models volume first")
    else:
        for pending in pending_downloads(headers):
            pulumi.log.info(pending)
    for warning in plan.warnings:
        pulumi.log.warn(warning)
    return plan


def _hf_token() -> str | None:
    """The `hf_token` secret's value, for the Authorization header of remote header reads only; else HF_TOKEN."""
    value = runtime_config.get_config(f"{pulumi.get_project()}:hf_token")
    return value if isinstance(value, str) and value else token_from_env()


def _download_token(secret_keys: frozenset[str]) -> pulumi.Output[str] | None:
    """The token the download containers get, as a secret: the `hf_token` secret, else `HF_TOKEN`, else none."""
    if "hf_token" in secret_keys:
        return pulumi.Config().require_secret("hf_token")
    env = token_from_env()
    return pulumi.Output.secret(env) if env else None


def main() -> None:
    """Refusals and internal errors alike end the program as a `RunError`: Pulumi prints the message, no traceback."""
    try:
        _deploy()
    except StackRefused:
        raise
    except ConfigError as exc:
        raise StackRefused(f"invalid stack config:\n{exc}") from None
    except Exception as exc:
        if show_traceback():
            raise
        raise StackRefused(internal_error_message(exc)) from None


def _deploy() -> None:
    project = pulumi.get_project()
    raw, secret_keys = read_config(project)
    deployment = build_deployment(load_checked_plan(raw, secret_keys), secret_keys)
    config = pulumi.Config()
    secrets = {key: config.require_secret(key) for key in deployment.secret_keys}
    if deployment.config.target == "kubernetes":
        _deploy_kubernetes(deployment, secrets)
        return
    docker = pulumi.Config("docker")
    host, ssh_opts = docker_settings(docker.get("host"), _ssh_opts(docker))
    stack = LocalLlmStack(STACK_RESOURCE_NAME, deployment, secrets, docker_host=host, ssh_opts=ssh_opts,
                          hf_token=_download_token(secret_keys))
    for key, value in deployment.outputs(stack.container_names).items():
        pulumi.export(key, value)


def _deploy_kubernetes(deployment: Deployment, secrets: Mapping[str, pulumi.Output[str]]) -> None:
    """The kubernetes target; the outputs carry in-cluster URLs (`http://<service>.<namespace>.svc.cluster.local`).
    Imported here so that docker stacks never load pulumi-kubernetes."""
    from stack.targets.kubernetes import outputs
    from stack.targets.kubernetes.component import KubernetesStack

    KubernetesStack(STACK_RESOURCE_NAME, deployment, secrets)
    for key, value in outputs(deployment).items():
        pulumi.export(key, value)
