"""The kubernetes target deployed by the real Pulumi CLI and pulumi-kubernetes provider to a real API server.

The control plane (conftest.py) has no kubelets and no nodes: the pods the controller manager creates stay
Pending and no container runs. What is checked is everything up to that point: the real engine registers every
object, the API server's validation and RBAC accept them, and the stored objects say what the manifests say
(read back with the `kubernetes` client): GPU limits, probes, read-only mounts, secrets only in Secrets, the
NetworkPolicies, the download init container of the pod that loads the model with a `source`. Running containers
from the same specs is the Docker target's test (tests/deploy); running the init container's command is
test_download_init_run.py's.

The tests run in file order on one stack, each from the state the previous one left:
1. `pulumi up` creates every object; 2. the stored objects; 3. a second preview has no changes; 4. a changed
`ctx_size` changes one ConfigMap and rolls only the Deployment that reads it, a changed `source` only the Deployment
whose init container downloads it; 5. a placement that does not fit fails preview and up with the gate's message,
creates nothing; 6. `pulumi destroy` leaves the namespace gone.

Models are sized from the catalog (the files are not needed: no pod ever starts); the stack has two pools, a
16 GB and a 24 GB GPU.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from pulumi import automation as auto

from models.load import parse_stack_config
from stack.deployment import build_deployment
from stack.render.download_job import BOOT, JOB_ROOT, job_files
from stack.sizing.plan import build_plan
from stack.targets.kubernetes import Manifests, build_manifests
from stack.targets.kubernetes.manifests import CONFIG_HASH_ANNOTATION, DOWNLOAD_USER, GPU_RESOURCE
from stack.targets.pulumi.program import STACK_RESOURCE_NAME
from tests.deploy.pulumi_project import PROJECT, REPO, PulumiFailed, PulumiProject, pulumi_env
from tests.harness import binaries
from tests.kubernetes.conftest import ControlPlane, missing

pytestmark = [pytest.mark.kubernetes,
              pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")]  # loopback

PLUGIN_VERSION = "4.25.0"
"""= the pulumi-kubernetes pin in requirements.txt: the SDK asks for exactly this provider plugin."""
SECRETS = ("api_key", "litellm_master_key", "hf_token")


def stack_config(models_dir: Path, namespace: str) -> dict[str, Any]:
    """Two GPU pools; the chat group on the 16 GB one, the big model and the embedder on the 24 GB one. The big
    model has a source: its pod downloads it in an init container (with the `hf_token` secret as HF_TOKEN)."""
    return {
        "target": "kubernetes",
        "models_dir": str(models_dir),
        "kubernetes": {
            "namespace": namespace,
            "pools": {
                "rtx5080": {
                    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-5080"},
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "runtime_class": "nvidia",
                    "gpu": {"profile": "rtx-5080"},
                },
                "rtx4090": {
                    "node_selector": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-4090"},
                    "gpu": {"profile": "rtx-4090"},
                },
            },
            "placement": {"chat": "rtx5080", "big": "rtx4090", "embeddings": "rtx4090", "litellm": "rtx5080"},
        },
        "models": {
            "small": {"file": "Qwen2.5-3B-Instruct-Q4_K_M.gguf", "ctx_size": 4096, "aliases": ["tiny"]},
            "mid": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 8192},
            "big": {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 8192,
                    "source": {"repo": "bartowski/Qwen2.5-14B-Instruct-GGUF", "revision": "main"}},
        },
        "groups": {"chat": {"members": ["small", "mid"]}},
        "embeddings": {"name": "embed", "file": "nomic-embed-text-v1.5.Q8_0.gguf", "pooling": "mean"},
        "litellm": {"enabled": True},
    }


def expected(raw: dict[str, Any]) -> Manifests:
    """What the program should create for `raw`, built in-process from the same config."""
    cfg = parse_stack_config(raw, frozenset(SECRETS))
    return build_manifests(build_deployment(build_plan(cfg), frozenset(SECRETS)))


def object_names(want: Manifests, stored: dict[str, Any]) -> set[str]:
    """`kind/name` of every object `want` makes but the Namespace; each Secret is Pulumi-named
    `local-llm-stack-<name>-<suffix>`: exactly one stored Secret per expected one."""
    names = {f"{o['kind']}/{o['metadata']['name']}" for o in want.objects()[1:]}
    for spec in want.secrets:
        (found,) = [k for k in stored if k.startswith(f"Secret/{STACK_RESOURCE_NAME}-{spec.name}-")]
        names.add(found)
    return names


@dataclass
class Cluster:
    plane: ControlPlane
    core: kubernetes.client.CoreV1Api
    apps: kubernetes.client.AppsV1Api
    net: kubernetes.client.NetworkingV1Api

    def namespace_exists(self, name: str) -> bool:
        found: Any = self.core.list_namespace()
        return any(n.metadata.name == name for n in found.items)


@dataclass
class Deployed:
    project: PulumiProject
    cluster: Cluster
    raw: dict[str, Any]
    namespace: str
    secrets: dict[str, str]
    tmp: Path
    timings: dict[str, float] = field(default_factory=dict)

    def stored(self) -> dict[str, dict[str, Any]]:
        """Every object of the stack's kinds in its namespace, as the API server stores them (`kind/name`)."""
        ns, c = self.namespace, self.cluster
        client: Any = kubernetes.client.ApiClient()
        lists: list[Any] = [c.core.list_namespaced_config_map(ns), c.core.list_namespaced_secret(ns),
                 c.core.list_namespaced_service(ns), c.core.list_namespaced_persistent_volume_claim(ns),
                 c.apps.list_namespaced_deployment(ns), c.net.list_namespaced_network_policy(ns)]
        kinds = ["ConfigMap", "Secret", "Service", "PersistentVolumeClaim", "Deployment", "NetworkPolicy"]
        out: dict[str, dict[str, Any]] = {}
        for kind, items in zip(kinds, lists, strict=True):
            for item in items.items:
                if kind == "ConfigMap" and item.metadata.name == "kube-root-ca.crt":
                    continue  # the controller manager's own, in every namespace
                out[f"{kind}/{item.metadata.name}"] = client.sanitize_for_serialization(item)
        return out


