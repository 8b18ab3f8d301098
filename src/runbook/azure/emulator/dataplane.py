"""The Azure OpenAI data-plane answers behind the gateway: chat (also streamed), completions, embeddings, images.

`answer(kind, deployment, body, store_image)` gives the answer of one deployment to one request body,
in the Azure OpenAI shapes, or the OpenAI-style 400 for a bad body. Answers are deterministic (ids,
vectors and images are hashes of the request; `created` is fixed), token counts are len/4 estimates,
and images are real PNGs of the requested size (`runbook.azure.png`), `b64_json` inline or a URL from
`store_image`. Chat honours `tools` with `tool_choice` (`required`, or a named function: the answer is
`tool_calls` with arguments filled from the function's parameter schema) and `response_format`
(`json_object` / `json_schema`: the content is JSON), and carries Azure's content-filter fields.
Embeddings have the dimensions of the real model (text-embedding-3-small 1536, -large 3072, ada-002
1536); `dimensions` shortens the 3-series only, as in Azure.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any

from runbook.azure.emulator.arm_shapes import digest
from runbook.azure.emulator.transport import Json, Response, json_response
from runbook.azure.estate import Deployment
from runbook.azure.png import render_png

__all__ = ["CAPABILITY_OF", "CREATED", "KINDS", "answer", "openai_error"]

#: The `created` stamp of data-plane answers: fixed (the seed incident's time), so they are stable.
CREATED = 1763093700  # 2025-11-14T04:15:00Z
#: The largest image side the emulator draws (Azure's largest size is 1792).
IMAGE_MAX_SIDE = 4096
#: Native vector sizes of the embedding models Azure serves; other embedding models get 1536.
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
#: Azure's content-filter categories, all "safe" in the emulator.
FILTER_CATEGORIES = ("hate", "self_harm", "sexual", "violence")

#: The operation kind of an APIM URL template, by the literal segments it ends with.
KINDS = {
    "chat/completions": "chat",
    "completions": "completions",
    "embeddings": "embeddings",
    "images/generations": "images",
    "images/edits": "image_edits",
}
#: The deployment capability each kind needs.
CAPABILITY_OF = {
    "chat": "chatCompletion",
    "completions": "completion",
    "embeddings": "embeddings",
    "images": "imageGenerations",
    "image_edits": "imageGenerations",
}

#: Keeps a generated PNG and returns the URL it is served at.
ImageSink = Callable[[bytes], str]


def answer(kind: str, deployment: Deployment, body: Json, store_image: ImageSink) -> Response:
    """The answer of `deployment` to `body` for operation `kind` (a key of `CAPABILITY_OF`)."""
    if kind in ("images", "image_edits"):
        return _images(deployment, body, store_image)
    handler = {"chat": _chat, "completions": _completions, "embeddings": _embeddings}[kind]
    return handler(deployment, body)


def _chat(deployment: Deployment, body: Json) -> Response:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "'messages' is a required property", param="messages")
    texts = [_message_text(m) for m in messages if isinstance(m, dict)]
    users = [_message_text(m) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    asked = (users or texts or [""])[-1]
    reply = f"Emulated reply from deployment '{deployment.name}' ({deployment.model}): {asked[:200]}"
    choices_wanted = _int_in(body.get("n"), 1, 1, 10)
    if choices_wanted is None:
        return openai_error(400, "n must be an integer from 1 to 10", param="n")
    completion_id = "chatcmpl-" + digest("chat", deployment.name, json.dumps(messages, sort_keys=True))[:29]
    model = _model_label(deployment)
    calls, problem = _tool_calls(body, completion_id)
    if problem is not None:
        return openai_error(400, problem, param="tool_choice")
    reply, problem = _formatted(body, reply, deployment)
    if problem is not None:
        return openai_error(400, problem, param="response_format")
    prompt_tokens = sum(map(_tokens, texts))
    completion_tokens = (_tokens(json.dumps(calls)) if calls else _tokens(reply)) * choices_wanted
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if body.get("stream") is True:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return _chat_stream(completion_id, model, reply, choices_wanted, usage if include_usage else None)
    return json_response(
        200,
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_emulator",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _filter_results()}],
            "choices": [
                {
                    "index": index,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "logprobs": None,
                    "message": (
                        {"role": "assistant", "content": None, "refusal": None, "tool_calls": calls}
                        if calls
                        else {"role": "assistant", "content": reply, "refusal": None}
                    ),
                    "content_filter_results": _filter_results(),
                }
                for index in range(choices_wanted)
            ],
            "usage": usage,
        },
    )


def _filter_results() -> Json:
    return {name: {"filtered": False, "severity": "safe"} for name in FILTER_CATEGORIES}


def _tool_calls(body: Json, completion_id: str) -> tuple[list[Json], str | None]:
    """The tool calls `tool_choice` asks for (`required`, or one named function); none for auto/none."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    choice = body.get("tool_choice")
    if choice in (None, "auto", "none"):
        return [], None
    if not tools:
        return [], "'tool_choice' is only allowed when 'tools' are specified"
    if choice == "required":
        chosen = tools[0]["function"]
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        chosen = next((t["function"] for t in tools if t["function"].get("name") == name), None)
        if chosen is None:
            return [], f"tool_choice names the function {name!r}, which is not in 'tools'"
    else:
        return [], f"tool_choice {choice!r} must be 'none', 'auto', 'required' or a named function"
    arguments = _sample(chosen.get("parameters") or {"type": "object"})
    call = {
        "id": "call_" + digest("tool", completion_id, str(chosen.get("name")))[:24],
        "type": "function",
        "function": {"name": chosen.get("name"), "arguments": json.dumps(arguments)},
    }
    return [call], None


