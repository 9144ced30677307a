"""One rule per kind of value (models/values.py): what each accepts, what it refuses, and that the refusal names the
key and the fix. Also the renderer side of the same guarantees: quoting, `$` escaping, report escaping, ssh argv."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.load import ConfigError, docker_settings, load_stack_file, parse_stack_config
from stack.gguf.sources import SshTarget, ssh_target
from stack.render.yaml_text import dump_yaml
from stack.report import printable
from stack.targets.compose.compose_file import compose_service
from tests.unit.render_samples import deployment

BASE: dict[str, Any] = {
    "models_dir": "/srv/models",
    "models": {"chat": {"file": "Qwen2.5-7B-Instruct-Q4_K_M.gguf", "ctx_size": 8192}},
}


def _raw(**changes: Any) -> dict[str, Any]:
    """BASE with dotted keys set, e.g. `**{"models.chat.description": "x"}`."""
    raw = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return raw


def refusals(**changes: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_stack_config(_raw(**changes), frozenset({"litellm_master_key", "openai_api_key"}))
    return dict(info.value.problems)


def accepts(**changes: Any) -> None:
    parse_stack_config(_raw(**changes), frozenset({"litellm_master_key", "openai_api_key"}))


# --- names ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["1e3", "0o17", "0x1F", "1_000", "true", "null", "y", "09", "a.b-c_d", "x" * 64])
def test_names_yaml_reads_as_other_types_are_valid(name: str) -> None:
    accepts(**{"models.chat.aliases": [name]})


@pytest.mark.parametrize("name", ["", "a b", "-x", ".x", "x" * 65, "a/b", "é", "a\n", "${x}"])
def test_bad_names_are_refused_with_the_rule(name: str) -> None:
    problems = refusals(**{"models.chat.aliases": [name]})
    assert "use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit" in problems[
        "models.chat.aliases[0]"]


def test_a_bad_model_id_is_named_by_its_key() -> None:
    raw = _raw()
    raw["models"]["a b"] = raw["models"].pop("chat")
    with pytest.raises(ConfigError) as info:
        parse_stack_config(raw)
    assert [k for k, _ in info.value.problems] == ["models.a b"]


def test_a_union_member_does_not_leak_into_the_key_path() -> None:
    """`groups` is a mapping or `auto`: a bad group is reported once, under its own key, without pydantic's tags."""
    problems = refusals(groups={"g": {"members": ["chat", "b c"]}})
    assert list(problems) == ["groups.g.members[1]"]
    assert list(refusals(groups="autox")) == ["groups"]


# --- paths ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("file", ["dir/a b #1.gguf", "é中.gguf", "-x.gguf", "it's \"q\".gguf", "a:b.gguf"])
def test_model_files_with_odd_but_harmless_characters_are_valid(file: str) -> None:
    accepts(**{"models.chat.file": file, "models.chat.catalog": "qwen2.5-7b/Q4_K_M"})


@pytest.mark.parametrize(("file", "says"), [
    ("/abs.gguf", "relative to models_dir"),
    ("a/../x.gguf", "without '..'"),
    ("x.bin", "must name a .gguf file"),
    (".gguf", "must name a .gguf file"),
    ("a$HOME.gguf", "docker-compose reads as a variable"),
    ("a\nb.gguf", "control characters (U+000A)"),
    ("a\u2028b.gguf", "control characters (U+2028)"),
    ("x" * 256 + ".gguf", "longer than 255 bytes"),
    ("/".join(["d" * 200] * 21) + ".gguf", "paths are limited to 4096"),
])
def test_bad_model_files_are_refused(file: str, says: str) -> None:
    assert says in refusals(**{"models.chat.file": file})["models.chat.file"]