def _plugin_installed(env: dict[str, str]) -> bool:
    proc = subprocess.run([str(binaries.pulumi()), "plugin", "ls", "--json"], env=env, capture_output=True,
                          text=True, check=False)
    plugins = json.loads(proc.stdout or "[]") or []
    return any(p.get("name") == "kubernetes" and p.get("version") == PLUGIN_VERSION for p in plugins)


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Cluster:
    """The control plane, with the provider plugin registered with the CLI (from the toolchain build if needed)."""
    try:
        binaries.pulumi()
    except binaries.MissingBinaryError as exc:
        missing(str(exc))
    env = {**os.environ, **pulumi_env(Path("/nonexistent"), "x")}
    if not _plugin_installed(env):
        built = binaries.toolchain_bin_dir() / "pulumi-resource-kubernetes"
        if not built.is_file():
            missing(f"no kubernetes {PLUGIN_VERSION} plugin registered with pulumi and none built at {built}; run "
                    "scripts/install-tools.sh")
        subprocess.run([str(binaries.pulumi()), "plugin", "install", "resource", "kubernetes", PLUGIN_VERSION,
                        "--file", str(built)], env=env, check=True, capture_output=True)
    load: Any = kubernetes.config.new_client_from_config
    api = load(str(control_plane.kubeconfig))
    kubernetes.client.Configuration.set_default(api.configuration)
    return Cluster(control_plane, kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api),
                   kubernetes.client.NetworkingV1Api(api))


