"""The kubernetes target's download init containers, pure: which pod downloads what, and how it runs the job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stack.deployment import Deployment, build_deployment
from stack.fetch.http_client import origin
from stack.render.containers import EMBEDDINGS, LITELLM
from stack.render.download_job import BOOT, JOB_ROOT, job_files
from stack.sizing.plan import build_plan
from stack.targets.kubernetes import build_manifests
from stack.targets.kubernetes.manifests import (
    DOWNLOAD_JOB,
    DOWNLOAD_USER,
    Manifests,
    download_container_name,
    secret_name,
)
from stack.targets.pulumi.model_download import container_config
from tests.unit.render_samples import ALL_SECRETS, config, raw

SHA = "c" * 64
SOURCE = {"repo": "org/models-GGUF", "revision": "main", "sha256": SHA}
POOLS = {"p16": {"gpu": {"profile": "rtx-5080"}}, "p24": {"gpu": {"profile": "rtx-4090"}}}


def _doc(**kubernetes: Any) -> dict[str, Any]:
    """Two pools: the `main` group on p16 (its `chat` model has a source), `big` (a source) and the embedder
    (a source) on p24."""
    doc = raw(target="kubernetes")
    doc["models"]["chat"]["source"] = dict(SOURCE)
    doc["models"]["big"] = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 4096,
                            "source": {"url": "https://models.example/big.gguf", "sha256": SHA}}
    doc["embeddings"]["source"] = dict(SOURCE)
    doc["kubernetes"] = {"namespace": "llm", "pools": POOLS,
                         "placement": {"main": "p16", "big": "p24", "embeddings": "p24"}, **kubernetes}
    return doc


def _deployment(doc: dict[str, Any] | None = None, token: bool = True) -> Deployment:
    keys = ALL_SECRETS | ({"hf_token"} if token else set())
    return build_deployment(build_plan(config(doc if doc is not None else _doc())), keys)


def _pods(m: Manifests) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in m.deployments}


def _job(init: dict[str, Any]) -> dict[str, Any]:
    (value,) = [e["value"] for e in init["env"] if e["name"] == "LLS_FETCH_JOB"]
    job: dict[str, Any] = json.loads(value)
    return job


def test_each_pod_gets_one_init_container_per_file_its_server_loads() -> None:
    pods = _pods(build_manifests(_deployment()))
    files = {key: [_job(i)["parts"][0]["local"] for i in pod.get("initContainers", [])] for key, pod in pods.items()}
    assert files == {"llama-swap-p16": ["Qwen2.5-7B-Instruct-Q4_K_M.gguf"],
                     "llama-swap-p24": ["Qwen2.5-14B-Instruct-Q4_K_M.gguf"],
                     EMBEDDINGS: ["nomic-embed-text-v1.5.Q8_0.gguf"], LITELLM: []}
    for pod in pods.values():
        for init in pod.get("initContainers", []):
            assert init["name"] == download_container_name(next(
                d for d in _deployment().downloads if d.file == _job(init)["parts"][0]["local"]))
            assert len(init["name"]) <= 63 and init["name"].startswith("download-")


def test_init_container_runs_the_docker_job_for_that_file() -> None:
    """Image, entrypoint and job JSON are the Docker download container's, for the same file (owner aside: on
    Kubernetes no resource owns the file, so nothing ever deletes it)."""
    dep = _deployment()
    cfg = dep.config
    (init,) = _pods(build_manifests(dep))["llama-swap-p24"]["initContainers"]
    (dl,) = [d for d in dep.downloads if d.file == "Qwen2.5-14B-Instruct-Q4_K_M.gguf"]
    docker = container_config({"parts": [p.to_json() for p in dl.parts], "image": cfg.images.downloader,
                               "file": dl.file, "models_dir": "/srv/models", "owner": None,
                               "stall_timeout_s": cfg.downloads.stall_timeout_s,
                               "token_origin": list(origin(cfg.hf_endpoint))}, "fetch")
    assert init["image"] == cfg.images.downloader == docker["Image"]
    assert init["command"] == ["python3", "-I", "-c", BOOT] == docker["Entrypoint"]
    assert init["workingDir"] == docker["WorkingDir"] == "/"
    (docker_job,) = [e.removeprefix("LLS_FETCH_JOB=") for e in docker["Env"] if e.startswith("LLS_FETCH_JOB=")]
    assert _job(init) == json.loads(docker_job)
    assert _job(init)["parts"][0]["url"] == "https://models.example/big.gguf"
    assert _job(init)["parts"][0]["sha256"] == SHA and _job(init)["models_dir"] == dep.models.target


def test_models_volume_is_writable_in_the_init_containers_only() -> None:
    dep = _deployment(_doc(models_volume={"existing_claim": "models"}))
    pods = _pods(build_manifests(dep))
    for key, pod in pods.items():
        (server,) = pod["containers"]
        for m in server["volumeMounts"]:
            if m["name"] in ("models", "config"):
                assert m["readOnly"] is True, (key, m)
        inits = pod.get("initContainers", [])
        for init in inits:
            models = [m for m in init["volumeMounts"] if m["name"] == "models"]
            assert models == [{"name": "models", "mountPath": dep.models.target, "readOnly": False}]
            assert {"name": DOWNLOAD_JOB, "mountPath": f"/{JOB_ROOT}", "readOnly": True} in init["volumeMounts"]
        claims = [v["persistentVolumeClaim"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
        if key == LITELLM:
            assert claims == []
        else:
            # a volume-level readOnly would force the init container's mount read-only too
            assert claims == [{"claimName": "models"} if inits else {"claimName": "models", "readOnly": True}]


def test_a_pod_that_downloads_nothing_keeps_the_read_only_claim_and_no_fs_group() -> None:
    doc = _doc(models_volume={"existing_claim": "models"})
    del doc["models"]["chat"]["source"]
    pods = _pods(build_manifests(_deployment(doc)))
    p16 = pods["llama-swap-p16"]
    assert "initContainers" not in p16
    assert p16["volumes"][0] == {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}
    assert "fsGroup" not in p16["securityContext"]
    assert pods["llama-swap-p24"]["securityContext"]["fsGroup"] == DOWNLOAD_USER


def test_init_containers_run_unprivileged_as_the_download_user() -> None:
    pods = _pods(build_manifests(_deployment()))
    inits = [i for pod in pods.values() for i in pod.get("initContainers", [])]
    assert len(inits) == 3
    for init in inits:
        assert init["securityContext"] == {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "runAsUser": DOWNLOAD_USER, "runAsGroup": DOWNLOAD_USER}
        assert init["resources"]["requests"]


def test_token_comes_from_the_service_secret_only_with_an_hf_token_secret() -> None:
    m = build_manifests(_deployment())
    pods = _pods(m)
    entries = {s.service: dict(s.entries) for s in m.secrets}
    for key, pod in pods.items():
        for init in pod.get("initContainers", []):
            (token,) = [e for e in init["env"] if e["name"] == "HF_TOKEN"]
            assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret_name(key),
                                                                                 "key": "HF_TOKEN"}}}
            assert entries[key]["HF_TOKEN"] == "hf_token"
        assert all(e["name"] != "HF_TOKEN" for e in pod["containers"][0]["env"])
    assert "HF_TOKEN" not in entries[LITELLM]
    literals = [e for pod in pods.values() for c in [*pod.get("initContainers", []), *pod["containers"]]
                for e in c["env"] if "value" in e]
    assert "HF_TOKEN" not in {e["name"] for e in literals}
    assert all("HF_TOKEN" not in cm["data"] for cm in m.config_maps)
    bare = build_manifests(_deployment(token=False))
    assert all("HF_TOKEN" not in s.entries for s in bare.secrets)
    for pod in _pods(bare).values():
        for init in pod.get("initContainers", []):
            assert [e["name"] for e in init["env"]] == ["LLS_FETCH_JOB"]


def test_job_config_map_holds_job_files_where_boot_imports_them() -> None:
    m = build_manifests(_deployment())
    (cm,) = [c for c in m.config_maps if c["metadata"]["name"] == DOWNLOAD_JOB]
    pod = _pods(m)["llama-swap-p16"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == DOWNLOAD_JOB]
    assert volume["configMap"]["name"] == DOWNLOAD_JOB
    placed = {f"{JOB_ROOT}/{item['path']}": cm["data"][item["key"]].encode() for item in volume["configMap"]["items"]}
    assert placed == job_files()
    assert set(cm["data"]) == {item["key"] for item in volume["configMap"]["items"]}
    assert "sys.path.insert(0, '/opt/local-llm-stack')" in BOOT and JOB_ROOT == "opt/local-llm-stack"


def test_no_sources_no_init_containers_and_no_job_config_map() -> None:
    doc = _doc()
    del doc["models"]["chat"]["source"], doc["models"]["big"]["source"], doc["embeddings"]["source"]
    m = build_manifests(_deployment(doc))
    assert all("initContainers" not in pod for pod in _pods(m).values())
    assert DOWNLOAD_JOB not in {c["metadata"]["name"] for c in m.config_maps}
    assert all("HF_TOKEN" not in s.entries for s in m.secrets)


def test_a_changed_source_changes_only_the_pod_template_that_downloads_it() -> None:
    before = {d["metadata"]["name"]: d for d in build_manifests(_deployment()).deployments}
    doc = _doc()
    doc["models"]["big"]["source"]["sha256"] = "d" * 64
    after = {d["metadata"]["name"]: d for d in build_manifests(_deployment(doc)).deployments}
    assert {k for k in before if before[k] != after[k]} == {"llama-swap-p24"}


def test_download_container_names_are_dns_labels_and_distinct() -> None:
    dep = _deployment()
    (dl,) = [d for d in dep.downloads if d.file == "Qwen2.5-14B-Instruct-Q4_K_M.gguf"]
    other = type(dl)("qwen2.5-14b-instruct-q4_k_m.gguf", dl.parts, dl.services, dl.slug, dl.network_mode)
    long = type(dl)("x" * 200 + ".gguf", dl.parts, dl.services, dl.slug, dl.network_mode)
    names = [download_container_name(d) for d in (dl, other, long)]
    assert len(set(names)) == 3
    for name in names:
        assert len(name) <= 63 and all(c.isdigit() or c == "-" or "a" <= c <= "z" for c in name), name


def test_pulumi_up_warns_only_about_a_source_no_pod_can_reach(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback source is the pod itself; every other source downloads without a word (headers from the catalog
    here: no request leaves the test)."""
    import pulumi

    from stack.targets.pulumi import program

    doc = _doc()
    doc["hf_endpoint"] = "http://127.0.0.1:9"
    warned: list[str] = []
    monkeypatch.setattr(program, "with_sources", lambda _cfg, source, token: source)
    monkeypatch.setattr(program, "_hf_token", lambda: None)
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warned.append(msg))
    program.load_checked_plan(doc, ALL_SECRETS | {"hf_token"})
    loopback = [w for w in warned if "is on loopback" in w]
    assert [w.split(":")[0] for w in loopback] == ["models.chat.source", "embeddings.source"], warned
    assert not any("does not download" in w or "models.big" in w for w in warned), warned