@pytest.mark.parametrize(("models_dir", "says"), [
    ("models", "absolute path"),
    ("/srv/../etc", "must not contain '..'"),
    ("/", "system directory"),
    ("/var/run/", "system directory"),
    ("//", "system directory"),
    ("/srv/$HOME", "docker-compose reads as a variable"),
    ("/srv/${LLAMA_SWAP_API_KEY}", "docker-compose reads as a variable"),
    ("/srv/\tx", "control characters"),
])
def test_bad_models_dirs_are_refused(models_dir: str, says: str) -> None:
    assert says in refusals(models_dir=models_dir)["models_dir"]


def test_models_dir_may_hold_spaces_hashes_and_unicode() -> None:
    accepts(models_dir="/srv/m o#d: é/x'y")


# --- free text and argv items ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["costs $5 # x: 'y' \"z\" \\", "中文 😀", "$HOME", "1e3", "~"])
def test_descriptions_may_hold_yaml_and_shell_syntax(text: str) -> None:
    accepts(**{"models.chat.description": text})


@pytest.mark.parametrize(("text", "says"), [
    ("${env.LLAMA_SWAP_API_KEY}", "would put the API key there"),
    ("a${PORT}", "expands as a macro"),
    ("one\nVerdict: fits", "control characters (U+000A)"),
    ("tab\there", "control characters (U+0009)"),
    ("rtl \u202e", "control characters (U+202E)"),
    (" padded", "llama-swap trims"),
    ("x" * 1025, "the limit is 1024"),
])
def test_bad_descriptions_are_refused(text: str, says: str) -> None:
    assert says in refusals(**{"models.chat.description": text})["models.chat.description"]


def test_gpu_name_is_free_text() -> None:
    accepts(**{"gpu.name": "NVIDIA RTX $5000 #1"})
    assert "control characters" in refusals(**{"gpu.name": "GPU\nVerdict: fits"})["gpu.name"]


@pytest.mark.parametrize(("arg", "says"), [("a\nb", "control characters"), ("${HOME}", "expands as a macro"),
                                           ("x\r", "control characters")])
def test_argv_items_are_refused_by_index(arg: str, says: str) -> None:
    assert says in refusals(**{"models.chat.extra_args": ["--grammar", arg]})["models.chat.extra_args[1]"]


# --- image references -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [
    "ghcr.io/a/b:v1", "localhost:5000/x:1.0", "[::1]:5000/x:y", "docker.io/library/ubuntu:22.04",
    "x@sha256:" + "a" * 64, "r.io/a__b/c--d:1e3", "ghcr.io/x:true",
])
def test_pinned_image_references_are_valid(image: str) -> None:
    accepts(**{"images.llama_swap": image})


@pytest.mark.parametrize(("image", "says"), [
    ("ghcr.io/x:latest", "not pinned"),
    ("ghcr.io/x", "not pinned"),
    ("ghcr.io/Upper/x:v1", "not an image reference"),
    ("ghcr.io/a b:v1", "not an image reference"),
    ("ghcr.io/$X:v1", "not an image reference"),
    ("ghcr.io/a:v1\n", "not an image reference"),
    ("ghcr.io/a@sha256:abc", "not an image reference"),
    ("-x:v1", "not an image reference"),
])
def test_bad_image_references_are_refused(image: str, says: str) -> None:
    assert says in refusals(**{"images.litellm": image})["images.litellm"]


# --- URLs -----------------------------------------------------------------------------------------------------------

def _fallback(api_base: str) -> dict[str, Any]:
    return {"litellm.enabled": True, "litellm.fallbacks": [
        {"name": "cloud", "model": "openai/gpt-4o-mini", "api_key_secret": "openai_api_key", "api_base": api_base}]}


@pytest.mark.parametrize("url", ["https://api.example.com/v1", "http://127.0.0.1:8080", "https://[::1]:443/x?y=1"])
def test_api_base_urls_are_valid(url: str) -> None:
    accepts(**_fallback(url))


