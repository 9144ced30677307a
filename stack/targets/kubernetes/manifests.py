"""A `Deployment` as plain Kubernetes manifests (dicts, camelCase as the API server stores them), no Pulumi types.

Pure and deterministic, so what goes to a cluster is testable without one; `component.py` only registers these.
Secret values never appear here: a `SecretSpec` names, per service, each environment variable and the stack
config key whose (Pulumi secret) value fills it. Its `name` is the base the component's generated Secret name
starts from (a new value, a new name, so the pods that read it restart); `secretKeyRef`s here carry the base.

What differs from the Docker target, because Kubernetes works otherwise (tests/kubernetes/test_parity.py
checks the rest field by field):

* **ports**: nothing is published on a host port; each service gets a ClusterIP Service on the container's
  port (the port the rendered LiteLLM config already uses), named like the service key, the host name in
  those configs. Reaching LiteLLM from outside the cluster is the user's Ingress / LoadBalancer / port-forward.
* **uploads** (the rendered llama-swap and LiteLLM files) come from one ConfigMap per service, mounted read-only
  at the same path through `subPath`; the spec's config-hash is a pod-template annotation, so a changed file
  rolls exactly the Deployments whose pods read it (a `subPath` mount never sees a ConfigMap update by itself).
* **GPU**: `nvidia.com/gpu: 1` as a limit (the device plugin picks the GPU) instead of Docker's `gpus=<device>`.
* **health**: the healthcheck's argv runs as exec probes: a startup probe covers `start_period` (plus the
  retries Docker would allow after it), then readiness and liveness probe every `interval`. Liveness restarts
  a wedged container; Docker only marks it unhealthy (its restart policy acts on exit alone).
* **restart / logs / stop**: `restartPolicy: Always` (Deployments allow no other) for `unless-stopped`; log
  rotation is the kubelet's, not `json-file` options; `stop_timeout_s` is `terminationGracePeriodSeconds`.
* **security**: every container drops all capabilities and may not escalate; see `SECURITY` for which run as
  non-root with a read-only root filesystem (those get an `emptyDir` on /tmp) and why LiteLLM does not.
* **extra environment**: none; `enableServiceLinks: false` keeps Kubernetes from injecting `LITELLM_PORT=tcp://…`
  style variables that the programs could mistake for settings.
* **downloads**: instead of a one-shot container per file during `pulumi up`, each pod that loads a declared file
  with a `source` runs the same job (`stack.render.download_job`: image, entrypoint, `LLS_FETCH_JOB`) as one init
  container per file before its server starts, the job's modules mounted from the `download-job` ConfigMap. One
  per file, not one per pod: the job JSON is then the Docker target's for that file, and `kubectl get pod`
  (`Init:1/2`) and `kubectl logs -c download-…` name the file that is slow or failing. A failed download fails
  its init container, which the kubelet retries (resuming the partial file); the server never starts without it.
  Only the init containers mount the models volume read-write; they run as UID/GID 10001 (the serving
  containers' user, no capabilities, so `stack.fetch.job` never needs to change user), and the pod's `fsGroup`
  10001 makes a claim's volume writable by that group (the kubelet ignores `fsGroup` for a hostPath, which must
  be writable by UID or GID 10001 already). `HF_TOKEN` comes from the service's Secret when the stack has an
  `hf_token` secret. Nothing is deleted on `destroy` (`downloads.delete_on_destroy` is the Docker target's).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from stack.deployment import DOWNLOAD_TOKEN_KEY, Deployment, Service
from stack.fetch.http_client import origin
from stack.fetch.job import JOB_ENV, TOKEN_ENV
from stack.render.containers import CONFIG_HASH_LABEL, LITELLM, HealthcheckSpec, UploadSpec
from stack.render.download_job import ENTRYPOINT, JOB_ROOT, fetch_job, job_files, job_json
from stack.render.downloads import DownloadSpec

DEFAULT_NAMESPACE = "local-llm-stack"
PART_OF = "local-llm-stack"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
SERVICE_LABEL = "local-llm-stack/service"
CONFIG_HASH_ANNOTATION = "local-llm-stack/config-hash"
SKIP_AWAIT = "pulumi.com/skipAwait"
GPU_RESOURCE = "nvidia.com/gpu"
MODELS_VOLUME = "models"
TMP_VOLUME = "tmp"
PVC_SLACK = 1.1
"""A new claim is sized to the weights the sizing report counted, plus 10 % for metadata and rounding."""
DOWNLOAD_JOB = "download-job"
"""The ConfigMap (and pod volume) holding `stack.fetch.job`'s modules for the init containers."""
DOWNLOAD_USER = 10001
"""UID, GID and pod `fsGroup` of the download init containers; see the module docstring."""
DOWNLOAD_REQUESTS = {"cpu": "250m", "memory": "256Mi"}
"""The job streams each file to disk in chunks and hashes it as it goes: little CPU, a small buffer."""
_DNS_UNSAFE = re.compile(r"[^a-z0-9]+")
"""A new claim is sized to the weights the sizing report counted, plus 10 % for metadata and rounding."""