def _project(tmp: Path, name: str, raw: dict[str, Any], plane: ControlPlane, values: dict[str, str]) -> PulumiProject:
    project = PulumiProject(tmp / name, name)
    project.workdir.mkdir(parents=True)
    project.create(raw, values)
    project.edit_config(lambda c: c.update({"kubernetes:kubeconfig": str(plane.kubeconfig)}))
    return project


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("k8s-deploy")
    (tmp / "models").mkdir()
    namespace = f"lls-{secrets.token_hex(4)}"
    raw = stack_config(tmp / "models", namespace)
    values = {key: secrets.token_hex(16) for key in SECRETS}
    project = _project(tmp, "k8s", raw, cluster.plane, values)
    state = Deployed(project, cluster, raw, namespace, values, tmp)
    yield state
    if cluster.namespace_exists(namespace):
        try:
            project.destroy()
        except PulumiFailed:
            cluster.core.delete_namespace(namespace)
    print(f"\n[k8s deploy timings] {json.dumps({k: round(v, 1) for k, v in state.timings.items()})}")


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def test_up_creates_every_object_and_the_api_server_accepts_them(deployed: Deployed) -> None:
    want = expected(deployed.raw)
    outcome = deployed.project.up()
    deployed.timings["up_s"] = outcome.seconds
    deployed.timings["control_plane_start_s"] = deployed.cluster.plane.start_seconds
    assert deployed.cluster.namespace_exists(deployed.namespace)
    assert "does not download" not in outcome.output and "is on loopback" not in outcome.output
    stored = deployed.stored()
    names = object_names(want, stored)
    assert set(stored) == names
    objects = [st for st in outcome.steps if st.op == "create" and st.type.startswith("kubernetes:")
               and not st.type.startswith("pulumi:providers:")]
    assert len(objects) == len(names) + 1, [st.type for st in objects]
    assert outcome.summary == {"create": len(names) + 1 + 2}, outcome.summary  # + the stack and the component
    print(f"\n[k8s objects] {len(names) + 1} (namespace + {len(names)}): "
          f"{sorted({n.split('/')[0] for n in names})}; up {outcome.seconds:.1f} s")
    pools = {d["metadata"]["name"] for d in want.deployments}
    assert {"llama-swap-rtx5080", "llama-swap-rtx4090"} <= pools or "llama-swap" in pools


def test_stored_objects_say_what_the_manifests_say(deployed: Deployed) -> None:
    want = expected(deployed.raw)
    stored = deployed.stored()
    for d in want.deployments:
        got = stored[f"Deployment/{d['metadata']['name']}"]
        pod, want_pod = _pod_spec(got), _pod_spec(d)
        (c,), (w,) = pod["containers"], want_pod["containers"]
        assert c.get("resources", {}).get("limits") == w["resources"].get("limits")
        if w["resources"].get("limits"):
            assert c["resources"]["limits"][GPU_RESOURCE] == "1"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["exec"]["command"] == w[probe]["exec"]["command"]
            assert c[probe]["failureThreshold"] == w[probe]["failureThreshold"]
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        for m in w["volumeMounts"]:
            if m["name"] in ("models", "config"):
                assert mounts[m["mountPath"]].get("readOnly") is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod.get("nodeSelector") == want_pod.get("nodeSelector")
        assert got["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == (
            d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION])
    for policy in want.network_policies:
        assert stored[f"NetworkPolicy/{policy['metadata']['name']}"]["spec"]["ingress"] == policy["spec"]["ingress"]


