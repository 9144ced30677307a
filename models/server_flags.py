"""Which llama-server options `extra_args` may carry: a reviewed class and reason for every option of the build.

The option list is generated from the pinned binary (`models/server_options.py`); the classes below are reviewed
by hand against llama.cpp's common/arg.cpp and tools/server of that build:

* `managed`: the stack sets it from a typed key; the message names the key.
* `memory`: changes device memory in a way the sizing gate does not model (tensor placement, adapters, devices,
  speculative modes, image-encoder batches); refused, since the gate would prove a fit for another process.
* `unsupported`: makes llama-server exit at start (help, removed options), is a no-op under llama-swap (router
  mode), breaks the health check llama-swap and compose rely on, or hands API clients the host's files and shell.
* `allowed`: sampling defaults, chat templates, reasoning, logging, threads, timeouts, endpoints, host-RAM caches.

The argv walk follows llama.cpp's parser (common_params_parse_ex): every item must be an exact option name (after
`_` -> `-` in `--` names), so `--flag=value` and glued short values such as `-ngl99` make llama-server exit; a
value-taking option consumes the next item whatever it looks like (`--temp -1`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from models.server_help import Option
from models.server_options import BUILD, OPTIONS
from models.values import control_chars


class FlagClass(StrEnum):
    managed = "managed"
    memory = "memory"
    unsupported = "unsupported"
    allowed = "allowed"


M, X, U, A = FlagClass.managed, FlagClass.memory, FlagClass.unsupported, FlagClass.allowed

_DOWNLOAD = "the stack loads GGUF files from models_dir and never downloads; set file (and draft/mmproj) instead"
_PRESET = "a preset that downloads a model and sets ctx, parallel, batch and port; use file and the typed keys"
_DRAFT = "speculative decoding is sized only as models.<id>.draft configures it (a draft model, n_max tokens)"
_CPU = "CPU threads and scheduling; no memory effect"
_SAMPLING = "sampling default for requests that do not set it"
_HOST_RAM = "host RAM only (server-side copies of slot state); the gate sizes device memory"
_EXITS = "makes llama-server print and exit instead of serving"
_REMOVED = "removed in this build; llama-server exits with 'the argument has been removed'"
_ROUTER = "router-mode option, ignored when a model is given with -m (llama-swap does the routing)"
_AGENT = "gives API clients the server's files, shell or network (llama.cpp: do not enable in untrusted environments)"

CLASSIFICATION: dict[str, tuple[FlagClass, str]] = {
    "--help": (U, _EXITS),
    "--version": (U, _EXITS),
    "--cache-list": (U, _EXITS),
    "--completion-bash": (U, _EXITS),
    "--threads": (A, _CPU),
    "--threads-batch": (A, _CPU),
    "--cpu-mask": (A, _CPU),
    "--cpu-range": (A, _CPU),
    "--cpu-strict": (A, _CPU),
    "--prio": (A, _CPU),
    "--poll": (A, _CPU),
    "--cpu-mask-batch": (A, _CPU),
    "--cpu-range-batch": (A, _CPU),
    "--cpu-strict-batch": (A, _CPU),
    "--prio-batch": (A, _CPU),
    "--poll-batch": (A, _CPU),
    "--ctx-size": (M, "set ctx_size"),
    "--predict": (A, "default generation length per request"),
    "--batch-size": (M, "set batch"),
    "--ubatch-size": (M, "set ubatch"),
    "--keep": (A, "tokens kept on context shift; no memory effect"),
    "--swa-full": (M, "set swa_full"),
    "--flash-attn": (M, "set flash_attn"),
    "--perf": (A, "timing output"),
    "--escape": (A, "escape processing of prompts"),
    "--rope-scaling": (A, "RoPE frequencies only; the KV cache is sized by ctx_size, not by the scaling"),
    "--rope-scale": (A, "RoPE frequencies only; the KV cache is sized by ctx_size, not by the scaling"),
    "--rope-freq-base": (A, "RoPE frequencies only; the KV cache is sized by ctx_size, not by the scaling"),
    "--rope-freq-scale": (A, "RoPE frequencies only; the KV cache is sized by ctx_size, not by the scaling"),
    "--yarn-orig-ctx": (A, "YaRN parameter; the KV cache is sized by ctx_size"),
    "--yarn-ext-factor": (A, "YaRN parameter; the KV cache is sized by ctx_size"),
    "--yarn-attn-factor": (A, "YaRN parameter; the KV cache is sized by ctx_size"),
    "--yarn-beta-slow": (A, "YaRN parameter; the KV cache is sized by ctx_size"),
    "--yarn-beta-fast": (A, "YaRN parameter; the KV cache is sized by ctx_size"),
    "--kv-offload": (X, "-nkvo keeps the KV cache in host memory instead of the GPU"),
    "--repack": (A, "CPU weight layout (CPU_REPACK buffers are host-only)"),
    "--no-host": (A, "picks host buffer types for CPU weights; host memory only"),
    "--cache-type-k": (M, "set cache_type_k"),
    "--cache-type-v": (M, "set cache_type_v"),
    "--defrag-thold": (A, "deprecated no-op"),
    "--rpc": (X, "offloads layers to remote RPC devices the gate does not see"),
    "--load-mode": (A, "mmap/mlock/direct I/O change host residency; the same weights reach the GPU"),
    "--lazy-mode": (A, "reads CPU-side per-layer embeddings on demand; host memory only"),
    "--numa": (A, _CPU),
    "--device": (X, "chooses the devices weights and KV go to"),
    "--list-devices": (U, _EXITS),
    "--override-tensor": (X, "moves tensors between GPU and host buffers"),
    "--cpu-moe": (X, "keeps MoE expert weights in host memory"),
    "--n-cpu-moe": (X, "keeps MoE expert weights of the first N layers in host memory"),
    "--n-cpu-ffn": (X, "keeps FFN weights of the first N layers in host memory"),
    "--gpu-layers": (M, "set n_gpu_layers"),
    "--split-mode": (X, "splits weights and KV across GPUs"),
    "--tensor-split": (X, "splits weights across GPUs"),
    "--main-gpu": (X, "chooses the GPU for the model, intermediate results and KV"),
    "--fit": (M, "the stack passes --fit off: the sizing gate (gpu.*) replaces llama.cpp's fitter"),
    "--fit-target": (M, "the stack passes --fit off: the sizing gate (gpu.reserve_mib) replaces llama.cpp's fitter"),
    "--fit-ctx": (M, "the stack passes --fit off; set ctx_size"),
    "--check-tensors": (A, "validates tensor data at load on the CPU"),
    "--override-kv": (X, "overrides GGUF metadata (layers, heads, context) the gate read from the header"),
    "--op-offload": (X, "changes the GPU compute buffer when layers stay on the CPU"),
    "--lora": (X, "loads LoRA adapter weights onto the GPU"),
    "--lora-scaled": (X, "loads LoRA adapter weights onto the GPU"),
    "--control-vector": (X, "loads control vector tensors onto the GPU"),
    "--control-vector-scaled": (X, "loads control vector tensors onto the GPU"),
    "--control-vector-layer-range": (X, "applies control vectors, which are refused"),
    "--model": (M, "set file (relative to models_dir)"),
    "--model-url": (M, _DOWNLOAD),
    "--docker-repo": (M, _DOWNLOAD),
    "--hf-repo": (M, _DOWNLOAD),
    "--hf-file": (M, _DOWNLOAD),
    "--hf-token": (M, _DOWNLOAD),
    "--log-disable": (A, "logging"),
    "--log-file": (A, "logging"),
    "--log-jsonl": (A, "logging"),
    "--log-colors": (A, "logging"),
    "--verbose": (A, "logging"),
    "--offline": (A, "forbids downloads, which the stack never does"),
    "--verbosity": (A, "logging"),
    "--log-prefix": (A, "logging"),
    "--log-timestamps": (A, "logging"),
    "--spec-draft-type-k": (M, "set draft.cache_type_k"),
    "--spec-draft-type-v": (M, "set draft.cache_type_v"),
    "--samplers": (A, _SAMPLING),
    "--seed": (A, _SAMPLING),
    "--sampler-seq": (A, _SAMPLING),
    "--ignore-eos": (A, _SAMPLING),
    "--temp": (A, _SAMPLING),
    "--top-k": (A, _SAMPLING),
    "--top-p": (A, _SAMPLING),
    "--min-p": (A, _SAMPLING),
    "--top-nsigma": (A, _SAMPLING),
    "--xtc-probability": (A, _SAMPLING),
    "--xtc-threshold": (A, _SAMPLING),
    "--typical": (A, _SAMPLING),
    "--repeat-last-n": (A, _SAMPLING),
    "--repeat-penalty": (A, _SAMPLING),
    "--presence-penalty": (A, _SAMPLING),
    "--frequency-penalty": (A, _SAMPLING),
    "--dry-multiplier": (A, _SAMPLING),
    "--dry-base": (A, _SAMPLING),
    "--dry-allowed-length": (A, _SAMPLING),
    "--dry-penalty-last-n": (A, _SAMPLING),
    "--dry-sequence-breaker": (A, _SAMPLING),
    "--adaptive-target": (A, _SAMPLING),
    "--adaptive-decay": (A, _SAMPLING),
    "--dynatemp-range": (A, _SAMPLING),
    "--dynatemp-exp": (A, _SAMPLING),
    "--mirostat": (A, _SAMPLING),
    "--mirostat-lr": (A, _SAMPLING),
    "--mirostat-ent": (A, _SAMPLING),
    "--logit-bias": (A, _SAMPLING),
    "--grammar": (A, _SAMPLING),
    "--grammar-file": (A, _SAMPLING),
    "--json-schema": (A, _SAMPLING),
    "--json-schema-file": (A, _SAMPLING),
    "--backend-sampling": (X, "builds sampling into the GPU graph, which changes the compute buffer"),
    "--spec-draft-hf": (M, _DOWNLOAD),
    "--spec-draft-threads": (A, _CPU),
    "--spec-draft-threads-batch": (A, _CPU),
    "--spec-draft-cpu-mask": (A, _CPU),
    "--spec-draft-cpu-range": (A, _CPU),
    "--spec-draft-cpu-strict": (A, _CPU),
    "--spec-draft-prio": (A, _CPU),
    "--spec-draft-poll": (A, _CPU),
    "--spec-draft-cpu-mask-batch": (A, _CPU),
    "--spec-draft-cpu-strict-batch": (A, _CPU),
    "--spec-draft-prio-batch": (A, _CPU),
    "--spec-draft-poll-batch": (A, _CPU),
    "--spec-draft-override-tensor": (X, "moves draft-model tensors between GPU and host buffers"),
    "--spec-draft-cpu-moe": (X, "keeps the draft model's MoE weights in host memory"),
    "--spec-draft-n-cpu-moe": (X, "keeps the draft model's MoE weights in host memory"),
    "--spec-draft-n-max": (M, "set draft.n_max"),
    "--spec-draft-n-min": (A, "lower bound on tokens drafted per step; outputs are reserved for draft.n_max"),
    "--spec-synth-len": (X, "synthetic speculation for benchmarks; " + _DRAFT),
    "--spec-synth-rates": (X, "synthetic speculation for benchmarks; " + _DRAFT),
    "--spec-draft-p-split": (A, "draft acceptance probability; no memory effect"),
    "--spec-draft-p-min": (A, "draft acceptance probability; no memory effect"),
    "--spec-draft-backend-sampling": (X, "moves draft sampling into the draft model's GPU graph"),
    "--spec-draft-sampling": (X, "probabilistic drafting keeps draft probabilities; " + _DRAFT),
    "--spec-draft-device": (X, "chooses the devices the draft model goes to"),
    "--spec-draft-ngl": (M, "set draft.n_gpu_layers"),
    "--spec-draft-model": (M, "set draft.file"),
    "--spec-type": (X, "other speculative modes (MTP, EAGLE3, n-gram) reserve outputs and state; " + _DRAFT),
    "--spec-ngram-mod-n-min": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-mod-n-max": (X, "n-gram draft length reserves outputs per slot; " + _DRAFT),
    "--spec-ngram-mod-n-match": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-simple-size-n": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-simple-size-m": (X, "n-gram draft length reserves outputs per slot; " + _DRAFT),
    "--spec-ngram-simple-min-hits": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-map-k-size-n": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-map-k-size-m": (X, "n-gram draft length reserves outputs per slot; " + _DRAFT),
    "--spec-ngram-map-k-min-hits": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-map-k4v-size-n": (X, "n-gram speculation; " + _DRAFT),
    "--spec-ngram-map-k4v-size-m": (X, "n-gram draft length reserves outputs per slot; " + _DRAFT),
    "--spec-ngram-map-k4v-min-hits": (X, "n-gram speculation; " + _DRAFT),
    "--draft": (U, _REMOVED + "; set draft.n_max"),
    "--draft-min": (U, _REMOVED),
    "--spec-ngram-size-n": (U, _REMOVED),
    "--spec-ngram-size-m": (U, _REMOVED),
    "--spec-ngram-min-hits": (U, _REMOVED),
    "--lookup-cache-static": (A, "n-gram lookup cache file on the host (used only by n-gram speculation)"),
    "--lookup-cache-dynamic": (A, "n-gram lookup cache file on the host (used only by n-gram speculation)"),
    "--kv-unified-per-slot": (M, "the context per slot follows ctx_size, parallel and kv_unified"),
    "--ctx-checkpoints": (A, _HOST_RAM),
    "--checkpoint-min-step": (A, _HOST_RAM),
    "--cache-ram": (A, "host RAM prompt cache; the gate sizes device memory"),
    "--kv-unified": (M, "set kv_unified"),
    "--cache-idle-slots": (A, _HOST_RAM),
    "--context-shift": (A, "shifts the KV cache in place; no memory effect"),
    "--reverse-prompt": (A, "stop string"),
    "--special": (A, "output of special tokens"),
    "--warmup": (A, "warm-up run at start; buffers are reserved before it"),
    "--spm-infill": (A, "infill prompt layout"),
    "--pooling": (M, "set embeddings.pooling"),
    "--parallel": (M, "set parallel"),
    "--cont-batching": (A, "scheduling of slots; no memory effect"),
    "--mmproj": (M, "set mmproj.file"),
    "--mmproj-url": (M, _DOWNLOAD),
    "--mmproj-auto": (M, "set mmproj (the projector is loaded only as mmproj configures it)"),
    "--mmproj-offload": (M, "set mmproj.offload"),
    "--mmproj-device": (X, "chooses the device the projector goes to"),
    "--image-min-tokens": (X, "changes image tokens per image, which sizes the image encoder's compute buffer"),
    "--image-max-tokens": (X, "changes image tokens per image, which sizes the image encoder's compute buffer"),
    "--mtmd-batch-max-tokens": (X, "changes the image encoder's batch, which sizes its compute buffer"),
    "--video-fps": (A, "frames sampled per second of video; each frame is encoded like an image"),
    "--video-timestamp-interval": (A, "text timestamps between video frames"),
    "--video-ffmpeg-dir": (A, "where ffmpeg is found"),
    "--alias": (M, "the model id and aliases name the model"),
    "--tags": (A, "informational tags"),
    "--embd-normalize": (A, "embedding normalisation"),
    "--host": (M, "llama-swap and compose choose the address (bind_address)"),
    "--port": (M, "llama-swap and compose choose the port (ports.*)"),
    "--reuse-port": (A, "socket option"),
    "--path": (A, "static files served by the web UI"),
    "--cors-origins": (A, "HTTP CORS header"),
    "--cors-methods": (A, "HTTP CORS header"),
    "--cors-headers": (A, "HTTP CORS header"),
    "--cors-credentials": (A, "HTTP CORS header"),
    "--api-prefix": (U, "moves /health under the prefix, so llama-swap's and compose's health checks fail"),
    "--ui-config": (A, "web UI defaults"),
    "--ui-config-file": (A, "web UI defaults"),
    "--ui-mcp-proxy": (U, _AGENT),
    "--tools": (U, _AGENT),
    "--tools-runtime": (U, _AGENT),
    "--mcp-servers-config": (U, _AGENT),
    "--mcp-servers-json": (U, _AGENT),
    "--agent": (U, _AGENT),
    "--ui": (A, "web UI on or off"),
    "--embedding": (M, "the embedding server is configured under embeddings"),
    "--rerank": (M, "set embeddings.pooling: rank"),
    "--api-key": (M, "set the api_key secret (pulumi config set --secret api_key ...)"),
    "--api-key-file": (M, "set the api_key secret (pulumi config set --secret api_key ...)"),
    "--ssl-key-file": (U, "llama-swap and the health checks talk plain HTTP to llama-server"),
    "--ssl-cert-file": (U, "llama-swap and the health checks talk plain HTTP to llama-server"),
    "--chat-template-kwargs": (A, "chat template parameters"),
    "--timeout": (A, "HTTP timeout"),
    "--sse-ping-interval": (A, "HTTP keep-alive"),
    "--threads-http": (A, _CPU),
    "--cache-prompt": (A, "reuse of a slot's KV cache between requests; no memory effect"),
    "--cache-reuse": (A, "reuse of cached chunks via KV shifting; no memory effect"),
    "--metrics": (A, "Prometheus endpoint"),
    "--props": (A, "POST /props endpoint (changes nothing in this build)"),
    "--slots": (A, "slots monitoring endpoint"),
    "--slot-save-path": (A, "where slot saves are written on the host"),
    "--media-path": (A, "local media directory for file:// URLs"),
    "--models-dir": (U, _ROUTER),
    "--models-preset": (U, _ROUTER),
    "--models-max": (U, _ROUTER),
    "--models-autoload": (U, _ROUTER),
    "--jinja": (M, "set jinja"),
    "--reasoning-format": (A, "reasoning output format"),
    "--reasoning": (A, "reasoning on or off"),
    "--reasoning-effort": (A, "reasoning effort given to the chat template"),
    "--reasoning-budget": (A, "reasoning token budget"),
    "--reasoning-budget-message": (A, "reasoning budget message"),
    "--reasoning-preserve": (A, "reasoning kept in the history"),
    "--chat-template": (A, "chat template"),
    "--chat-template-file": (A, "chat template"),
    "--skip-chat-parsing": (A, "chat output parsing"),
    "--prefill-assistant": (A, "chat prefill"),
    "--slot-prompt-similarity": (A, "slot selection"),
    "--lora-init-without-apply": (A, "acts only on --lora adapters, which are refused"),
    "--sleep-idle-seconds": (A, "frees the model while idle and reloads it with the same settings"),
    "--log-prompts-dir": (A, "logging"),
    "--embd-gemma-default": (M, _PRESET),
    "--fim-qwen-1.5b-default": (M, _PRESET),
    "--fim-qwen-3b-default": (M, _PRESET),
    "--fim-qwen-7b-default": (M, _PRESET),
    "--fim-qwen-7b-spec": (M, _PRESET),
    "--fim-qwen-14b-spec": (M, _PRESET),
    "--fim-qwen-30b-default": (M, _PRESET),
    "--gpt-oss-20b-default": (M, _PRESET),
    "--gpt-oss-120b-default": (M, _PRESET),
    "--vision-gemma-4b-default": (M, _PRESET),
    "--vision-gemma-12b-default": (M, _PRESET),
    "--spec-default": (X, "turns on n-gram speculation; " + _DRAFT),
}

BY_NAME: dict[str, Option] = {name: opt for opt in OPTIONS for name in opt.names}
"""Every name llama-server accepts (short, long, negated), to its option."""


def names_of(cls: FlagClass) -> frozenset[str]:
    """Every name (all aliases) of the options in one class."""
    return frozenset(n for opt in OPTIONS if CLASSIFICATION[opt.key][0] is cls for n in opt.names)


MANAGED_FLAGS = names_of(FlagClass.managed)
REFUSED_FLAGS = frozenset(BY_NAME) - names_of(FlagClass.allowed)

def _bad_text(item: str) -> str | None:
    """Why an argv item cannot go into llama-swap's `cmd` (read line by line, `${...}` expanded), if it cannot."""
    if "${" in item:
        return "contains '${', which llama-swap would expand as a macro"
    bad = control_chars(item)
    if bad:
        return (f"contains the control character U+{ord(bad[0]):04X}; an argv item must be one line of printable "
                "text (llama-swap reads cmd line by line)")
    return None


