"""Smoke suite for a deployed stack (pytest-testinfra): what `pulumi up` deployed really serves.

Run it after `pulumi up`, from the repository root::

    pulumi stack output --json > outputs.json
    LITELLM_MASTER_KEY=... LLAMA_SWAP_API_KEY=... pytest tests/smoke --hosts=ssh://user@gpu-box --targets=outputs.json

Two kinds of checks, with one choice made for all of them:

* **host checks** go through testinfra's `host` (`--hosts=ssh://user@gpu-box`, or `local://` on the GPU host
  itself): containers running with their restart policy, labels and read-only `/models` mount
  (`host.docker`, collected only when the targets name containers and every host has a working `docker`),
  and each published port listening (`host.socket`);
* **HTTP checks** go from the machine running pytest straight to the endpoint URLs of the targets, so keys stay
  in request headers (never on a command line of the host) and answers are parsed and validated in Python.
  The URLs are as seen from the Docker host: with ports on its 127.0.0.1 (the default `bind_address`), open an
  ssh tunnel with the same port numbers first, or run pytest on the host; `--endpoint-host` replaces the host
  of every URL (e.g. ports bound to 0.0.0.0).

Keys are read from the variables the containers use: `LITELLM_MASTER_KEY` (`pulumi config get
litellm_master_key`) and `LLAMA_SWAP_API_KEY` (`pulumi config get api_key`, also the embedding server's key).

Checks that do not apply to a deployment are not collected: `test_llama_swap.py` needs a llama-swap endpoint,
`test_litellm.py` a LiteLLM one, `test_containers.py` container names and Docker; a parametrized check with
nothing to check (e.g. the swap check with one model) is deselected with its reason in the summary.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra

from tests.smoke.client import Service
from tests.smoke.options import SMOKE_DIR
from tests.smoke.targets import EMBEDDINGS, LITELLM, LLAMA_SWAP, Targets, TargetsError, load_targets, rewrite_host

TARGETS_KEY = pytest.StashKey[Targets]()
NOT_APPLICABLE = "not_applicable"

HEALTH_PATHS = {LLAMA_SWAP: "/health", EMBEDDINGS: "/health", LITELLM: "/health/liveliness"}
"""Liveness paths; LiteLLM's `/health` would call every model (swapping each into the GPU), so never that."""

KEY_ENV = {LLAMA_SWAP: "LLAMA_SWAP_API_KEY", EMBEDDINGS: "LLAMA_SWAP_API_KEY", LITELLM: "LITELLM_MASTER_KEY"}
KEY_SOURCE = {
    "LLAMA_SWAP_API_KEY": "pulumi config get api_key",
    "LITELLM_MASTER_KEY": "pulumi config get litellm_master_key",
}


# ---------------------------------------------------------------------------------------------------------
# configuration and collection
# ---------------------------------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{NOT_APPLICABLE}(reason): nothing of this kind in the deployment")
    path = config.getoption("smoke_targets")
    if not path:
        # Beside other test paths the suite is just not collected (tests/conftest.py); alone, say why.
        if all(_in_smoke_dir(Path(arg.split("::", 1)[0])) for arg in config.args):
            raise pytest.UsageError(NEEDS_TARGETS)
        return
    try:
        config.stash[TARGETS_KEY] = load_targets(path)
    except TargetsError as exc:
        raise pytest.UsageError(str(exc)) from None


NEEDS_TARGETS = "tests/smoke needs --targets FILE: `pulumi stack output --json > outputs.json` after `pulumi up`"


def _in_smoke_dir(path: Path) -> bool:
    path = path.resolve()
    return path == SMOKE_DIR or SMOKE_DIR in path.parents


