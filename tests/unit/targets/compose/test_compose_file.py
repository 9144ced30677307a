"""`python -m stack compose`: the compose mapping of each container spec, the uploads' files, and the CLI gate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.local import write_stack_file
from models.config import StackConfig
from stack.cli import main
from stack.render.containers import (
    EMBEDDINGS,
    LITELLM,
    LLAMA_SWAP,
    ContainerSpec,
    UploadSpec,
)
from stack.targets.compose.compose_file import (
    compose_files,
    compose_project,
    compose_service,
    escape,
    files_dir_for,
    render_compose,
    secret_variable,
    upload_source,
    with_cpu_profile,
)
from tests.unit.helpers import REPO
from tests.unit.render_samples import ALL_SECRETS, config, deployment, raw

FILES = "docker-compose.files"


def _specs(cfg: StackConfig, api_key_enabled: bool = True) -> dict[str, ContainerSpec]:
    secret_keys = ALL_SECRETS if api_key_enabled else ALL_SECRETS - {"api_key"}
    return {s.service: s for s in deployment(cfg, secret_keys=secret_keys).specs}


def _services(cfg: StackConfig, api_key_enabled: bool = True) -> dict[str, dict[str, Any]]:
    return {k: compose_service(s, FILES) for k, s in _specs(cfg, api_key_enabled).items()}


def test_embedding_service_maps_every_field_of_its_spec() -> None:
    spec = _specs(config())[EMBEDDINGS]
    svc = compose_service(spec, FILES)
    assert svc == {
        "container_name": "llm-embeddings",
        "image": spec.image,
        "entrypoint": list(spec.entrypoint),
        "environment": {
            "LLAMA_API_KEY": "${LLAMA_SWAP_API_KEY:?set LLAMA_SWAP_API_KEY to the api_key secret}",
            "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
        },
        "ports": ["127.0.0.1:8081:8080/tcp"],
        "volumes": [{"type": "bind", "source": "/srv/models", "target": "/models", "read_only": True}],
        "networks": {"llm": {"aliases": ["embeddings"]}},
        "healthcheck": {
            "test": ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health"],
            "interval": "10s", "timeout": "5s", "retries": 3, "start_period": "5m0s",
        },
        "labels": dict(spec.labels),
        "restart": "unless-stopped",
        "logging": {"driver": "json-file", "options": {"max-file": "3", "max-size": "50m"}},
        "stop_grace_period": "30s",
        "deploy": {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]},
        ]}}},
    }


def test_litellm_keeps_the_image_entrypoint_and_mounts_its_config_file() -> None:
    spec = _specs(config())[LITELLM]
    svc = compose_service(spec, FILES)
    assert "entrypoint" not in svc  # the image's prod_entrypoint.sh, as with Pulumi
    assert svc["command"] == list(spec.command)
    assert svc["volumes"] == [
        {"type": "bind", "source": f"./{FILES}/litellm/app/config.yaml", "target": "/app/config.yaml",
         "read_only": True},
    ]
    assert "deploy" not in svc and "NVIDIA_DRIVER_CAPABILITIES" not in svc["environment"]
    assert svc["environment"]["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    secrets = {k: v for k, v in svc["environment"].items() if v.startswith("${")}
    assert secrets == {
        "LITELLM_MASTER_KEY": "${LITELLM_MASTER_KEY:?set LITELLM_MASTER_KEY to the litellm_master_key secret}",
        "LLAMA_SWAP_API_KEY": "${LLAMA_SWAP_API_KEY:?set LLAMA_SWAP_API_KEY to the api_key secret}",
        "OPENAI_API_KEY": "${OPENAI_API_KEY:?set OPENAI_API_KEY to the openai_api_key secret}",
    }
    assert svc["stop_grace_period"] == "30s" and svc["healthcheck"]["interval"] == "15s"


def test_llama_swap_uploads_its_config_beside_the_models_mount() -> None:
    svc = _services(config())[LLAMA_SWAP]
    assert [(v["source"], v["target"], v["read_only"]) for v in svc["volumes"]] == [
        ("/srv/models", "/models", True),
        (f"./{FILES}/llama-swap/app/config.yaml", "/app/config.yaml", True),
    ]
    assert svc["stop_grace_period"] == "45s"


def test_every_upload_is_written_where_its_service_mounts_it() -> None:
    specs = list(_specs(config()).values())
    files = compose_files(specs, FILES)
    mounted = {
        v["source"].removeprefix("./"): (spec.service, v["target"])
        for spec in specs for v in compose_service(spec, FILES)["volumes"] if v["source"].startswith("./")
    }
    assert set(files) == set(mounted)
    for spec in specs:
        for upload in spec.uploads:
            path = upload_source(spec, upload, FILES).removeprefix("./")
            assert files[path] == upload.content
            assert mounted[path] == (spec.service, upload.path)


def test_upload_paths_stay_inside_the_files_directory() -> None:
    spec = _specs(config())[LITELLM]
    moved = UploadSpec("/etc/litellm/c.yaml", "")
    assert upload_source(spec, moved, "x.files") == "./x.files/litellm/etc/litellm/c.yaml"
    for bad in ("app/config.yaml", "/app/../../etc/passwd"):
        with pytest.raises(ValueError, match="absolute and without"):
            upload_source(spec, UploadSpec(bad, ""), FILES)
    assert files_dir_for("/srv/stack/docker-compose.yml") == "docker-compose.files"
    assert files_dir_for("llm.yaml") == "llm.files"


def test_cpu_profile_requests_no_gpu() -> None:
    for cfg in (config(gpu={"profile": "cpu"}), with_cpu_profile(config())):
        services = _services(cfg)
        assert not any("deploy" in s for s in services.values())
        assert not any("NVIDIA_DRIVER_CAPABILITIES" in s["environment"] for s in services.values())
        entry = services[EMBEDDINGS]["entrypoint"]
        assert entry[entry.index("-ngl") + 1] == "0"


def test_gpu_device_id_becomes_device_ids() -> None:
    svc = _services(config(gpu={"profile": "rtx-4090", "device": "device=GPU-3a23c669"}))[LLAMA_SWAP]
    assert svc["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "device_ids": ["GPU-3a23c669"], "capabilities": ["gpu"]}
    ]


def test_ports_follow_bind_address_including_ipv6() -> None:
    assert _services(config(bind_address="0.0.0.0"))[LITELLM]["ports"] == ["0.0.0.0:4000:4000/tcp"]
    assert _services(config(bind_address="::1"))[EMBEDDINGS]["ports"] == ["[::1]:8081:8080/tcp"]


def test_dollar_signs_are_literal_and_secrets_are_references() -> None:
    spec = _specs(config())[EMBEDDINGS]
    odd = dataclasses.replace(
        spec, env={"PLAIN": "a$b${c}"}, entrypoint=(*spec.entrypoint, "--x", "$HOME"), labels={"l": "$v"}
    )
    svc = compose_service(odd, FILES)
    assert svc["environment"]["PLAIN"] == "a$$b$${c}"
    assert svc["entrypoint"][-1] == "$$HOME"
    assert svc["labels"] == {"l": "$$v"}
    assert escape("no dollars") == "no dollars"
    assert svc["environment"]["LLAMA_API_KEY"].startswith("${LLAMA_SWAP_API_KEY:?")


def test_without_api_key_no_secret_reaches_llama_servers() -> None:
    services = _services(config(), api_key_enabled=False)
    assert not any(v.startswith("${") for v in services[EMBEDDINGS]["environment"].values())
    assert "LLAMA_SWAP_API_KEY" not in services[LITELLM]["environment"]


def test_project_network_and_start_order() -> None:
    doc = compose_project(deployment(network={"name": "ai"}), FILES)
    assert list(doc["services"]) == [LLAMA_SWAP, EMBEDDINGS, LITELLM]
    assert doc["networks"] == {"ai": {"name": "ai", "driver": "bridge", "labels": {"local-llm-stack.managed": "true"}}}
    assert all(list(s["networks"]) == ["ai"] for s in doc["services"].values())
    assert doc["services"][LITELLM]["depends_on"] == {
        LLAMA_SWAP: {"condition": "service_healthy"}, EMBEDDINGS: {"condition": "service_healthy"},
    }
    assert not any("depends_on" in doc["services"][k] for k in (LLAMA_SWAP, EMBEDDINGS))


def test_rendered_file_is_the_project_and_names_its_secret_variables() -> None:
    dep = deployment()
    specs = dep.specs
    out = render_compose(dep, "docker-compose.yml")
    assert yaml.safe_load(out.text) == compose_project(dep, FILES)
    assert out.files_dir == FILES and set(out.files) == set(compose_files(specs, FILES))
    assert out.secret_variables == ("LITELLM_MASTER_KEY", "LLAMA_SWAP_API_KEY", "OPENAI_API_KEY")
    assert out.text.startswith("# Generated by `python -m stack compose`")
    assert "version:" not in out.text  # the Compose Specification: docker-compose >= 1.27 and Compose v2


def test_secret_variables() -> None:
    assert secret_variable("api_key") == "LLAMA_SWAP_API_KEY"
    assert secret_variable("litellm_master_key") == "LITELLM_MASTER_KEY"
    assert secret_variable("anthropic_key") == "ANTHROPIC_KEY"
    dep = deployment()
    litellm = dep.service(LITELLM)
    clash = dataclasses.replace(litellm.spec, secret_env={"A": "api_key", "B": "llama_swap_api_key"})
    clashing = dataclasses.replace(dep, services=(dataclasses.replace(litellm, spec=clash, after=()),))
    with pytest.raises(ValueError, match="LLAMA_SWAP_API_KEY"):
        render_compose(clashing, "c.yml")


def test_a_changed_model_setting_changes_only_its_service() -> None:
    before = _services(config())
    emb = {**raw()["embeddings"], "ctx_size": 4096}
    after = _services(config(embeddings=emb))
    assert {k for k in before if before[k] != after[k]} == {EMBEDDINGS}
    models = raw()["models"]
    models["chat"] = {**models["chat"], "ctx_size": 4096}
    after = _services(config(models=models))
    # llama-swap's config file changes (and with it its config-hash label); LiteLLM's does not.
    assert {k for k in before if before[k] != after[k]} == {LLAMA_SWAP}


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_compose_writes_the_file_and_config_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "deploy" / "stack.yml"
    assert main(["compose", "--config", str(REPO / "Pulumi.dev.yaml"), "--out", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert list(doc["services"]) == [LLAMA_SWAP, EMBEDDINGS]
    assert doc["services"][EMBEDDINGS]["deploy"]["resources"]["reservations"]["devices"][0]["count"] == "all"
    config_file = tmp_path / "deploy" / "stack.files" / "llama-swap" / "app" / "config.yaml"
    assert "healthCheckTimeout: 300" in config_file.read_text()
    outputs = json.loads((tmp_path / "deploy" / "stack.outputs.json").read_text())
    assert outputs["endpoints"] == {"llama-swap": "http://127.0.0.1:9292", "embeddings": "http://127.0.0.1:8081"}
    assert outputs["container_names"] == {"llama-swap": "llm-llama-swap", "embeddings": "llm-embeddings"}
    assert outputs["auth_required"] == {"llama-swap": False, "embeddings": False}
    assert outputs["sizing"]["fits"] is True
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "docker-compose -f" in printed and "--targets=" in printed
    inode = config_file.stat().st_ino
    assert main(["compose", "--config", str(REPO / "Pulumi.dev.yaml"), "--out", str(out), "--cpu"]) == 0
    assert config_file.stat().st_ino != inode  # -ngl 0 in every cmd: replaced, not edited in place
    assert "-ngl 0" in config_file.read_text()
    assert not any("deploy" in s for s in yaml.safe_load(out.read_text())["services"].values())
    inode = config_file.stat().st_ino
    assert main(["compose", "--config", str(REPO / "Pulumi.dev.yaml"), "--out", str(out), "--cpu"]) == 0
    assert config_file.stat().st_ino == inode  # unchanged: left alone


@pytest.mark.parametrize(("models", "litellm", "key"), [
    ({"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": "lots"}}, False, "models.chat.ctx_size"),
    ({"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 2048}}, True, "litellm_master_key"),
])
def test_compose_refuses_an_invalid_config_like_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], models: dict[str, Any], litellm: bool, key: str
) -> None:
    f = write_stack_file(tmp_path / "Pulumi.bad.yaml", {
        "models_dir": "/srv/models", "models": models, "litellm": {"enabled": litellm},
    })
    assert main(["plan", "--config", str(f)]) == 1
    plan_err = capsys.readouterr().err
    out = tmp_path / "c.yml"
    assert main(["compose", "--config", str(f), "--out", str(out)]) == 1
    assert capsys.readouterr().err == plan_err
    assert f"  {key}: " in plan_err
    assert not out.exists()


def test_compose_refuses_an_over_budget_config_like_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = {"file": "Qwen2.5-14B-Instruct-Q4_K_M.gguf", "ctx_size": 131072, "cache_type_k": "f16"}
    f = write_stack_file(tmp_path / "Pulumi.big.yaml", {"models_dir": "/srv/models", "models": {"gen": big}})
    assert main(["plan", "--config", str(f)]) == 2
    capsys.readouterr()
    out = tmp_path / "c.yml"
    assert main(["compose", "--config", str(f), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fix: set models.gen.ctx_size:" in err and "nothing written" in err
    assert not out.exists() and not (tmp_path / "c.files").exists()
    # The cpu profile has no VRAM gate.
    assert main(["compose", "--config", str(f), "--out", str(out), "--cpu"]) == 0
    assert out.exists()
