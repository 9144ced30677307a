"""The download job that `pulumi up` runs in a one-shot container on the Docker host: `stack.fetch.fetcher`, one file.

Standard library only: the container is any image with Python 3.11 or later (`images.downloader`), and this
module, `stack.fetch.fetcher`, `stack.fetch.http_client`, `stack.fetch.remote_part` and `stack.errors` are copied
into it before it starts. The job is the JSON in `LLS_FETCH_JOB`; a Hugging Face token, if any, comes as the
`HF_TOKEN` variable and is sent to `token_origin` only. Progress goes to stderr, one line per tenth or per
`progress_interval_s`; the last line on stdout is the result as JSON (`ok`, and per part `action`, `sha256`,
`bytes`; or the failing `key` and `message`).

A job names its `owner` (the download resource that runs it); a successful fetch writes it into each part's
download record. `mode: delete` removes a part's file only while its record still names the same owner: a file
that another download has claimed since (a changed source, whose new resource is created before the old one is
deleted), or that fetch did not put there, is left alone.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from stack.errors import internal_error_message, show_traceback
from stack.fetch.fetcher import STATE_DIR, Fetcher, FetchFailed, Progress
from stack.fetch.http_client import HttpClient
from stack.fetch.remote_part import RemotePart

JOB_ENV = "LLS_FETCH_JOB"
TOKEN_ENV = "HF_TOKEN"
EXIT_OK, EXIT_FAILED, EXIT_BAD_JOB = 0, 1, 2


def _result(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def _become_owner(models_dir: Path) -> None:
    """Write as the owner of models_dir, not as the container's root, so the files belong to whoever owns it."""
    if os.geteuid() != 0:
        return
    st = models_dir.stat()
    if st.st_uid == 0 and st.st_gid == 0:
        return
    os.setgroups([])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)


def _record(models_dir: Path, local: str) -> dict[str, Any]:
    try:
        data = json.loads((models_dir / STATE_DIR / f"{local}.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _claim(models_dir: Path, part: RemotePart, owner: str) -> None:
    path = models_dir / STATE_DIR / f"{part.local}.json"
    rec = _record(models_dir, part.local)
    if rec:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({**rec, "owner": owner}))
        os.replace(tmp, path)


def delete(models_dir: Path, parts: list[RemotePart], owner: str | None) -> list[dict[str, Any]]:
    """Remove each part whose record names `owner`; report what was removed and what was kept."""
    out = []
    for part in parts:
        final = models_dir / part.local
        rec = _record(models_dir, part.local)
        ours = owner is not None and rec.get("owner") == owner
        if ours and final.is_file():
            final.unlink()
            (models_dir / STATE_DIR / f"{part.local}.json").unlink(missing_ok=True)
            print(f"{part.key}: removed {part.local}", file=sys.stderr, flush=True)
            out.append({"local": part.local, "action": "removed"})
        else:
            why = "another download or not fetch placed it" if final.is_file() else "it is not there"
            print(f"{part.key}: left {part.local} alone ({why})", file=sys.stderr, flush=True)
            out.append({"local": part.local, "action": "kept"})
    return out


def run(job: dict[str, Any], token: str | None) -> int:
    models_dir = Path(job["models_dir"])
    parts = [RemotePart.from_json(p) for p in job["parts"]]
    _become_owner(models_dir)
    os.umask(0o022)
    if job.get("mode") == "delete":
        _result({"ok": True, "parts": delete(models_dir, parts, job.get("owner"))})
        return EXIT_OK
    origin = job.get("token_origin")
    where = (str(origin[0]), str(origin[1]), int(origin[2])) if origin else None
    client = HttpClient(token=token, token_origin=where, timeout=float(job.get("timeout_s", 30)))
    progress = Progress(sys.stderr, interval_s=job.get("progress_interval_s"))
    fetcher = Fetcher(client, models_dir, progress)
    done = []
    try:
        for part in parts:
            outcome = fetcher.fetch(part)
            if job.get("owner") and outcome.action != "kept":
                _claim(models_dir, part, str(job["owner"]))
            done.append({"local": part.local, "action": outcome.action, "sha256": outcome.sha256,
                         "bytes": outcome.bytes, "seconds": round(outcome.seconds, 3),
                         "resumed_from": outcome.resumed_from})
            verb = {"downloaded": "downloaded", "present": "already there and verified",
                    "kept": "already there (no sha256 declared: not checked)"}[outcome.action]
            size = f" ({outcome.bytes:,} bytes in {outcome.seconds:.1f} s)" if outcome.action == "downloaded" else ""
            print(f"{part.key}: {part.local} {verb}{size}", file=sys.stderr, flush=True)
            if part.sha256 is None and outcome.sha256:
                item = f" (item {part.part - 1} of the list)" if part.parts > 1 else ""
                print(f"  unpinned: record it as {part.key}.sha256{item}: {outcome.sha256}", file=sys.stderr,
                      flush=True)
    except FetchFailed as exc:
        _result({"ok": False, "key": exc.key, "message": exc.message, "parts": done})
        return EXIT_FAILED
    finally:
        client.close()
    _result({"ok": True, "parts": done})
    return EXIT_OK


def main() -> int:
    try:
        job = json.loads(os.environ[JOB_ENV])
        if not isinstance(job, dict) or not isinstance(job.get("parts"), list):
            raise ValueError("expected an object with a parts list")
    except (KeyError, ValueError) as exc:
        _result({"ok": False, "key": None, "message": f"the download job is missing or malformed ({exc})"})
        return EXIT_BAD_JOB
    try:
        return run(job, os.environ.get(TOKEN_ENV) or None)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _result({"ok": False, "key": None, "message": f"cannot use the models directory:{where} "
                                                      f"{exc.strerror or exc}"})
        return EXIT_FAILED
    except Exception as exc:
        if show_traceback():
            raise
        _result({"ok": False, "key": None, "message": internal_error_message(exc)})
        return EXIT_BAD_JOB


if __name__ == "__main__":
    sys.exit(main())