def _lookup(item: str) -> Option | None:
    return BY_NAME.get(item.replace("_", "-") if item.startswith("--") else item)


def _class_problem(item: str, opt: Option) -> str | None:
    cls, reason = CLASSIFICATION[opt.key]
    shown = repr(item) if item == opt.key else f"{item!r} ({opt.key})"
    if cls is FlagClass.managed:
        return f"{shown} is managed by the stack: {reason}"
    if cls is FlagClass.memory:
        return f"{shown} changes memory the sizing gate does not account for ({reason}); remove it"
    if cls is FlagClass.unsupported:
        return f"{shown} cannot be used here: {reason}"
    return None


_SHORT_HEAD = re.compile(r"-[A-Za-z]+")


def _glued(item: str) -> tuple[str, Option] | None:
    """The short option a glued form such as `-ngl99` starts with (llama.cpp does not split it; it exits)."""
    m = _SHORT_HEAD.match(item)
    if item.startswith("--") or m is None:
        return None
    word = m.group()
    for k in range(len(word), 1, -1):
        opt = BY_NAME.get(word[:k])
        if opt is not None and opt.nargs > 0:
            return word[:k], opt
    return None


def _unknown(item: str) -> str:
    """An item that is not an option name: say what llama-server would make of it, and what was probably meant."""
    head, eq, _ = item.partition("=")
    if eq and (opt := _lookup(head)) is not None:
        return _class_problem(item, opt) or (
            f"llama-server {BUILD} does not read {head}=<value>: give {head!r} and its value as two items")
    if (glued := _glued(item)) is not None:
        short, opt = glued
        if (why := _class_problem(item, opt)) is not None:
            return why
        if item[len(short):][:1] in set("0123456789.-"):
            return f"llama-server {BUILD} does not split {item!r}: give {short!r} and its value as two items"
    return (f"{item!r} is not a llama-server {BUILD} option (llama-server would exit at start); "
            "models/server_options.py lists the options it accepts")


