"""Request bodies and answer checks shared by the smoke tests."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema

from tests.smoke.client import Response, Service

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": WEATHER_PARAMETERS,
    },
}

ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["yes", "no"]},
        "ok": {"type": "boolean"},
        "count": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["answer", "ok", "count"],
    "additionalProperties": False,
}

EMBED_TEXTS = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "The stock market fell sharply today."]


def chat_body(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HELLO, "max_tokens": 16, "seed": 7, **extra}


def first_choice(svc: Service, data: Any, what: str) -> dict[str, Any]:
    try:
        choice = data["choices"][0]
    except (KeyError, IndexError, TypeError):
        svc.fail(f"{what}: answer has no choices[0]: {json.dumps(data)[:400]}")
    svc.check(isinstance(choice, dict), f"{what}: choices[0] is not an object")
    return dict(choice)


def check_chat_answer(svc: Service, data: Any, what: str) -> None:
    choice = first_choice(svc, data, what)
    msg = choice.get("message") or {}
    svc.check(msg.get("role") == "assistant", f"{what}: message role is {msg.get('role')!r}, not 'assistant'")
    svc.check(isinstance(msg.get("content"), str), f"{what}: message content is {msg.get('content')!r}")
    reason = choice.get("finish_reason")
    svc.check(reason in ("stop", "length"), f"{what}: finish_reason {reason!r}")
    usage = data.get("usage") or {}
    svc.check(int(usage.get("completion_tokens", 0)) >= 1, f"{what}: no completion tokens (usage {usage})")


def parse_json_answer(svc: Service, data: Any, schema: dict[str, Any], what: str) -> Any:
    """The message content as JSON, validated against `schema`."""
    content = (first_choice(svc, data, what).get("message") or {}).get("content")
    try:
        obj = json.loads(content or "")
    except ValueError:
        svc.fail(f"{what}: content is not JSON: {str(content)[:400]!r}")
    try:
        jsonschema.validate(obj, schema)
    except jsonschema.ValidationError as exc:
        svc.fail(f"{what}: {obj!r} does not validate against the schema: {exc.message}")
    return obj


def check_litellm_route(svc: Service, r: Response, name: str) -> None:
    """LiteLLM answered `name` from its own deployment group, not from a (cloud) fallback."""
    group = r.headers.get("x-litellm-model-group")
    svc.check(group in (None, name), f"request for {name!r} was served by model group {group!r}")
    fallbacks = r.headers.get("x-litellm-attempted-fallbacks", "0")
    svc.check(fallbacks in ("0", ""), f"request for {name!r} needed {fallbacks} fallback(s): the local model failed")


def embeddings_of(svc: Service, data: Any, what: str) -> list[list[float]]:
    try:
        items = sorted(data["data"], key=lambda d: d["index"])
        vecs = [list(map(float, d["embedding"])) for d in items]
    except (KeyError, TypeError, ValueError):
        svc.fail(f"{what}: answer has no data[].embedding float lists: {json.dumps(data)[:300]}")
    return vecs


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