@dataclass(frozen=True)
class Security:
    """How a service's container runs. `user`: the UID/GID forced when running as non-root (the images' own
    user is root, so `runAsNonRoot` alone would make the kubelet refuse them)."""

    non_root: bool
    read_only_root: bool
    user: int | None
    why: str


SECURITY: dict[str, Security] = {
    "llama-swap": Security(True, True, 10001, "UID 10001 is upstream's own `-non-root` llama-swap user; llama-swap "
                           "and the llama-server it starts only read /app and /models and write to stdout "
                           "(tests/kubernetes/test_security_context.py runs them so)"),
    "embeddings": Security(True, True, 10001, "llama-server reads the model and listens on 8080 (> 1024); it writes "
                           "nothing to disk without `-hf` downloads, which the stack never uses"),
    LITELLM: Security(False, False, None, "the LiteLLM image runs as root, and at start its proxy rewrites the "
                      "admin UI's files inside its own install tree (proxy_server.py, unless LITELLM_NON_ROOT); "
                      "upstream's non-root variant is a separate image. Capabilities are still dropped and "
                      "escalation is off"),
}
"""Per service kind; pool variants of a service (`llama-swap-<pool>`) take their kind's entry."""

REQUESTS: dict[str, dict[str, str]] = {
    "llama-swap": {"cpu": "1", "memory": "2Gi"},
    "embeddings": {"cpu": "500m", "memory": "1Gi"},
    LITELLM: {"cpu": "250m", "memory": "512Mi"},
}
"""CPU and host-memory requests: weights and KV cache sit in VRAM (the GPU limit); host RAM holds the process,
the page cache of the mmap'ed file is not charged to the request."""


@dataclass(frozen=True)
class SecretSpec:
    """A Secret the component fills: `entries` maps each environment variable to its stack config key."""

    name: str
    service: str
    entries: Mapping[str, str]


@dataclass(frozen=True)
class Manifests:
    namespace: dict[str, Any]
    volume_claim: dict[str, Any] | None
    config_maps: tuple[dict[str, Any], ...]
    secrets: tuple[SecretSpec, ...]
    deployments: tuple[dict[str, Any], ...]
    services: tuple[dict[str, Any], ...]
    network_policies: tuple[dict[str, Any], ...]

    def objects(self) -> list[dict[str, Any]]:
        """Every manifest except the Secrets (whose values only the component has), Namespace first."""
        claim = [self.volume_claim] if self.volume_claim is not None else []
        return [self.namespace, *claim, *self.config_maps, *self.deployments, *self.services, *self.network_policies]


def _kind(key: str) -> str:
    return next((k for k in SECURITY if key == k or key.startswith(f"{k}-")), key)


def _settings(deployment: Deployment) -> Any:
    return getattr(deployment.config, "kubernetes", None)


def namespace_of(deployment: Deployment) -> str:
    return str(getattr(_settings(deployment), "namespace", None) or DEFAULT_NAMESPACE)


