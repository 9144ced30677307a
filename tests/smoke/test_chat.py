"""Chat completions answer through every entrance, llama-swap (each model) and LiteLLM (a public name): plain,
streamed, JSON-schema constrained and a forced tool call."""

from __future__ import annotations

import json

import jsonschema

from tests.smoke.checks import (
    ANSWER_SCHEMA,
    WEATHER_PARAMETERS,
    WEATHER_TOOL,
    chat_body,
    check_chat_answer,
    check_litellm_route,
    first_choice,
    parse_json_answer,
)
from tests.smoke.conftest import Deployment, Route
from tests.smoke.targets import LITELLM


def test_chat_completion(chat_route: Route, deployment: Deployment) -> None:
    svc = deployment.service(chat_route.service)
    r = svc.ok("POST", "/v1/chat/completions", chat_body(chat_route.model))
    check_chat_answer(svc, json.loads(r.body), f"chat with {chat_route.model!r}")
    if chat_route.service == LITELLM:
        check_litellm_route(svc, r, chat_route.model)


def test_chat_completion_streamed(feature_route: Route, deployment: Deployment) -> None:
    svc = deployment.service(feature_route.service)
    what = f"streamed chat with {feature_route.model!r}"
    r, chunks = svc.stream("/v1/chat/completions", chat_body(feature_route.model))
    choices = [c["choices"][0] for c in chunks if c.get("choices")]
    svc.check(choices, f"{what}: no chunk carried a choice")
    svc.check(all(isinstance(c.get("delta"), dict) for c in choices), f"{what}: a chunk has no delta object")
    text = "".join(c["delta"].get("content") or "" for c in choices)
    svc.check(isinstance(text, str), f"{what}: content pieces are not text")
    reasons = [c.get("finish_reason") for c in choices if c.get("finish_reason")]
    svc.check(reasons and reasons[-1] in ("stop", "length"), f"{what}: finish_reasons {reasons}")
    if feature_route.service == LITELLM:
        check_litellm_route(svc, r, feature_route.model)


def test_json_schema_response(feature_route: Route, deployment: Deployment) -> None:
    """`response_format: json_schema` is grammar-constrained in llama-server: the answer must validate."""
    svc = deployment.service(feature_route.service)
    body = chat_body(
        feature_route.model,
        messages=[{"role": "user", "content": "Is the sky blue? Answer as JSON: answer yes/no, ok, count 0-9."}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "strict": True,
                                                                "schema": ANSWER_SCHEMA}},
        max_tokens=256,
        seed=3,
    )
    r = svc.ok("POST", "/v1/chat/completions", body)
    parse_json_answer(svc, json.loads(r.body), ANSWER_SCHEMA, f"json_schema answer of {feature_route.model!r}")
    if feature_route.service == LITELLM:
        check_litellm_route(svc, r, feature_route.model)


def test_forced_tool_call(tool_route: Route, deployment: Deployment) -> None:
    """`tool_choice: "required"` with one tool forces that tool: the pinned llama.cpp build accepts only
    the strings auto/none/required (an object naming the function is ignored). The answer must be a parsed
    call (`tool_calls`, not text) whose arguments validate against the tool's parameters.

    A test model with random weights never opens a call by itself: the targets (or --tool-call-logit-bias)
    may give a logit bias on its call-opening token; real models get none."""
    what = f"forced tool call of {tool_route.model!r}"
    svc = deployment.service(tool_route.service)
    body = chat_body(
        tool_route.model,
        messages=[{"role": "user", "content": "What is the weather in Paris? Use the tool."}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=256,
        seed=1,
    )
    bias = deployment.tool_call_logit_bias.get(tool_route.model_id or "")
    if bias:
        body["logit_bias"] = bias
    r = svc.ok("POST", "/v1/chat/completions", body)
    choice = first_choice(svc, json.loads(r.body), what)
    svc.check(choice.get("finish_reason") == "tool_calls", f"{what}: finish_reason {choice.get('finish_reason')!r}, "
              f"message {json.dumps(choice.get('message'))[:300]}")
    calls = (choice.get("message") or {}).get("tool_calls") or []
    svc.check(calls, f"{what}: no parsed tool_calls in the message")
    fn = calls[0].get("function") or {}
    svc.check(fn.get("name") == "get_weather", f"{what}: called {fn.get('name')!r}, not get_weather")
    try:
        args = json.loads(fn.get("arguments") or "")
        jsonschema.validate(args, WEATHER_PARAMETERS)
    except (ValueError, jsonschema.ValidationError) as exc:
        svc.fail(f"{what}: arguments {fn.get('arguments')!r} are not valid: {exc}")
    if tool_route.service == LITELLM:
        check_litellm_route(svc, r, tool_route.model)