def _formatted(body: Json, reply: str, deployment: Deployment) -> tuple[str, str | None]:
    """The reply in the asked `response_format`: text, any JSON object, or an instance of a JSON Schema."""
    wanted = body.get("response_format")
    kind = wanted.get("type") if isinstance(wanted, dict) else None
    if wanted is None or kind == "text":
        return reply, None
    if kind == "json_object":
        return json.dumps({"reply": reply, "deployment": deployment.name}), None
    if kind == "json_schema":
        schema = (wanted.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            return reply, "response_format json_schema needs json_schema.schema"
        return json.dumps(_sample(schema)), None
    return reply, f"response_format type {kind!r} must be 'text', 'json_object' or 'json_schema'"


def _sample(schema: Any, depth: int = 0) -> Any:
    """A small value that fits a JSON Schema: every property of an object, first enum value, one item."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _sample(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: _sample(sub, depth + 1) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_sample(schema.get("items") or {}, depth + 1)] if schema.get("minItems", 1) else []
    return {"string": "emulated", "integer": 0, "number": 0, "boolean": False}.get(str(kind))


def _completions(deployment: Deployment, body: Json) -> Response:
    prompt = body.get("prompt", "")
    text = prompt if isinstance(prompt, str) else json.dumps(prompt)
    reply = f"Emulated completion from deployment '{deployment.name}'."
    prompt_tokens, completion_tokens = _tokens(text), _tokens(reply)
    return json_response(
        200,
        {
            "id": "cmpl-" + digest("completion", deployment.name, text)[:29],
            "object": "text_completion",
            "created": CREATED,
            "model": _model_label(deployment),
            "choices": [{"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def _embeddings(deployment: Deployment, body: Json) -> Response:
    raw = body.get("input")
    if raw in (None, "", []):
        return openai_error(400, "'input' is a required property", param="input")
    inputs = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    native = EMBEDDING_DIMENSIONS.get(deployment.model.lower(), 1536)
    if body.get("dimensions") is not None and not deployment.model.lower().startswith("text-embedding-3"):
        return openai_error(400, "This model does not support specifying dimensions.", param="dimensions")
    dimensions = _int_in(body.get("dimensions"), native, 1, native)
    if dimensions is None:
        return openai_error(400, f"dimensions must be an integer from 1 to {native}", param="dimensions")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else json.dumps(item)
        vector = _vector(text, dimensions)
        encoded: object = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(_tokens(item if isinstance(item, str) else json.dumps(item)) for item in inputs)
    return json_response(
        200,
        {
            "object": "list",
            "data": data,
            "model": deployment.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def _images(deployment: Deployment, body: Json, store_image: ImageSink) -> Response:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return openai_error(400, "'prompt' is a required property", param="prompt")
    count = _int_in(body.get("n"), 1, 1, 4)
    if count is None:
        return openai_error(400, "n must be an integer from 1 to 4", param="n")
    size = body.get("size") or "1024x1024"
    dimensions = _parse_size(size)
    if dimensions is None:
        return openai_error(400, f"size '{size}' is not like '1024x1024'", param="size")
    response_format = body.get("response_format") or "url"
    if response_format not in ("url", "b64_json"):
        return openai_error(
            400,
            f"response_format '{response_format}' must be 'url' or 'b64_json'",
            param="response_format",
        )
    width, height = dimensions
    if max(width, height) > IMAGE_MAX_SIDE:
        return openai_error(400, f"size '{size}' is larger than {IMAGE_MAX_SIDE}x{IMAGE_MAX_SIDE}", param="size")
    data = []
    for index in range(count):
        png = render_png(f"{deployment.name}\0{prompt}", width=width, height=height, index=index)
        item: Json = {"revised_prompt": prompt}
        if response_format == "b64_json":
            item["b64_json"] = base64.b64encode(png).decode()
        else:
            item["url"] = store_image(png)
        data.append(item)
    return json_response(200, {"created": CREATED, "data": data})


def openai_error(status: int, message: str, *, param: str | None = None, operation: str | None = None) -> Response:
    error = {
        "code": "BadRequest",
        "message": message,
        "param": param,
        "type": "invalid_request_error",
    }
    return json_response(status, {"error": error}, operation=operation)


def _chat_stream(completion_id: str, model: str, reply: str, choices: int, usage: Json | None) -> Response:
    def chunk(choice_list: list[Json], extra: Json | None = None) -> str:
        payload: Json = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_emulator",
            "choices": choice_list,
        }
        payload.update(extra or {})
        return "data: " + json.dumps(payload, separators=(",", ":")) + "\n\n"

    words = reply.split(" ")
    pieces = [" ".join(words[i : i + 4]) + (" " if i + 4 < len(words) else "") for i in range(0, len(words), 4)]
    events = []
    for index in range(choices):
        events.append(
            chunk(
                [
                    {
                        "index": index,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                    }
                ]
            )
        )
        for piece in pieces:
            events.append(chunk([{"index": index, "delta": {"content": piece}, "finish_reason": None}]))
        events.append(chunk([{"index": index, "delta": {}, "finish_reason": "stop"}]))
    if usage is not None:
        events.append(chunk([], {"usage": usage}))
    events.append("data: [DONE]\n\n")
    return Response(200, "".join(events).encode(), content_type="text/event-stream; charset=utf-8")


def _message_text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # vision-style parts: keep the text ones
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _model_label(deployment: Deployment) -> str:
    # Azure answers with the model and its dated version, e.g. gpt-4o-mini-2024-07-18
    version = deployment.version
    dated = len(version) == 10 and version[4] == "-" and version[7] == "-"
    return f"{deployment.model}-{version}" if dated else deployment.model


def _int_in(value: object, default: int, low: int, high: int) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return None
    return value


def _parse_size(size: object) -> tuple[int, int] | None:
    if not isinstance(size, str):
        return None
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        return None
    return int(width), int(height)


def _vector(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        values.extend(byte / 127.5 - 1.0 for byte in hashlib.sha256(f"{block}\0{text}".encode()).digest())
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]