def _labels(key: str) -> dict[str, str]:
    return {NAME_LABEL: key, PART_OF_LABEL: PART_OF, SERVICE_LABEL: key}


def _meta(name: str, namespace: str, key: str | None = None, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    meta["labels"] = _labels(key) if key else {PART_OF_LABEL: PART_OF}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def config_map_name(key: str) -> str:
    return f"{key}-config"


def secret_name(key: str) -> str:
    return f"{key}-secrets"


def claim_name(deployment: Deployment) -> str:
    return f"{namespace_of(deployment)}-models"


def upload_key(upload: UploadSpec) -> str:
    """The ConfigMap key of an uploaded file: its base name (one upload per path, so unique per service)."""
    return PurePosixPath(upload.path).name


def exec_command(test: tuple[str, ...]) -> list[str]:
    """A Docker healthcheck `test` as the argv of an exec probe: `CMD a b` runs `a b`, `CMD-SHELL s` runs `sh -c s`."""
    head, *rest = test
    if head == "CMD":
        return list(rest)
    if head == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    raise ValueError(f"healthcheck test must start with CMD or CMD-SHELL, not {head!r}")


def probes(hc: HealthcheckSpec) -> dict[str, dict[str, Any]]:
    """Startup, readiness and liveness probes with the healthcheck's argv and timing.

    The startup probe allows `start_period` plus Docker's `retries` after it, so a container is given as long as
    Docker gives it before it turns unhealthy; readiness and liveness then take over every `interval`.
    """
    base = {"exec": {"command": exec_command(hc.test)}, "periodSeconds": hc.interval_s,
            "timeoutSeconds": hc.timeout_s}
    startup = math.ceil(hc.start_period_s / hc.interval_s) + hc.retries
    return {
        "startupProbe": {**base, "failureThreshold": startup},
        "readinessProbe": {**base, "failureThreshold": hc.retries},
        "livenessProbe": {**base, "failureThreshold": hc.retries},
    }


def _models_volume(deployment: Deployment) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pod volume of the models and, for `new_claim`, the PersistentVolumeClaim to create."""
    choice = getattr(_settings(deployment), "models_volume", None)
    existing = getattr(choice, "existing_claim", None)
    new = getattr(choice, "new_claim", None)
    host = getattr(choice, "host_path", None) or deployment.models.source
    if existing:
        return {"name": MODELS_VOLUME, "persistentVolumeClaim": {"claimName": existing, "readOnly": True}}, None
    if new is not None:
        name = claim_name(deployment)
        size = getattr(new, "size_gib", None) or default_claim_gib(deployment)
        spec: dict[str, Any] = {"accessModes": [access_mode(deployment)],
                                "resources": {"requests": {"storage": f"{size}Gi"}}}
        storage_class = getattr(new, "storage_class", None)
        if storage_class:
            spec["storageClassName"] = storage_class
        claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                 "metadata": _meta(name, namespace_of(deployment), **{SKIP_AWAIT: "true"}), "spec": spec}
        return {"name": MODELS_VOLUME, "persistentVolumeClaim": {"claimName": name, "readOnly": True}}, claim
    return {"name": MODELS_VOLUME, "hostPath": {"path": host, "type": "Directory"}}, None


def access_mode(deployment: Deployment) -> str:
    """`ReadWriteOnce` while every pod that reads the models sits on one pool; pods on several pools (other nodes)
    need `ReadWriteMany` (writable, so the files can be put there through the claim)."""
    placement = getattr(deployment, "placement", None) or {}
    readers = {placement.get(s.key) for s in deployment.services if s.spec.mounts}
    return "ReadWriteMany" if len(readers) > 1 else "ReadWriteOnce"


def default_claim_gib(deployment: Deployment) -> int:
    """GiB for a new models claim: the weights of every sized process (the sizing report's figures), +10 %."""
    total = sum(p.weights_bytes + p.mmproj_bytes for p in deployment.plan.processes.values())
    return max(1, math.ceil(total * PVC_SLACK / 2**30))


def _pool(deployment: Deployment, key: str) -> Any:
    placement = getattr(deployment, "placement", None) or {}
    pool = placement.get(key)
    pools = getattr(_settings(deployment), "pools", None) or {}
    return pools.get(pool) if pool is not None else None


def _scheduling(deployment: Deployment, key: str) -> dict[str, Any]:
    """Node selector, tolerations and runtime class of the pool the service is placed on (none when unplaced)."""
    pool = _pool(deployment, key)
    if pool is None:
        return {}
    out: dict[str, Any] = {}
    selector = getattr(pool, "node_selector", None)
    if selector:
        out["nodeSelector"] = dict(selector)
    tolerations = getattr(pool, "tolerations", None)
    if tolerations:
        out["tolerations"] = [_plain(t) for t in tolerations]
    runtime = getattr(pool, "runtime_class", None)
    if runtime:
        out["runtimeClassName"] = runtime
    return out


def _plain(value: Any) -> dict[str, Any]:
    """A toleration as the API spells it, from a mapping or a pydantic model (None fields left out)."""
    doc = value.model_dump(exclude_none=True, by_alias=True) if hasattr(value, "model_dump") else dict(value)
    names = {"toleration_seconds": "tolerationSeconds"}
    return {names.get(k, k): v for k, v in doc.items() if v is not None}


def _env(svc: Service) -> list[dict[str, Any]]:
    spec = svc.spec
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in spec.env.items()]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name(svc.key), "key": k}}}
            for k in spec.secret_env]
    return sorted(env, key=lambda e: e["name"])


