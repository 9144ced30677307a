"""Session fixtures for tests that need a Docker engine and the local images.

tests/docker/conftest.py imports them; another test package can do the same (or list this module in the root
conftest's `pytest_plugins`).

Outside CI a machine without Docker (not root, no daemon, no docker.io) skips these tests with the reason; in CI
(`CI` set) the same situation fails them, so a broken engine set-up cannot pass as green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.docker import support


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """A Docker daemon that answers. One this fixture started is stopped at the end unless LLS_DOCKER_KEEP=1."""
    try:
        started = support.ensure_engine()
    except support.DockerUnavailable as exc:
        if support.in_ci():
            pytest.fail(f"CI: no Docker engine could be started: {exc}", pytrace=False)
        pytest.skip(f"no Docker engine (not in CI, so skipping; CI fails instead): {exc}")
    yield
    if started and os.environ.get("LLS_DOCKER_KEEP") != "1":
        support.stop_engine()


@pytest.fixture(scope="session")
def compose_cli(docker_engine: None) -> str:
    """Path of `docker-compose` (Debian's 1.29, installed by engine.sh start); skipped/failed like docker_engine."""
    try:
        return support.ensure_compose()
    except support.DockerUnavailable as exc:
        if support.in_ci():
            pytest.fail(f"CI: {exc}", pytrace=False)
        pytest.skip(f"not in CI, so skipping: {exc}")


@pytest.fixture(scope="session")
def local_images(docker_engine: None) -> dict[str, str]:
    """KEY → reference of the local images (scripts/docker/build-images.sh; cached between runs)."""
    try:
        return support.build_local_images()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