def test_stored_deployment_downloads_in_an_init_container(deployed: Deployed) -> None:
    """The pod of the pool that holds `big` (the model with a source) runs the download job first: the downloader
    image, BOOT, the job JSON, the token from its generated Secret, the models volume writable there only."""
    want = expected(deployed.raw)
    stored = deployed.stored()
    downloading = {d["metadata"]["name"] for d in want.deployments if _pod_spec(d).get("initContainers")}
    assert downloading == {"llama-swap-rtx4090"}
    assert all(not _pod_spec(stored[f"Deployment/{n}"]).get("initContainers")
               for n in (d["metadata"]["name"] for d in want.deployments) if n not in downloading)
    got = _pod_spec(stored["Deployment/llama-swap-rtx4090"])
    (w,) = next(_pod_spec(d) for d in want.deployments if d["metadata"]["name"] == "llama-swap-rtx4090")[
        "initContainers"]
    (init,) = got["initContainers"]
    cfg = parse_stack_config(deployed.raw, frozenset(SECRETS))
    assert init["name"] == w["name"] and init["image"] == cfg.images.downloader
    assert init["command"] == ["python3", "-I", "-c", BOOT] and init["workingDir"] == "/"
    env = {e["name"]: e for e in init["env"]}
    job = json.loads(env["LLS_FETCH_JOB"]["value"])
    assert job["parts"][0]["local"] == deployed.raw["models"]["big"]["file"] and job["models_dir"] == "/models"
    ref = env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert "value" not in env["HF_TOKEN"] and ref["key"] == "HF_TOKEN"
    secret = stored[f"Secret/{ref['name']}"]
    assert base64.b64decode(secret["data"]["HF_TOKEN"]).decode() == deployed.secrets["hf_token"]
    assert ref["name"].startswith(f"{STACK_RESOURCE_NAME}-llama-swap-rtx4090-secrets-")
    mounts = {m["name"]: m for m in init["volumeMounts"]}
    assert mounts["models"].get("readOnly") in (None, False) and mounts["download-job"]["readOnly"] is True
    (server,) = got["containers"]
    assert all(m.get("readOnly") is True for m in server["volumeMounts"] if m["name"] == "models")
    assert "HF_TOKEN" not in {e["name"] for e in server.get("env") or []}
    ctx = init["securityContext"]
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["allowPrivilegeEscalation"] is False
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == ctx["runAsGroup"] == DOWNLOAD_USER
    assert got["securityContext"]["fsGroup"] == DOWNLOAD_USER
    job_map = stored["ConfigMap/download-job"]["data"]
    (vol,) = [v for v in got["volumes"] if v["name"] == "download-job"]
    assert {f"{JOB_ROOT}/{i['path']}": job_map[i["key"]].encode() for i in vol["configMap"]["items"]} == job_files()


def test_secrets_only_in_secrets(deployed: Deployed) -> None:
    stored = deployed.stored()
    values = set(deployed.secrets.values())
    for name, obj in stored.items():
        text = json.dumps(obj)
        if name.startswith("Secret/"):
            decoded = {base64.b64decode(v).decode() for v in obj["data"].values()}
            assert decoded <= values and decoded
        else:
            assert not any(v in text for v in values), f"a secret value is in {name}"
    exported = json.dumps(deployed.project.export())
    assert not any(v in exported for v in values), "a secret value is in plain text in the Pulumi state"


def test_pods_stay_pending_without_nodes(deployed: Deployed) -> None:
    """The controller manager made the ReplicaSets and Pods; nothing schedules them (no kubelet, no node)."""
    deadline = time.monotonic() + 30
    pods: list[Any] = []
    while time.monotonic() < deadline and not pods:
        pods = deployed.cluster.core.list_namespaced_pod(deployed.namespace).items
        time.sleep(1)
    if not pods:
        pytest.skip("the controller manager created no pod within 30 s (RuntimeClass admission may refuse pods "
                    "whose class does not exist)")
    assert {p.status.phase for p in pods} == {"Pending"}


def test_outputs_have_the_docker_shape_with_in_cluster_urls(deployed: Deployed) -> None:
    out = json.loads(deployed.project.outputs_json(deployed.tmp / "outputs.json").read_text())
    cfg = parse_stack_config(deployed.raw, frozenset(SECRETS))
    dep = build_deployment(build_plan(cfg), frozenset(SECRETS))
    assert set(out) == set(dep.outputs({s.key: s.key for s in dep.services}))
    for key, url in out["endpoints"].items():
        assert url.startswith(f"http://{key}.{deployed.namespace}.svc.cluster.local:"), url
    assert out["auth_required"]["litellm"] is True and out["sizing"]["fits"] is True


def test_second_preview_shows_no_changes(deployed: Deployed) -> None:
    outcome = deployed.project.preview(expect_no_changes=True)
    deployed.timings["preview_s"] = outcome.seconds
    assert outcome.changed() == {}


