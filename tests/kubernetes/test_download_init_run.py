"""The download init container's exact command and environment, run for real as a local process.

No kubelet runs here (the control plane of conftest.py has no nodes), so no init container ever starts in these
tests. This is the closest real thing: the rendered init container's `command`, `workingDir` and `env` are run with
this machine's `python3` (the job is standard-library only), in a directory laid out as the pod's filesystem from
the rendered mounts: the `download-job` ConfigMap's items written where its volume is mounted, the models volume
where it is mounted (each mount path under a temporary root; the same rewrite turns the absolute paths in BOOT and
the job's `models_dir` into that root). `HF_TOKEN` is resolved as the kubelet would: the `secretKeyRef` to the
service's Secret, whose entry names the stack's `hf_token` secret. The source is a gated file on the nginx Hugging
Face mirror on 127.0.0.1 (bench/hf_mirror.py), so the file only lands if the token went to the hub and (the mirror
refuses it) not to storage.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.hf_mirror import TOKEN, HfMirror, HubFile, nginx_binary, running_mirror, sha256_of
from stack.deployment import build_deployment
from stack.gguf import writers as gm
from stack.render.containers import EMBEDDINGS
from stack.sizing.plan import build_plan
from stack.targets.kubernetes import build_manifests
from stack.targets.kubernetes.manifests import DOWNLOAD_JOB, Manifests
from tests.kubernetes.conftest import missing
from tests.unit.render_samples import ALL_SECRETS, config, raw

REPO, FILE = "org/embed-GGUF", "nomic-embed-text-v1.5.Q8_0.gguf"


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[HfMirror]:
    if nginx_binary() is None:
        missing("nginx is missing: run scripts/install-tools.sh (installs Debian's nginx)")
    emb, _ = gm.minilm_model()
    with running_mirror(tmp_path / "srv", [HubFile(REPO, "main", FILE, emb, gated=True)]) as m:
        yield m


def _manifests(mirror: HfMirror) -> Manifests:
    doc = raw(target="kubernetes", hf_endpoint=mirror.endpoint)
    doc["embeddings"]["source"] = {"repo": REPO, "revision": "main", "sha256": sha256_of(mirror.files[0].path)}
    doc["kubernetes"] = {"pools": {"gpu": {"gpu": {"profile": "rtx-4090"}}}}
    return build_manifests(build_deployment(build_plan(config(doc)), ALL_SECRETS | {"hf_token"}))


def _under(root: Path, text: str, mounts: list[dict[str, Any]]) -> str:
    for m in sorted(mounts, key=lambda m: -len(m["mountPath"])):
        text = text.replace(m["mountPath"], f"{root}{m['mountPath']}")
    return text


def test_the_init_container_command_downloads_and_verifies_the_file(mirror: HfMirror, tmp_path: Path) -> None:
    m = _manifests(mirror)
    pod = next(d for d in m.deployments if d["metadata"]["name"] == EMBEDDINGS)["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    root = tmp_path / "pod"
    mounts = init["volumeMounts"]
    job_mount = next(x for x in mounts if x["name"] == DOWNLOAD_JOB)["mountPath"]
    models_mount = next(x for x in mounts if x["name"] == "models")["mountPath"]
    (cm,) = [c for c in m.config_maps if c["metadata"]["name"] == DOWNLOAD_JOB]
    (volume,) = [v for v in pod["volumes"] if v["name"] == DOWNLOAD_JOB]
    for item in volume["configMap"]["items"]:
        target = root / job_mount.lstrip("/") / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(cm["data"][item["key"]])
    (root / models_mount.lstrip("/")).mkdir(parents=True)
    (secret,) = [s for s in m.secrets if s.service == EMBEDDINGS]
    secret_values = {"hf_token": TOKEN}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for e in init["env"]:
        if "value" in e:
            env[e["name"]] = _under(root, e["value"], mounts)
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret.name
            env[e["name"]] = secret_values[secret.entries[ref["key"]]]
    command = [_under(root, a, mounts) for a in init["command"]]
    assert command[:3] == ["python3", "-I", "-c"]
    proc = subprocess.run(command, env=env, cwd=root / init["workingDir"].lstrip("/"), capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"] is True, result
    (part,) = result["parts"]
    landed = root / models_mount.lstrip("/") / FILE
    assert part["action"] == "downloaded" and part["sha256"] == sha256_of(mirror.files[0].path) == sha256_of(landed)
    # imported from the ConfigMap's layout (BOOT's sys.path), not from this checkout
    assert list((root / job_mount.lstrip("/") / "stack" / "fetch").glob("__pycache__/job.*.pyc"))
    log = mirror.log()
    assert any(e.uri.startswith(f"/{REPO}/resolve/") and e.auth for e in log), log
    assert not any(e.uri.startswith("/blobs/") and e.auth for e in log), log
    # a second start of the pod (a restart, a roll) finds the file there and verified, and fetches no bytes again
    again = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["parts"][0]["action"] == (
        "present"), again.stderr[-2000:]