@pytest.mark.parametrize(("url", "says"), [
    ("ftp://x.example/v1", "http:// or https://"),
    ("https://", "http:// or https://"),
    ("https://x.example:99999/v1", "not a valid URL"),
    ("https://a b.example/", "whitespace"),
])
def test_bad_api_base_urls_are_refused(url: str, says: str) -> None:
    assert says in refusals(**_fallback(url))["litellm.fallbacks[0].api_base"]


@pytest.mark.parametrize("url", ["https://user:sk-SECRET@api.example.com/v1", "https://sk-SECRET@api.example.com"])
def test_credentials_in_api_base_are_refused_without_being_repeated(url: str) -> None:
    message = refusals(**_fallback(url))["litellm.fallbacks[0].api_base"]
    assert "api_key_secret" in message and "plain text" in message
    assert "SECRET" not in message


# --- strict scalars -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [True, "2048", 2048.0])
def test_an_integer_key_takes_only_an_integer(value: Any) -> None:
    message = refusals(**{"models.chat.ctx_size": value})["models.chat.ctx_size"]
    assert message.startswith("expected a whole number") and repr(value) in message


@pytest.mark.parametrize("value", ["yes", "true", 1])
def test_a_nested_boolean_takes_only_a_boolean(value: Any) -> None:
    assert "expected true or false" in refusals(**{"models.chat.jinja": value})["models.chat.jinja"]


def test_a_top_level_boolean_takes_pulumis_string_form() -> None:
    """`pulumi config set expose_unauthenticated true` stores "true"; the Pulumi program receives it as that string."""
    for value in (True, "true"):
        accepts(expose_unauthenticated=value)
    assert "expected true or false" in refusals(expose_unauthenticated="yes")["expose_unauthenticated"]


def test_a_float_key_takes_integers_and_floats_not_booleans() -> None:
    arch = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_head_kv": 4, "head_dim": 16, "n_ff": 128, "n_vocab": 10}
    for weights in (100, 100.5):
        accepts(**{"models.chat.arch": {**arch, "weights_mib": weights}})
    assert "expected a number" in refusals(**{"models.chat.arch": {**arch, "weights_mib": True}})[
        "models.chat.arch.weights_mib"]


def test_flash_attn_takes_yaml_1_1_on_and_off() -> None:
    cfg = parse_stack_config(_raw(**{"models.chat.flash_attn": False}))
    assert cfg.models["chat"].flash_attn == "off"


def test_ipv6_scope_ids_are_refused() -> None:
    assert "not an IP address" in refusals(bind_address="fe80::1%eth0 $X")["bind_address"]


def test_token_keys_say_their_rule() -> None:
    assert "1 to 63 letters" in refusals(**{"network.name": "-x"})["network.name"]
    assert "all or device=" in refusals(**{"gpu.device": "device=0,1"})["gpu.device"]


