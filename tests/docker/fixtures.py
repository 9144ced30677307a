"""Session fixtures for tests that need a Docker engine and the local images.

tests/docker/conftest.py imports them; another test package can do the same (or list this module in the root
conftest's `pytest_plugins`).

Outside CI a machine without Docker (not root, no daemon, no docker.io) skips these tests with the reason; in CI
(`CI` set) the same situation fails them, so a broken engine set-up cannot pass as green.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.docker import support


def missing(reason: str) -> NoReturn:
    """Something the test needs is not on this machine: a failure under CI, a skip elsewhere."""
    if support.in_ci():
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(f"{reason} (not in CI, so skipping; CI fails instead)")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """A Docker daemon that answers. One this fixture started is stopped at the end unless LLS_DOCKER_KEEP=1."""
    try:
        started = support.ensure_engine()
    except support.DockerUnavailable as exc:
        missing(f"no Docker engine could be started: {exc}")
    yield
    if started and os.environ.get("LLS_DOCKER_KEEP") != "1":
        support.stop_engine()


@pytest.fixture(scope="session")
def compose_cli(docker_engine: None) -> str:
    """Path of `docker-compose` (Debian's 1.29, installed by engine.sh start); skipped/failed like docker_engine."""
    try:
        return support.ensure_compose()
    except support.DockerUnavailable as exc:
        missing(str(exc))


@pytest.fixture(scope="session")
def local_images(docker_engine: None) -> dict[str, str]:
    """KEY → reference of the local images (scripts/docker/build-images.sh; cached between runs)."""
    try:
        return support.build_local_images()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def image_of(local_images: dict[str, str], key: str) -> str:
    """The local image `key` (e.g. `support.LLAMA_SWAP`). A llama-swap image is missing only when its binary is:
    skipped outside CI, failed under CI; any other missing image is a failure of build-images.sh."""
    if key in local_images:
        return local_images[key]
    if key == support.LLAMA_SWAP:
        from tests.harness import binaries

        try:
            found = binaries.llama_swap()
        except binaries.MissingBinaryError as exc:
            missing(f"no local llama-swap image, the binary is missing: {exc}")
        pytest.fail(f"llama-swap is installed ({found}) but build-images.sh built no image of it: {local_images}",
                    pytrace=False)
    pytest.fail(f"build-images.sh did not report {key}: {local_images}", pytrace=False)