def _container(deployment: Deployment, svc: Service) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The container and the pod volumes it needs besides the models volume."""
    spec, kind = svc.spec, _kind(svc.key)
    security = SECURITY[kind]
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    for m in spec.mounts:
        if m.source != deployment.models.source:
            raise ValueError(f"{svc.key}: no Kubernetes volume for the bind mount {m.source} -> {m.target}")
        mounts.append({"name": MODELS_VOLUME, "mountPath": m.target, "readOnly": m.read_only})
    if spec.uploads:
        volumes.append({"name": "config", "configMap": {"name": config_map_name(svc.key)}})
        mounts += [{"name": "config", "mountPath": u.path, "subPath": upload_key(u), "readOnly": True}
                   for u in spec.uploads]
    if security.read_only_root:
        volumes.append({"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}})
        mounts.append({"name": TMP_VOLUME, "mountPath": "/tmp"})
    container: dict[str, Any] = {"name": svc.key, "image": spec.image}
    if spec.entrypoint:
        container["command"] = list(spec.entrypoint)
    if spec.command:
        container["args"] = list(spec.command)
    container["env"] = _env(svc)
    container["ports"] = [{"name": f"http-{i}" if i else "http", "containerPort": p.internal,
                           "protocol": p.protocol.upper()} for i, p in enumerate(spec.ports)]
    container["volumeMounts"] = mounts
    resources: dict[str, Any] = {"requests": dict(REQUESTS[kind])}
    if spec.gpu:
        resources["limits"] = {GPU_RESOURCE: "1"}
    container["resources"] = resources
    container.update(probes(spec.healthcheck))
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": security.read_only_root,
        "runAsNonRoot": security.non_root,
    }
    if security.user is not None:
        context |= {"runAsUser": security.user, "runAsGroup": security.user}
    container["securityContext"] = context
    return container, volumes


def download_container_name(dl: DownloadSpec) -> str:
    """A DNS-1123 label naming the file (at most 63 characters); the digest keeps names that differ only in case
    or punctuation apart."""
    readable = _DNS_UNSAFE.sub("-", dl.file.lower()).strip("-")[:44].strip("-") or "model"
    return f"download-{readable}-{hashlib.sha256(dl.file.encode()).hexdigest()[:8]}"


def job_config_key(path: str) -> str:
    """A job file's key in the `download-job` ConfigMap (keys hold no `/`): `stack/fetch/job.py` is
    `stack--fetch--job.py`."""
    return path.replace("/", "--")


def _job_files() -> dict[str, tuple[str, bytes]]:
    """ConfigMap key → (path under the mount at `/JOB_ROOT`, content) of every module the job imports."""
    out = {}
    for path, content in job_files().items():
        relative = path.removeprefix(f"{JOB_ROOT}/")
        out[job_config_key(relative)] = (relative, content)
    return out


def download_config_map(namespace: str) -> dict[str, Any]:
    """The job's modules, one key each: the same bytes the Docker target copies into its container."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(DOWNLOAD_JOB, namespace, DOWNLOAD_JOB),
            "data": {key: content.decode() for key, (_, content) in _job_files().items()}}