# --- docker:host and docker:sshOpts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "says"), [
    ("ssh://-oProxyCommand=touch /tmp/x", "whitespace"),
    ("ssh://-oProxyCommand=x", "no valid host name"),
    ("ssh://-l@gpu-box", "not a valid login name"),
    ("ssh://u@gpu-box:99999", "port from 1 to 65535"),
    ("ssh://u@gpu-box:0", "port from 1 to 65535"),
    ("ssh://u:pw@gpu-box", "a password in docker:host"),
    ("ssh://u@gpu-box\n", "must be a string"),
])
def test_bad_ssh_destinations_are_refused(host: str, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        docker_settings(host, None)
    ((key, message),) = info.value.problems
    assert key == "docker:host" and says in message


@pytest.mark.parametrize(("opts", "index"), [
    (["-o", "ProxyCommand=touch /tmp/pwned"], 1),
    (["-oProxyCommand=x"], 0),
    (["-o", "proxycommand x"], 1),
    (["-o", "LocalCommand=x"], 1),
    (["-oPermitLocalCommand=yes"], 0),
    (["-o", "KnownHostsCommand=x"], 1),
    (["-o", "ProxyJump=jump"], 1),
    (["-o", "Include /tmp/cfg"], 1),
    (["-o", "Match exec x"], 1),
    (["-o", "PKCS11Provider=/tmp/x.so"], 1),
    (["-i", "k", "-F", "cfg"], 2),
    (["-J", "jump"], 0),
    (["-o"], 0),
])
def test_ssh_options_outside_the_allow_list_are_refused(opts: list[str], index: int) -> None:
    with pytest.raises(ConfigError) as info:
        docker_settings("ssh://u@gpu-box", opts)
    assert f"docker:sshOpts[{index}]" in dict(info.value.problems)


def test_allowed_ssh_options_pass_through() -> None:
    opts = ["-i", "~/.ssh/id_ed25519", "-o", "StrictHostKeyChecking=no", "-oConnectTimeout=5", "-4", "-i/k"]
    assert docker_settings("ssh://ops@gpu-box:2222", opts) == ("ssh://ops@gpu-box:2222", tuple(opts))


def test_ssh_argv_ends_options_before_the_destination() -> None:
    argv = SshTarget("ops@gpu-box", 22, ("-4",)).argv("head -c 1 -- x")
    assert argv[argv.index("--") + 1:] == ["ops@gpu-box", "head -c 1 -- x"]


def test_ssh_target_checks_what_it_is_given() -> None:
    with pytest.raises(ConfigError):
        ssh_target("ssh://u@gpu-box", ["-oProxyCommand=x"])


# --- renderers ------------------------------------------------------------------------------------------------------

AMBIGUOUS = ["1e3", "0o17", "0x1F", "1_000", "09", "-.5", "1.e5", "+1", "true", "False", "null", "~", "y", "N",
             "on", ".inf", "-.Inf", ".nan", "2024-01-01", "1:20", "<<", "=", "0b101", "-0o7"]


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_strings_any_yaml_reader_takes_for_another_type_are_quoted(value: str) -> None:
    text = dump_yaml({"models": {value: {"aliases": [value], "description": value}}}, "h")
    body = text.split("\n", 1)[1]
    assert f"\n  {value}:" not in "\n" + body and f"- {value}\n" not in body
    assert yaml.safe_load(text) == {"models": {value: {"aliases": [value], "description": value}}}


def test_plain_strings_stay_plain() -> None:
    """No quote where none is needed: rendered files for existing stacks keep their bytes."""
    values = ["chat", "/app/llama-server", "0.0.0.0:8080", "-config", "7b", "q8_0", "http://127.0.0.1:${PORT}"]
    text = dump_yaml({"v": values}, "h")
    assert text == "# h\nv:\n" + "".join(f"- {v}\n" for v in values)


def test_compose_escapes_dollar_in_every_value() -> None:
    spec = deployment(parse_stack_config(_raw()), secret_keys=frozenset()).specs[0]
    spec = type(spec)(**{**spec.__dict__, "image": "img:$X", "name": "n$X",
                         "mounts": (type(spec.mounts[0])("/m$X", "/models$X"),)})
    service = compose_service(spec, "f")
    assert service["image"] == "img:$$X" and service["container_name"] == "n$$X"
    assert service["volumes"][0]["source"] == "/m$$X" and service["volumes"][0]["target"] == "/models$$X"


def test_the_report_escapes_control_characters() -> None:
    assert printable("GPU: x\nVerdict: fits \u202e\t") == "GPU: x\\nVerdict: fits \\u202e\\t"
    assert printable("plain é 中") == "plain é 中"


# --- reading the stack file as Pulumi does ------------------------------------------------------------------------

def _load(tmp_path: Path, body: str) -> dict[str, str]:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  local-llm-stack:models_dir: /srv/models\n" + body, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_stack_file(path)
    return dict(info.value.problems)


MODEL = "  local-llm-stack:models:\n    chat:\n      file: Qwen2.5-7B-Instruct-Q4_K_M.gguf\n      ctx_size: 4096\n"


@pytest.mark.parametrize("alias", ["1e3", "0o17", "09", "-.5", "1.e5"])
def test_unquoted_yaml_1_2_numbers_are_numbers_as_for_pulumi(tmp_path: Path, alias: str) -> None:
    """PyYAML would keep `1e3` as text; Pulumi's reader (Go yaml.v3) deploys the number 1000.0."""
    message = _load(tmp_path, MODEL + f"      aliases: [{alias}]\n")["models.chat.aliases[0]"]
    assert "expected text; quote it" in message


def test_yaml_1_1_words_are_text_as_for_pulumi(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  local-llm-stack:models_dir: /srv/models\n" + MODEL
                    + "      flash_attn: off\n      aliases: [yes, y, on]\n", encoding="utf-8")
    chat = load_stack_file(path).config.models["chat"]
    assert chat.flash_attn == "off" and chat.aliases == ["yes", "y", "on"]
    assert "expected true or false" in _load(tmp_path, MODEL + "      jinja: yes\n")["models.chat.jinja"]
    assert "expected a whole number" in _load(tmp_path, MODEL + "      ttl: 1:30\n")["models.chat.ttl"]


def test_merge_keys_work_and_duplicates_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config:\n  local-llm-stack:models_dir: /srv/models\n  local-llm-stack:models:\n"
                    "    base: &b {file: Qwen2.5-7B-Instruct-Q4_K_M.gguf, ctx_size: 4096}\n"
                    "    chat: {<<: *b, ctx_size: 8192}\n", encoding="utf-8")
    assert load_stack_file(path).config.models["chat"].ctx_size == 8192
    problems = _load(tmp_path, MODEL + "  models_dir: /srv/other\n")
    assert problems["models_dir"] == "set twice, as 'local-llm-stack:models_dir' and 'models_dir'; keep one"


