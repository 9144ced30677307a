"""Fixtures for the Docker tests: see tests/docker/fixtures.py."""

from tests.docker.fixtures import compose_cli, docker_engine, local_images

__all__ = ["compose_cli", "docker_engine", "local_images"]