def extra_args_problems(args: Sequence[str]) -> list[tuple[str, str]]:
    """(`[i]`, message) for each item of `extra_args` that llama-server would refuse or that would change what was
    sized; empty when the list is safe to append to the stack's own argv."""
    problems: dict[int, str] = {}
    for i, item in enumerate(args):
        if (why := _bad_text(item)) is not None:
            problems[i] = why
    i = 0
    while i < len(args):
        item = args[i]
        opt = _lookup(item) if item.startswith("-") else None
        if i not in problems:
            if not item.startswith("-") or item == "-":
                problems[i] = (f"{item!r} is not the value of an option before it and llama-server takes no "
                               "positional arguments; remove it, or put the option it belongs to before it")
            elif opt is None:
                problems[i] = _unknown(item)
            elif (why := _class_problem(item, opt)) is not None:
                problems[i] = why
        if opt is None:
            unknown_option = item.startswith("-") and item != "-"
            value_follows = i + 1 < len(args) and not args[i + 1].startswith("-")
            i += 2 if unknown_option and value_follows else 1
            continue
        for k in range(1, opt.nargs + 1):
            if i + k >= len(args):
                needs = "a value" if opt.nargs == 1 else f"{opt.nargs} values"
                problems.setdefault(i, f"{item!r} needs {needs} ({opt.hint}) after it")
                break
            value = args[i + k]
            if i + k not in problems and _lookup(value) is not None:
                problems[i + k] = (f"{value!r} would be read as the value of {item!r}; give {item!r} a value "
                                   f"({opt.hint}) before the next option")
        i += 1 + opt.nargs
    return [(f"[{j}]", problems[j]) for j in sorted(problems)]

