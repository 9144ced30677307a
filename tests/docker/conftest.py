"""Fixtures for the Docker tests: see tests/docker/fixtures.py."""

from tests.docker.fixtures import docker_engine, local_images

__all__ = ["docker_engine", "local_images"]