def test_ctx_change_rolls_only_the_deployment_that_reads_it(deployed: Deployed) -> None:
    before = expected(deployed.raw)
    stored_before = deployed.stored()
    deployed.raw["models"]["big"]["ctx_size"] = 4096
    deployed.project.set_value("models", "big", "ctx_size", value=4096)
    after = expected(deployed.raw)
    changed_maps = {c["metadata"]["name"] for c, d in zip(before.config_maps, after.config_maps, strict=True)
                    if c != d}
    changed_deps = {c["metadata"]["name"] for c, d in zip(before.deployments, after.deployments, strict=True)
                    if c != d}
    assert len(changed_maps) == 1 and len(changed_deps) == 1, (changed_maps, changed_deps)
    outcome = deployed.project.up()
    deployed.timings["up_ctx_change_s"] = outcome.seconds
    changed = outcome.changed()
    # pulumi-kubernetes treats ConfigMaps as immutable (replaced, unless kubernetes:enableConfigMapMutable); the
    # Deployment is updated in place: its pod template's annotation changed, so its pods roll.
    (cm,) = changed_maps
    (dep,) = changed_deps
    assert changed == {f"local-llm-stack-{cm}": "replace", f"local-llm-stack-{dep}": "update"}, changed
    stored = deployed.stored()
    for name in (k for k in stored if k.startswith("Deployment/")):
        old = stored_before[name]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        new = stored[name]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        assert (old != new) is (name.removeprefix("Deployment/") in changed_deps), name
    assert stored[f"ConfigMap/{cm}"]["data"] != stored_before[f"ConfigMap/{cm}"]["data"]
    others = {k for k in stored if k.startswith("Deployment/") and k != f"Deployment/{dep}"}
    for name in others:
        assert stored[name]["metadata"]["generation"] == stored_before[name]["metadata"]["generation"], name
    assert stored[f"Deployment/{dep}"]["metadata"]["generation"] > stored_before[f"Deployment/{dep}"]["metadata"][
        "generation"]


def test_a_rotated_secret_rolls_only_the_deployments_that_read_it(deployed: Deployed) -> None:
    """A new `litellm_master_key` makes a new LiteLLM Secret (a new generated name), so only LiteLLM's pod template
    changes; the old Secret is deleted after the Deployment points at the new one."""
    before = deployed.stored()
    deployed.secrets["litellm_master_key"] = secrets.token_hex(16)
    deployed.project.stack.set_config(f"{PROJECT}:litellm_master_key",
                                      auto.ConfigValue(deployed.secrets["litellm_master_key"], secret=True))
    changed = deployed.project.up().changed()
    assert changed == {"local-llm-stack-litellm-secrets": "replace", "local-llm-stack-litellm": "update"}, changed
    after = deployed.stored()
    rolled = {k for k in after if k.startswith("Deployment/")
              and after[k]["metadata"]["generation"] != before[k]["metadata"]["generation"]}
    assert rolled == {"Deployment/litellm"}
    (secret,) = [k for k in after if k.startswith(f"Secret/{STACK_RESOURCE_NAME}-litellm-secrets-")]
    assert secret not in before
    value = base64.b64decode(after[secret]["data"]["LITELLM_MASTER_KEY"]).decode()
    assert value == deployed.secrets["litellm_master_key"]


def test_a_changed_source_rolls_only_the_deployment_that_downloads_it(deployed: Deployed) -> None:
    before = expected(deployed.raw)
    stored_before = deployed.stored()
    pinned = {**deployed.raw["models"]["big"]["source"], "revision": "0123456789abcdef0123456789abcdef01234567"}
    deployed.raw["models"]["big"]["source"] = pinned
    deployed.project.set_value("models", "big", "source", value=pinned)
    after = expected(deployed.raw)
    assert before.config_maps == after.config_maps
    (dep,) = [a["metadata"]["name"] for b, a in zip(before.deployments, after.deployments, strict=True) if a != b]
    assert dep == "llama-swap-rtx4090"
    outcome = deployed.project.up()
    deployed.timings["up_source_change_s"] = outcome.seconds
    assert outcome.changed() == {f"local-llm-stack-{dep}": "update"}, outcome.changed()
    stored = deployed.stored()
    rolled = {k for k in stored if k.startswith("Deployment/")
              and stored[k]["metadata"]["generation"] != stored_before[k]["metadata"]["generation"]}
    assert rolled == {f"Deployment/{dep}"}
    (init,) = _pod_spec(stored[f"Deployment/{dep}"])["initContainers"]
    job = json.loads(next(e["value"] for e in init["env"] if e["name"] == "LLS_FETCH_JOB"))
    assert f"/resolve/{pinned['revision']}/" in job["parts"][0]["url"]


