"""The Docker engine and local images of tests/docker serve the Pulumi deploy tests too."""

from tests.docker.fixtures import docker_engine, local_images

__all__ = ["docker_engine", "local_images"]