def _hosts_have_docker(config: pytest.Config) -> bool:
    """Whether `docker` works on every `--hosts` host (the docker module of testinfra runs the CLI there)."""
    specs = config.option.hosts.split(",") if config.option.hosts else [None]
    hosts = testinfra.get_hosts(
        specs,
        connection=config.option.connection,
        ssh_config=config.option.ssh_config,
        ssh_identity_file=config.option.ssh_identity_file,
        sudo=config.option.sudo,
        sudo_user=config.option.sudo_user,
        ansible_inventory=config.option.ansible_inventory,
        force_ansible=config.option.force_ansible,
    )
    return all(h.run("docker version --format '{{.Server.Version}}'").rc == 0 for h in hosts)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    targets = config.stash.get(TARGETS_KEY, None)
    if targets is None:  # tests/smoke named beside other paths, without --targets
        return True
    name = collection_path.name
    if name == "test_llama_swap.py":
        return LLAMA_SWAP not in targets.endpoints or None
    if name == "test_litellm.py":
        return LITELLM not in targets.endpoints or None
    if name == "test_containers.py":
        return not (targets.container_names and _hosts_have_docker(config)) or None
    return None


@dataclass(frozen=True)
class Route:
    """Where a request goes: the service it is sent to and the model name in its body."""

    service: str
    model: str
    model_id: str | None = None
    """The llama-swap model id behind `model` (None for the embedding server)."""

    def __str__(self) -> str:
        return f"{self.service}:{self.model}"


def _first(items: list[str]) -> list[str]:
    return items[:1]


def _swap_pairs(t: Targets) -> list[tuple[str, str]]:
    """One pair of models to swap between, preferring two the sizing never lets coexist (a real eviction)."""
    ids = list(t.models)
    pairs = [(a, b) for a in ids for b in ids if a < b]
    evicting = [p for p in pairs if not t.may_coexist(*p)]
    return (evicting or pairs)[:1]


def _matrix_orders(t: Targets) -> list[tuple[str, ...]]:
    """One request order for a matrix stack: every model id up, then back down (`a b c b a`), so each model is
    requested once with others loaded and the sets the sizing chose decide what stays."""
    ids = sorted(t.models)
    if t.matrix is None or len(ids) < 2:
        return []
    return [(*ids, *reversed(ids[:-1]))]


def _routes(t: Targets) -> dict[str, list[Any]]:
    """Every parameter list of the suite, from the targets."""
    ids = list(t.models)
    tool_ids = [m.id for m in t.models.values() if m.tools]
    swap = LLAMA_SWAP in t.endpoints
    lite = LITELLM in t.endpoints

    def via(service_ids: list[str], lite_ids: list[str]) -> list[Route]:
        out = [Route(LLAMA_SWAP, m, m) for m in service_ids] if swap else []
        out += [Route(LITELLM, m, m) for m in lite_ids] if lite else []
        return out

    emb_routes: list[Route] = []
    if t.embedding is not None:
        if EMBEDDINGS in t.endpoints:
            emb_routes.append(Route(EMBEDDINGS, t.embedding.name))
        if swap:  # llama-swap forwards each embedding name to its peer, the plain one and the one it lists
            emb_routes += [Route(LLAMA_SWAP, n) for n in (*t.embedding.names, *t.embedding.llama_swap_ids)]
        if lite and t.litellm is not None:
            emb_routes += [Route(LITELLM, n) for n in t.litellm.embedding]
    return {
        "health_service": list(t.endpoints),
        "published_service": list(t.endpoints),
        "keyed_service": [s for s in t.endpoints if t.auth_required.get(s)],
        "chat_route": via(ids, _first(ids)),
        "feature_route": via(_first(ids), _first(ids)),
        "tool_route": via(_first(tool_ids), _first(tool_ids)),
        "embedding_route": emb_routes,
        "litellm_chat_name": list(t.litellm.chat) if lite and t.litellm else [],
        "swap_pair": _swap_pairs(t) if swap else [],
        "matrix_request_order": _matrix_orders(t) if swap else [],
        "container_service": list(t.container_names),
        "models_mount_service": [s for s in t.container_names if s in (LLAMA_SWAP, EMBEDDINGS)],
    }


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if TARGETS_KEY not in metafunc.config.stash:
        return
    routes = _routes(metafunc.config.stash[TARGETS_KEY])
    for name, values in routes.items():
        if name not in metafunc.fixturenames:
            continue
        if values:
            metafunc.parametrize(name, values, ids=[str(v) if not isinstance(v, tuple) else "-".join(v)
                                                    for v in values])
        else:
            reason = f"the deployment has no {name.replace('_', ' ')} to check"
            metafunc.parametrize(name, [pytest.param(None, marks=pytest.mark.not_applicable(reason), id="none")])