def test_placement_that_does_not_fit_fails_preview_and_creates_nothing(deployed: Deployed) -> None:
    raw = json.loads(json.dumps(deployed.raw))
    namespace = f"lls-{secrets.token_hex(4)}"
    raw["kubernetes"]["namespace"] = namespace
    raw["models"]["big"]["ctx_size"] = 131072
    raw["kubernetes"]["placement"]["big"] = "rtx5080"
    project = _project(deployed.tmp, "k8s-too-big", raw, deployed.cluster.plane, deployed.secrets)
    for verb in ("preview", "up"):
        with pytest.raises(PulumiFailed) as failed:
            getattr(project, verb)()
        text = failed.value.output + failed.value.error
        assert "refused: a co-resident set does not fit" in text and "DOES NOT FIT" in text, text[-3000:]
        assert "Traceback" not in text
    assert not deployed.cluster.namespace_exists(namespace)
    kept = {r["type"] for r in project.export()["deployment"].get("resources") or []}
    assert kept <= {"pulumi:pulumi:Stack"}, kept  # the failed up records the stack itself, nothing registered
    project.remove()


def test_the_example_two_pool_stack_file_deploys(deployed: Deployed) -> None:
    """Pulumi.k8s.yaml as shipped (its own namespace changed, so runs never collide): up, the claim sized from
    the sizing report, no-change preview, destroy."""
    example = REPO / "Pulumi.k8s.yaml"
    if not example.exists():
        pytest.skip("Pulumi.k8s.yaml (the two-pool example) is not in the repository yet")
    doc = yaml.safe_load(example.read_text())["config"]
    raw = {k.removeprefix(f"{PROJECT}:"): v for k, v in doc.items() if k.startswith(f"{PROJECT}:")}
    namespace = f"lls-{secrets.token_hex(4)}"
    raw["kubernetes"]["namespace"] = namespace
    want = expected(raw)
    project = _project(deployed.tmp, "k8s-example", raw, deployed.cluster.plane, deployed.secrets)
    up = project.up()
    stored = Deployed(project, deployed.cluster, raw, namespace, deployed.secrets, deployed.tmp).stored()
    names = object_names(want, stored)
    assert set(stored) == names
    assert want.volume_claim is not None
    claim = stored[f"PersistentVolumeClaim/{want.volume_claim['metadata']['name']}"]
    assert claim["spec"]["resources"]["requests"] == want.volume_claim["spec"]["resources"]["requests"]
    assert claim["spec"]["storageClassName"] == "standard"
    assert claim["spec"]["accessModes"] == want.volume_claim["spec"]["accessModes"]
    pools = {d["metadata"]["name"]: _pod_spec(d).get("nodeSelector") for d in want.deployments}
    assert len({json.dumps(v, sort_keys=True) for v in pools.values()}) == 2, pools
    assert project.preview(expect_no_changes=True).changed() == {}
    down = project.destroy()
    deadline = time.monotonic() + 60
    while deployed.cluster.namespace_exists(namespace) and time.monotonic() < deadline:
        time.sleep(1)
    assert not deployed.cluster.namespace_exists(namespace)
    deployed.timings |= {"example_up_s": up.seconds, "example_destroy_s": down.seconds}
    print(f"\n[k8s example] {len(names) + 1} objects: {sorted(names)}")
    project.remove()


def test_destroy_leaves_the_namespace_gone(deployed: Deployed) -> None:
    outcome = deployed.project.destroy()
    deployed.timings["destroy_s"] = outcome.seconds
    deadline = time.monotonic() + 60
    while deployed.cluster.namespace_exists(deployed.namespace) and time.monotonic() < deadline:
        time.sleep(1)
    assert not deployed.cluster.namespace_exists(deployed.namespace)