@pytest.mark.parametrize("key", ["true", "null", "0x1F", "1.5"])
def test_a_model_id_yaml_reads_as_another_type_is_named_at_its_mapping(tmp_path: Path, key: str) -> None:
    body = f"  local-llm-stack:models:\n    {key}: {{file: a.gguf, ctx_size: 4096}}\n"
    message = _load(tmp_path, body)["models"]
    assert "not a name; quote it" in message


def test_a_refused_alias_bomb_is_shown_bounded(tmp_path: Path) -> None:
    lines = ["  local-llm-stack:l0: &b0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  local-llm-stack:l{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]" for i in range(1, 10)]
    message = _load(tmp_path, "\n".join(lines) + "\n" + MODEL + "      description: *b9\n")["models.chat.description"]
    assert len(message) < 300


def test_arch_blocks_share_the_gguf_readers_bounds() -> None:
    from models.config import ARCH_LIMITS
    from stack.arch import gguf_rules as arch_gguf
    from stack.gguf import header as gguf_header

    assert ARCH_LIMITS == {"n_layer": arch_gguf.MAX_LAYERS, "n_embd": arch_gguf.MAX_EMBD, "n_head": arch_gguf.MAX_HEADS,
                           "head_dim": arch_gguf.MAX_HEAD_DIM, "n_ff": arch_gguf.MAX_FF,
                           "n_vocab": gguf_header.MAX_ARRAY_ITEMS, "n_ctx": arch_gguf.MAX_CONTEXT}
    arch = {"n_layer": 10**8, "n_embd": 64, "n_head": 4, "n_head_kv": 4, "head_dim": 16, "n_ff": 128, "n_vocab": 10,
            "weights_mib": 10}
    assert "less than or equal to 512" in refusals(**{"models.chat.arch": arch})["models.chat.arch.n_layer"]


def test_a_missing_key_says_to_add_it() -> None:
    raw = _raw()
    del raw["models"]["chat"]["ctx_size"]
    with pytest.raises(ConfigError) as info:
        parse_stack_config(raw)
    assert dict(info.value.problems)["models.chat.ctx_size"].startswith("required key is missing; add it")