def _init_container(deployment: Deployment, svc: Service, dl: DownloadSpec) -> dict[str, Any]:
    cfg = deployment.config
    job = fetch_job("fetch", deployment.models.target, [p.to_json() for p in dl.parts],
                    timeout_s=cfg.downloads.stall_timeout_s, token_origin=list(origin(cfg.hf_endpoint)), owner=None)
    env: list[dict[str, Any]] = [{"name": JOB_ENV, "value": job_json(job)}]
    if DOWNLOAD_TOKEN_KEY in deployment.secret_keys:
        env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": secret_name(svc.key), "key": TOKEN_ENV}}})
    return {
        "name": download_container_name(dl),
        "image": cfg.images.downloader,
        "command": list(ENTRYPOINT),
        "workingDir": "/",
        "env": env,
        "volumeMounts": [
            {"name": MODELS_VOLUME, "mountPath": deployment.models.target, "readOnly": False},
            {"name": DOWNLOAD_JOB, "mountPath": f"/{JOB_ROOT}", "readOnly": True},
        ],
        "resources": {"requests": dict(DOWNLOAD_REQUESTS)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": DOWNLOAD_USER,
            "runAsGroup": DOWNLOAD_USER,
        },
    }


def _writable(models: dict[str, Any]) -> dict[str, Any]:
    """The models volume of a pod that downloads: a claim's volume-level `readOnly` would force every mount read-only;
    the serving container's own mount stays read-only."""
    claim = models.get("persistentVolumeClaim")
    if claim is None:
        return models
    return {**models, "persistentVolumeClaim": {k: v for k, v in claim.items() if k != "readOnly"}}


def _deployment(deployment: Deployment, svc: Service, namespace: str, models: dict[str, Any]) -> dict[str, Any]:
    container, volumes = _container(deployment, svc)
    if svc.downloads:
        volumes.insert(0, {"name": DOWNLOAD_JOB, "configMap": {
            "name": DOWNLOAD_JOB, "items": [{"key": k, "path": p} for k, (p, _) in _job_files().items()]}})
        volumes.insert(0, _writable(models))
    elif any(m["name"] == MODELS_VOLUME for m in container["volumeMounts"]):
        volumes.insert(0, models)
    pod: dict[str, Any] = {
        **({"initContainers": [_init_container(deployment, svc, dl) for dl in svc.downloads]} if svc.downloads
           else {}),
        "containers": [container],
        "volumes": volumes,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": svc.spec.stop_timeout_s,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"},
                            **({"fsGroup": DOWNLOAD_USER, "fsGroupChangePolicy": "OnRootMismatch"}
                               if svc.downloads else {})},
        **_scheduling(deployment, svc.key),
    }
    template_meta = {"labels": _labels(svc.key),
                     "annotations": {CONFIG_HASH_ANNOTATION: svc.spec.labels[CONFIG_HASH_LABEL]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(svc.key, namespace, svc.key, **{SKIP_AWAIT: "true"}),
        "spec": {
            "replicas": 1,
            # One GPU each: a rolling update would need a second GPU for the new pod before the old one stops.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {SERVICE_LABEL: svc.key}},
            "template": {"metadata": template_meta, "spec": pod},
        },
    }


def _service(svc: Service, namespace: str) -> dict[str, Any]:
    ports = [{"name": f"http-{i}" if i else "http", "port": p.internal, "targetPort": p.internal,
              "protocol": p.protocol.upper()} for i, p in enumerate(svc.spec.ports)]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(svc.key, namespace, svc.key, **{SKIP_AWAIT: "true"}),
        "spec": {"type": "ClusterIP", "selector": {SERVICE_LABEL: svc.key}, "ports": ports},
    }


