"""`ModelDownload`: one declared model file put in models_dir on the Docker host during `pulumi up`.

A Pulumi dynamic resource whose provider runs the download job (`stack.fetch.job`, the same downloader as `python
-m stack fetch`) in a one-shot container on the Docker host: the models directory mounted read-write, the job's
modules copied in (`stack.render.download_job` builds the job, as for the Kubernetes target's init containers),
`HF_TOKEN` in its environment when there is a token. The provider follows the container's
output while it runs and prints it, which Pulumi shows live under the stack and keeps in the update's diagnostics:
a line per tenth of each file (and at least every 15 s), then the result. pulumi-docker's `Container` with
`attach` shows nothing until the container has exited and does not fail on a non-zero exit code, hence this.

A failed download does not fail this resource (a Python dynamic provider's error carries its traceback): it is
recorded with `ok: false` and its message, the containers that load the file fail with that message instead
(`checked_models_digest`), and the next `up` retries it (its diff says replace), resuming the partial file. The
diff looks at where the file lands and where it comes from only, so a second `up` downloads nothing; the token,
image and timeouts are not part of what the file is. Deleting the resource (`pulumi destroy`, a changed source)
keeps the file unless `downloads.delete_on_destroy` is set, and says so; even then only while the file's download
record names this resource (each `create` claims the files it verified), so the old resource of a changed source,
deleted after its replacement was created, never removes what the replacement placed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider, UpdateResult

from stack.errors import TRACEBACK_ENV, internal_error_message, show_traceback
from stack.gguf.sources import ssh_target
from stack.render.containers import LABEL_PREFIX, SERVICE_LABEL
from stack.render.download_job import BOOT as BOOT
from stack.render.download_job import ENTRYPOINT, fetch_job, job_json
from stack.render.download_job import JOB_ROOT as JOB_ROOT
from stack.render.download_job import job_files as job_files
from stack.render.downloads import CONTAINER_MODELS_DIR, DownloadSpec, identity, models_digest
from stack.targets.pulumi.docker_engine import STDOUT, Engine, EngineError, endpoint_for

REPLACE_KEYS = ("docker_host", "models_dir", "file")
UPDATE_KEYS = ("delete_on_destroy", "image", "ssh_opts", "network_mode", "stall_timeout_s", "container_name",
               "token_origin", "key")
RESULT_KEYS = ("ok", "error", "sha256", "downloaded_bytes", "actions", "owner")
_TAIL = 12


def _ssh_argv(props: dict[str, Any]) -> list[str]:
    target = ssh_target(props.get("docker_host"), props.get("ssh_opts") or [])
    return target.argv("docker system dial-stdio") if target is not None else []


def container_config(props: dict[str, Any], mode: str) -> dict[str, Any]:
    """The one-shot container of a download (or, `mode: delete`, of a removal); the token only in `Env`."""
    job = fetch_job(mode, CONTAINER_MODELS_DIR, props["parts"], timeout_s=props.get("stall_timeout_s", 30),
                    token_origin=props.get("token_origin"), owner=props.get("owner"))
    env = [f"LLS_FETCH_JOB={job_json(job)}"]
    if props.get("token") and mode == "fetch":
        env.append(f"HF_TOKEN={props['token']}")
    if show_traceback():
        env.append(f"{TRACEBACK_ENV}=1")
    return {
        "Image": props["image"],
        "Entrypoint": list(ENTRYPOINT),
        "Env": env,
        "User": "0:0",
        "WorkingDir": "/",
        "Labels": {SERVICE_LABEL: "download", f"{LABEL_PREFIX}.file": props["file"]},
        "HostConfig": {
            "Binds": [f"{props['models_dir']}:{CONTAINER_MODELS_DIR}"],
            "NetworkMode": props.get("network_mode") or "bridge",
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "1"}},
        },
    }


def run_job(props: dict[str, Any], mode: str, echo: Any = None) -> dict[str, Any]:
    """Run the job container to its end, printing its progress lines as they come; its result as a dict.

    A leftover container of the same name (an `up` interrupted mid-download) is removed first: the job resumes
    from the partial file it left."""
    out = echo or sys.stderr
    engine = Engine(endpoint_for(props.get("docker_host"), _ssh_argv(props)))
    name = props["container_name"]
    engine.remove(name)
    cid = engine.create(name, container_config(props, mode))
    result: dict[str, Any] | None = None
    tail: list[str] = []
    try:
        engine.put_files(cid, job_files())
        engine.start(cid)
        for stream, line in engine.follow(cid):
            if stream == STDOUT and line.startswith("{"):
                try:
                    result = json.loads(line)
                    continue
                except ValueError:
                    pass
            print(line, file=out, flush=True)
            tail = [*tail[-(_TAIL - 1):], line]
        code = engine.wait(cid)
    finally:
        engine.remove(cid)
    if result is None:
        shown = "\n".join(tail) or "(no output)"
        return {"ok": False, "key": None, "message": f"the download container exited with code {code} and no "
                                                     f"result; its last lines:\n{shown}"}
    return result


def _outcome(props: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    parts = result.get("parts") or []
    # No null outputs: in a preview, Pulumi reads an output missing from the state as unknown, and the containers'
    # label that depends on it would then show a change on every preview.
    if not result.get("ok"):
        key = result.get("key") or props.get("key")
        return {"ok": False, "error": f"{key}: {result.get('message')}", "sha256": [], "downloaded_bytes": 0,
                "actions": [p.get("action") for p in parts]}
    return {"ok": True, "error": "", "sha256": [p.get("sha256") or "" for p in parts],
            "downloaded_bytes": sum(int(p.get("bytes") or 0) for p in parts),
            "actions": [p.get("action") for p in parts]}


def _public(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != "token"}


def _download(props: dict[str, Any]) -> dict[str, Any]:
    try:
        result = run_job(props, "fetch")
    except EngineError as exc:
        result = {"ok": False, "message": f"{exc}; nothing was placed"}
    except Exception as exc:
        if show_traceback():
            raise
        result = {"ok": False, "message": internal_error_message(exc)}
    return {**_public(props), **_outcome(props, result)}


class ModelDownloadProvider(ResourceProvider):
    """Runs the download in `create`; `delete` keeps the file unless `delete_on_destroy`. See the module docstring."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        ident = json.dumps([props.get("docker_host"), props["models_dir"], identity(props["parts"])])
        owner = f"{props['file']}@{hashlib.sha256(ident.encode()).hexdigest()[:16]}.{uuid.uuid4().hex[:12]}"
        return CreateResult(owner, _download({**props, "owner": owner}))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [k for k in REPLACE_KEYS if olds.get(k) != news.get(k)]
        if identity(olds.get("parts") or []) != identity(news.get("parts") or []):
            replaces.append("parts")
        if olds.get("ok") is not True:
            replaces.append("ok")
        updates = [k for k in UPDATE_KEYS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({**_public(news), **{k: olds.get(k) for k in RESULT_KEYS}})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        where = f"{props['models_dir'].rstrip('/')}/{props['file']}"
        if not props.get("delete_on_destroy"):
            print(f"{props.get('key')}: {where} stays in models_dir (downloaded models are kept; "
                  "downloads.delete_on_destroy: true removes them)", file=sys.stderr, flush=True)
            return
        try:
            run_job(props, "delete")
        except Exception as exc:
            if show_traceback():
                raise
            print(f"{props.get('key')}: {where} could not be removed ({exc}); remove it by hand if you want it gone",
                  file=sys.stderr, flush=True)


class DownloadFailed(pulumi.RunError):
    """A download recorded as failed: Pulumi prints the message, without a traceback."""


def checked_models_digest(results: Sequence[Sequence[Any]]) -> str:
    """`(file, ok, error, sha256s)` of each download a container loads → its `MODELS_LABEL` value; raises
    DownloadFailed naming every failed one, so the container is not created without its files."""
    failures = [str(error) for _, ok, error, _ in results if ok is not True]
    if failures:
        raise DownloadFailed("\n".join(failures) + "\nnothing partial was placed under a model's name; fix the "
                             "source and run pulumi up again (an interrupted transfer resumes)")
    return models_digest({str(file): list(digests or []) for file, _, _, digests in results})


class ModelDownload(Resource, module="local-llm-stack", name="ModelDownload"):
    """The download of one declared file (all parts of a split GGUF) into models_dir on the Docker host."""

    file: pulumi.Output[str]
    ok: pulumi.Output[bool]
    error: pulumi.Output[str]
    """Empty when `ok`."""
    sha256: pulumi.Output[list[str]]
    """The verified digest of each part; empty for a file that was there with no digest declared (not checked)."""
    downloaded_bytes: pulumi.Output[int]
    actions: pulumi.Output[list[str]]
    PROVIDER: ClassVar[ModelDownloadProvider] = ModelDownloadProvider()

    def __init__(
        self,
        name: str,
        spec: DownloadSpec,
        *,
        models_dir: str,
        image: pulumi.Input[str],
        container_name: str,
        docker_host: str | None,
        ssh_opts: Sequence[str],
        token: pulumi.Input[str] | None,
        token_origin: Sequence[Any],
        delete_on_destroy: bool,
        stall_timeout_s: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props: dict[str, Any] = {
            "key": spec.key,
            "file": spec.file,
            "parts": [p.to_json() for p in spec.parts],
            "models_dir": models_dir,
            "image": image,
            "container_name": container_name,
            "docker_host": docker_host,
            "ssh_opts": list(ssh_opts),
            "network_mode": spec.network_mode,
            "token": pulumi.Output.secret(token) if token is not None else None,
            "token_origin": list(token_origin),
            "delete_on_destroy": delete_on_destroy,
            "stall_timeout_s": stall_timeout_s,
            **dict.fromkeys(RESULT_KEYS),
        }
        super().__init__(self.PROVIDER, name, props, opts)
