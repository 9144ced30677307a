"""A docker-compose project that a Docker test creates from `python -m stack compose` output and always removes.

Everything goes through Debian's `docker-compose` (1.29) with an explicit project name (`-p`, unique per test
run) and file (`-f`); its environment is the test's minus any `COMPOSE_*` setting and any secret the stack
reads, plus the secrets the test chose. What the project leaves behind is looked up both by compose's project
label and by the stack's own names (containers `<network>-<service>`, the network), so a leak shows either way.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.docker.support import docker

PROJECT_LABEL = "com.docker.compose.project"
SECRET_VARIABLES = ("LLAMA_SWAP_API_KEY", "LITELLM_MASTER_KEY", "LLAMA_API_KEY", "OPENAI_API_KEY")


@dataclass
class ComposeProject:
    cli: str
    name: str
    file: Path
    network: str
    """The stack's network name, also the prefix of its container names."""
    secrets: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in SECRET_VARIABLES}
        return {**env, **self.secrets}

    def run(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [self.cli, "--ansi", "never", "-p", self.name, "-f", str(self.file), *args]
        proc = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"`docker-compose {' '.join(argv[3:])}` exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}{proc.stderr[-5000:]}"
            )
        return proc

    def container_id(self, container: str) -> str:
        return docker("inspect", "-f", "{{.Id}}", container).stdout.strip()

    def _ids(self, *args: str) -> set[str]:
        return {line for line in docker(*args, check=False).stdout.split() if line}

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project (by compose label or by the stack's names)."""
        label = f"label={PROJECT_LABEL}={self.name}"
        containers = self._ids("ps", "-aq", "--no-trunc", "--filter", label)
        containers |= self._ids("ps", "-aq", "--no-trunc", "--filter", f"name=^/?{self.network}-")
        networks = self._ids("network", "ls", "-q", "--filter", label)
        if docker("network", "inspect", self.network, check=False).returncode == 0:
            networks.add(self.network)
        volumes = self._ids("volume", "ls", "-q", "--filter", label)
        return {"containers": sorted(containers), "networks": sorted(networks), "volumes": sorted(volumes)}

    def mounted_volumes(self) -> set[str]:
        """Named and anonymous volumes the project's containers use (this stack's use only bind mounts)."""
        out: set[str] = set()
        for cid in self.leftovers()["containers"]:
            mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", cid).stdout) or []
            out |= {m["Name"] for m in mounts if m.get("Type") == "volume"}
        return out

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.run("down", "-v", "--remove-orphans", "--timeout", "10", check=False, timeout=180)

    def force_remove(self) -> None:
        """After `down`: remove whatever is still there, so a failed test leaks nothing."""
        left = self.leftovers()
        for cid in left["containers"]:
            docker("rm", "-f", "-v", cid, check=False, timeout=120)
        for net in left["networks"]:
            docker("network", "rm", net, check=False)
        for vol in left["volumes"]:
            docker("volume", "rm", "-f", vol, check=False)