def _policy(name: str, namespace: str, selector: dict[str, Any], sources: list[dict[str, Any]],
            ports: Iterable[int]) -> dict[str, Any]:
    rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": p} for p in sorted(set(ports))]}
    if sources:
        rule["from"] = sources
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace),
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": [rule]},
    }


def network_policies(deployment: Deployment, namespace: str) -> tuple[dict[str, Any], ...]:
    """With LiteLLM on, only LiteLLM takes traffic from outside the namespace; every other pod only from pods in
    it. With LiteLLM off, llama-swap and the embedder are the front doors: open on their ports alone."""
    ports = {s.key: [p.internal for p in s.spec.ports] for s in deployment.services}
    if LITELLM not in ports:
        selector = {"matchLabels": {PART_OF_LABEL: PART_OF}}
        return (_policy("front-doors", namespace, selector, [], (p for ps in ports.values() for p in ps)),)
    inner = [k for k in ports if k != LITELLM]
    inside = {"matchExpressions": [{"key": SERVICE_LABEL, "operator": "In", "values": inner}]}
    return (
        _policy("namespace-only", namespace, inside, [{"podSelector": {}}],
                (p for k in inner for p in ports[k])),
        _policy("litellm-ingress", namespace, {"matchLabels": {SERVICE_LABEL: LITELLM}}, [], ports[LITELLM]),
    )


def _secret_entries(deployment: Deployment, svc: Service) -> dict[str, str]:
    """The service's secret variables, plus `HF_TOKEN` (for its init containers only) when it downloads and the
    stack has the token."""
    token = bool(svc.downloads) and DOWNLOAD_TOKEN_KEY in deployment.secret_keys
    return {**svc.spec.secret_env, **({TOKEN_ENV: DOWNLOAD_TOKEN_KEY} if token else {})}


def build_manifests(deployment: Deployment) -> Manifests:
    """Every object the kubernetes target creates for `deployment`, in an order the API server accepts."""
    ns = namespace_of(deployment)
    models, claim = _models_volume(deployment)
    config_maps = tuple(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(config_map_name(s.key), ns, s.key),
         "data": {upload_key(u): u.content for u in s.spec.uploads}}
        for s in deployment.services if s.spec.uploads
    )
    if any(s.downloads for s in deployment.services):
        config_maps += (download_config_map(ns),)
    secrets = tuple(SecretSpec(secret_name(s.key), s.key, _secret_entries(deployment, s))
                    for s in deployment.services if _secret_entries(deployment, s))
    return Manifests(
        namespace={"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {PART_OF_LABEL: PART_OF}}},
        volume_claim=claim,
        config_maps=config_maps,
        secrets=secrets,
        deployments=tuple(_deployment(deployment, s, ns, models) for s in deployment.services),
        services=tuple(_service(s, ns) for s in deployment.services),
        network_policies=network_policies(deployment, ns),
    )


def in_cluster_url(deployment: Deployment, key: str) -> str:
    svc = deployment.service(key)
    return f"http://{key}.{namespace_of(deployment)}.svc.cluster.local:{svc.spec.ports[0].internal}"


def outputs(deployment: Deployment) -> dict[str, Any]:
    """`Deployment.outputs` with the in-cluster URLs (no host ports on Kubernetes) and the Deployments' names."""
    out = deployment.outputs({s.key: s.key for s in deployment.services})
    urls = {s.key: in_cluster_url(deployment, s.key) for s in deployment.services}
    out["endpoints"] = urls
    out |= {f"{k.replace('-', '_')}_url": u for k, u in urls.items()}
    return out