_DROPPED = pytest.StashKey[list[str]]()


def _reason(item: pytest.Item) -> str:
    marker = item.get_closest_marker(NOT_APPLICABLE)
    return str(marker.args[0]) if marker is not None and marker.args else "not applicable"


MODULE_ORDER = ("test_services", "test_containers", "test_embeddings", "test_chat", "test_litellm", "test_llama_swap")
"""Liveness first (it waits for services still loading), then what builds on it; swaps last."""


def _module_rank(item: pytest.Item) -> int:
    name = item.path.stem
    return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the smoke checks, and drop those that have nothing to check (a skip would read as a gap in CI).

    This hook sees every collected item, not only this directory's: other tests keep their order, first."""
    others = [i for i in items if not _in_smoke_dir(i.path)]
    smoke = sorted((i for i in items if _in_smoke_dir(i.path)), key=_module_rank)
    dropped = [i for i in smoke if i.get_closest_marker(NOT_APPLICABLE)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        config.stash[_DROPPED] = [f"{i.nodeid}: {_reason(i)}" for i in dropped]
    items[:] = others + [i for i in smoke if not i.get_closest_marker(NOT_APPLICABLE)]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if TARGETS_KEY not in config.stash:
        terminalreporter.write_line(f"tests/smoke not collected: {NEEDS_TARGETS}")
    for line in config.stash.get(_DROPPED, []):
        terminalreporter.write_line(f"not applicable: {line}")


# ---------------------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def targets(pytestconfig: pytest.Config) -> Targets:
    return pytestconfig.stash[TARGETS_KEY]


@dataclass(frozen=True)
class Deployment:
    """The deployed services as HTTP clients, and what the targets say about them."""

    targets: Targets
    endpoint_host: str | None
    request_timeout: float
    ready_timeout: float
    tool_call_logit_bias: dict[str, dict[str, float]]

    def service(self, key: str, *, need_key: bool = True) -> Service:
        """`llama-swap`, `embeddings` or `litellm`.

        Fails, naming the variable to export, when the deployment requires a key that is not in the environment
        (`need_key=False` for public paths such as `/health`).
        """
        if key not in self.targets.endpoints:
            raise AssertionError(f"{key}: not in the targets' endpoints {sorted(self.targets.endpoints)}")
        url = rewrite_host(self.targets.endpoints[key], self.endpoint_host)
        token = None
        if self.targets.auth_required.get(key):
            env = KEY_ENV[key]
            token = os.environ.get(env)
            if not token and need_key:
                raise AssertionError(
                    f"{key} ({url}): the deployment requires a key; export {env}=\"$({KEY_SOURCE[env]})\""
                )
        return Service(key, url, key=token, timeout=self.request_timeout)

    def health_path(self, key: str) -> str:
        return HEALTH_PATHS[key]


@pytest.fixture(scope="session")
def deployment(pytestconfig: pytest.Config, targets: Targets) -> Deployment:
    bias = dict(targets.tool_call_logit_bias)
    if raw := pytestconfig.getoption("smoke_tool_call_logit_bias"):
        bias = {str(m): {str(t): float(b) for t, b in v.items()} for m, v in json.loads(raw).items()}
    return Deployment(
        targets=targets,
        endpoint_host=pytestconfig.getoption("smoke_endpoint_host"),
        request_timeout=pytestconfig.getoption("smoke_request_timeout"),
        ready_timeout=pytestconfig.getoption("smoke_ready_timeout"),
        tool_call_logit_bias=bias,
    )


@pytest.fixture(scope="session")
def expected_dimension(deployment: Deployment) -> int:
    """The embedding size the targets promise, or else the one the embedding server reports (`n_embd`)."""
    emb = deployment.targets.embedding
    assert emb is not None
    if emb.dimension is not None:
        return emb.dimension
    svc = deployment.service(EMBEDDINGS)
    models = svc.json("GET", "/v1/models")
    try:
        return int(models["data"][0]["meta"]["n_embd"])
    except (KeyError, IndexError, TypeError, ValueError):
        svc.fail(f"/v1/models has no data[0].meta.n_embd to learn the embedding size from: {str(models)[:300]}")

