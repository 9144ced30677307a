"""The Pulumi program: read the stack config, refuse what is invalid or does not fit, then deploy.

Validation and sizing happen before the first resource is registered, so a refused config changes
nothing on the host. It goes through `models.load.parse_stack_config` and `stack.plan.build_plan`, the
same gate as `python -m stack plan`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from models.config import StackConfig
from models.load import ConfigError, docker_settings, parse_stack_config
from stack.components import LocalLlmStack
from stack.download_specs import download_specs
from stack.errors import internal_error_message, show_traceback
from stack.header_sources import header_source_for
from stack.outputs import auth_outputs, embedding_dimension, model_outputs
from stack.plan import Plan, build_plan
from stack.remote_headers import pending_downloads, token_from_env, with_sources
from stack.report import render_text

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


def needed_secrets(cfg: StackConfig, secret_keys: frozenset[str]) -> list[str]:
    """Secret keys the deployed containers use: `api_key` when set, LiteLLM's keys when it is enabled."""
    keys = ["api_key"] if "api_key" in secret_keys else []
    if cfg.litellm.enabled:
        keys += ["litellm_master_key", *cfg.cloud_secret_keys()]
    return keys


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


def _export_name(service: str) -> str:
    return service.replace("-", "_")


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
    plan = load_checked_plan(raw, secret_keys)
    cfg = plan.config
    config = pulumi.Config()
    secrets = {key: config.require_secret(key) for key in needed_secrets(cfg, secret_keys)}
    docker = pulumi.Config("docker")
    host, ssh_opts = docker_settings(docker.get("host"), _ssh_opts(docker))
    stack = LocalLlmStack(STACK_RESOURCE_NAME, cfg, secrets, docker_host=host, ssh_opts=ssh_opts,
                          hf_token=_download_token(secret_keys))
    pulumi.export("endpoints", stack.endpoints)
    for service, url in stack.endpoints.items():
        pulumi.export(f"{_export_name(service)}_url", url)
    pulumi.export("container_names", stack.container_names)
    # What the smoke suite (tests/smoke) expects each service to answer to, and where a key is required.
    pulumi.export("models", model_outputs(cfg, embedding_dimension(plan)))
    pulumi.export("auth_required", auth_outputs(cfg, api_key_enabled="api_key" in secrets))
    pulumi.export("sizing", plan.to_json())
