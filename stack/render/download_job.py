"""The download job as both targets run it: the image's entrypoint, the `LLS_FETCH_JOB` JSON and the job's files.

`stack.fetch.job` is standard-library only, so any Python 3.11+ image (`images.downloader`) runs it once its
modules sit under `JOB_ROOT`: the Docker target copies them into its one-shot container, the Kubernetes target
mounts them from a ConfigMap into an init container. Both build the job here, so what a file's download does is
written once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

JOB_MODULES = ("__init__.py", "errors.py", "fetch/__init__.py", "fetch/remote_part.py", "fetch/http_client.py",
               "fetch/fetcher.py", "fetch/job.py")
"""What the container needs of this package: the standard-library-only downloader."""
JOB_ROOT = "opt/local-llm-stack"
BOOT = ("import sys; sys.path.insert(0, '/opt/local-llm-stack'); from stack.fetch.job import main; "
        "sys.exit(main())")
ENTRYPOINT = ("python3", "-I", "-c", BOOT)
PROGRESS_INTERVAL_S = 15.0


def job_files() -> dict[str, bytes]:
    """Path under the container's root → content, for every module the job imports."""
    here = Path(__file__).resolve().parents[1]
    return {f"{JOB_ROOT}/stack/{name}": (here / name).read_bytes() for name in JOB_MODULES}


def fetch_job(mode: str, models_dir: str, parts: Sequence[dict[str, Any]], *, timeout_s: int,
              token_origin: Sequence[Any] | None, owner: str | None) -> dict[str, Any]:
    """The job `stack.fetch.job.main` reads: fetch (or, `mode: delete`, remove) `parts` under `models_dir`."""
    return {
        "mode": mode,
        "models_dir": models_dir,
        "parts": list(parts),
        "timeout_s": timeout_s,
        "token_origin": token_origin,
        "progress_interval_s": PROGRESS_INTERVAL_S,
        "owner": owner,
    }


def job_json(job: dict[str, Any]) -> str:
    """The value of `LLS_FETCH_JOB`: stable (sorted keys), so an unchanged job never changes a pod template."""
    return json.dumps(job, sort_keys=True)
