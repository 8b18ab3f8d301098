"""Built-in `http.request`: one HTTP call (usually through the APIM gateway), checked and recorded.

Responsible for: authenticating the call (`apim-key`, the default for URLs on the target's gateway;
`entra` bearer tokens; or `none`), refusing to send a key or token over plain http to anything but
loopback, retrying dropped connections and throttling (through `runbook.azure.client`), checking the
`expect` block inside `with`, and recording a bounded, redacted answer: JSON parsed, long strings cut,
base64 images summarised as `<base64 image/png 12345 chars, sha256 ab12cd34ef56…>` instead of stored.

Two ways to assert on the answer, usable together:

* `with: {expect: {...}}` (this action): `status` (int or list), `json` ({path: value, or
  {exists: true|false}, {regex: ...}, {equals: ...}, {contains: ...}, {min_length: n}}), `headers`
  ({name: exact value or regex}), `body_contains`, `body_regex`, `max_latency_ms`. Every unmet one is
  listed with the actual value; the output is still recorded.
* step-level `expect:` (any action, checked by the executor): Jinja over `output`, e.g.
  `output.status == 200`, `output.json_paths['data[0].b64_json'] is defined`.

JSON paths are dotted with `[index]`: `data[0].b64_json`, `choices[0].message.content`,
`['key.with.dots']`; negative indexes count from the end. Without an explicit `status` expectation a
status >= 400 fails the step (set `check: false` to record it and go on).
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ..azure.client import (
    Endpoints,
    Exchange,
    RetryPolicy,
    display_url,
    error_body,
    failure_hint,
    run_sync,
    same_origin,
)
from ..errors import ActionError, ExpectationFailed, SecurityViolation
from ..secrets import is_secret_name
from ..text import is_loopback
from . import ActionContext, Params, Result, action
from .outputs import Output

if TYPE_CHECKING:
    import httpx

BODY_CHARS = 2000
# Body bytes held in memory for the checks (`expect.json`, `contains`); bytes past it are counted in
# the output's `dropped_bytes`, not held. Large enough for a generated image's base64.
BODY_BYTES = 16 * 1024 * 1024
LIST_ITEMS = 50
MAX_DEPTH = 16
JSON_PATH_LIMIT = 200
PATH_VALUE_CHARS = 200
# Response headers never recorded: credentials and session state.
# Fields that hold base64 payloads in the OpenAI/Azure shapes.
_BASE64_FIELDS = frozenset({"b64_json", "b64", "image_base64", "base64", "audio", "data_base64"})
_BASE64_TEXT = re.compile(r"^[A-Za-z0-9+/\r\n]+={0,2}$")
_BASE64_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,(?P<data>.*)$", re.DOTALL)
# Long unbroken base64 text is a payload, not prose.
_LONG_BASE64 = 256
_MATCHER_KEYS = frozenset({"exists", "regex", "equals", "contains", "min_length"})
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]|\[(['\"])(.*?)\3\]")


# ------------------------------------------------------------------------------------- parameters


class HttpExpect(Params):
    status: int | list[int] | None = Field(None, description="the status, or the allowed statuses")
    json_: dict[str, Any] = Field(
        default_factory=dict,
        alias="json",
        description="path -> value, or {exists: bool} / {regex} / {equals} / {contains} / {min_length}",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="header -> exact value or regex")
    body_contains: str | list[str] | None = Field(None, description="text(s) the body must contain")
    body_regex: str | None = Field(None, description="a regex the body must match (search)")
    max_latency_ms: float | None = Field(None, gt=0, description="the final attempt took at most this long")

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value)
        return value

    @field_validator("json_")
    @classmethod
    def _matchers(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path, want in value.items():
            parse_path(path)
            if _is_matcher(want) and isinstance(want.get("regex"), str):
                _compile(want["regex"])
        return value


# Methods that only read (RFC 9110 "safe"); any other method may change the server.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HttpRequestParams(Params):
    method: str = Field("GET", description="HTTP method")
    url: str = Field(description="absolute URL, or a path starting with / on the target's gateway_url")
    headers: dict[str, str] = Field(default_factory=dict, description="request headers (values may be templates)")
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, description="query parameters")
    json_: Any = Field(None, alias="json", description="a JSON request body")
    body: str | None = Field(None, description="a raw request body (instead of json)")
    auth: Literal["auto", "apim-key", "entra", "none"] = Field(
        "auto",
        description="auto: apim-key when the URL is on the target's gateway_url, else none; "
        "entra: a bearer token for https://cognitiveservices.azure.com",
    )
    key_header: str = Field("api-key", description="header that carries the APIM subscription key")
    key: str | None = Field(None, description="the subscription key (default: the target's api_key)")
    timeout: float = Field(30.0, gt=0, description="seconds per attempt")
    retries: int = Field(2, ge=0, le=10, description="extra attempts on dropped connections, 429 and 5xx")
    check: bool = Field(True, description="fail on a status >= 400 unless expect.status allows it")
    follow_redirects: bool = Field(False, description="follow 3xx answers instead of returning them")
    expect: HttpExpect | None = Field(None, description="assertions on the answer (see the module docs)")
    max_body_chars: int = Field(BODY_CHARS, ge=16, description="longer strings in the record are cut")

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.strip().upper()
        if not re.fullmatch(r"[A-Z]+", method):
            raise ValueError(f"{value!r} is not an HTTP method")
        return method

    @model_validator(mode="after")
    def _one_body(self) -> "HttpRequestParams":
        if self.json_ is not None and self.body is not None:
            raise ValueError("give either `json` or `body`, not both")
        return self


class HttpError(Output):
    code: str | None = Field(description="the error code of the answer's body (error.code)")
    message: str | None = Field(description="the error message of the answer's body (error.message)")


class HttpRequestOutput(Output):
    method: str = Field(description="the HTTP method sent")
    url: str = Field(description="the URL called (query secrets masked)")
    status: int = Field(description="the response status code")
    reason: str = Field(description="the status' reason phrase")
    ok: bool = Field(description="true when the status is below 400")
    elapsed_ms: float = Field(description="milliseconds the final attempt took")
    total_ms: float = Field(description="milliseconds of all attempts and waits")
    attempts: int = Field(description="how many attempts were made (retries included)")
    headers: dict[str, str] = Field(description="response headers, lower-cased; credentials and `date` left out")
    content_type: str | None = Field(description="the response's content-type")
    body_bytes: int = Field(description="size of the response body in bytes")
    dropped_bytes: int | None = Field(
        None, description="body bytes past the 16 MiB held for checks: counted, not kept (absent when none)"
    )
    json_: Any = Field(
        None, alias="json", description="the JSON body, bounded: long strings cut, base64 payloads summarised"
    )
    json_paths: dict[str, Any] | None = Field(
        None, description="leaf values of the JSON body by path (`data[0].b64_json`), the first 200"
    )
    error: HttpError | None = Field(None, description="the error body of a status >= 400 answer, when it has one")
    text: str | None = Field(None, description="a text (non-JSON) body, bounded")
    binary: str | None = Field(None, description="a binary body's summary: type, size and sha256")


# ----------------------------------------------------------------------------------------- action


@action(
    "http.request",
    params=HttpRequestParams,
    changes=False,
    changes_when=lambda params: params.method.upper() not in SAFE_METHODS,
    output=HttpRequestOutput,
    summary="Send one HTTP request (APIM key or Entra token), check `expect`, record a bounded answer.",
)
def http_request(params: HttpRequestParams, ctx: ActionContext) -> Result:
    from ..azure.credentials import COGNITIVE_SCOPE, token_provider

    endpoints = Endpoints.from_settings(getattr(ctx.target, "settings", None))
    url = _absolute_url(params.url, endpoints)
    auth = params.auth
    if auth == "auto":
        auth = "apim-key" if same_origin(url, endpoints.gateway_url) else "none"
    headers = dict(params.headers)
    if auth == "apim-key":
        key = params.key or endpoints.api_key
        if not key:
            raise ActionError(
                f"{params.method} {display_url(url)}: no APIM subscription key to send",
                hint="set APIM_API_KEY (the target's api_key setting), pass `key:`, or use auth: none",
            )
        ctx.redactor.add(key)
        headers[params.key_header] = key
    elif auth == "entra":
        headers["Authorization"] = f"Bearer {token_provider(ctx).token(COGNITIVE_SCOPE)}"
    if params.key:
        ctx.redactor.add(params.key)
    _refuse_clear_text(url, headers, params.params)

    policy = RetryPolicy(
        attempts=params.retries + 1,
        backoff=endpoints.policy.backoff,
        max_wait=endpoints.policy.max_wait,
    )
    content = params.body.encode() if params.body is not None else None
    exchange = run_sync(
        lambda client: client.send(
            params.method,
            url,
            plane="data",
            headers=headers,
            params=params.params or None,
            json=params.json_,
            content=content,
            attempts=params.retries + 1,
            timeout=params.timeout,
            follow_redirects=params.follow_redirects,
            max_body_bytes=BODY_BYTES,
        ),
        stop=ctx.stop,
        policy=policy,
        timeout=params.timeout,
        on_retry=ctx.warn,
    )
    is_json, payload, text = _decode(exchange.response)
    # Mask before bounding: a secret straddling the bound must not leave half of itself in the record.
    payload, text = ctx.redactor(payload), ctx.redactor.text(text) if isinstance(text, str) else text
    output = ctx.redactor(_output(exchange, is_json, payload, text, params.max_body_chars))
    results = check_expectations(params, exchange, payload, text)
    unmet = [r for r in results if not r["passed"]]
    if unmet:
        shown = f"{params.method} {display_url(exchange.url)}"
        detail = "; ".join(str(r["problem"]) for r in unmet)
        plane_hint = None
        if any(r["that"].startswith("status") for r in unmet) and exchange.response.status_code >= 400:
            code, _ = error_body(payload)
            plane_hint = failure_hint("data", exchange.response.status_code, code, exchange.url)
        noun = "expectation" if len(unmet) == 1 else "expectations"
        raise HttpExpectationFailed(
            ctx.redactor.text(f"{shown}: {len(unmet)} {noun} not met: {detail}"),
            output=output,
            hint=plane_hint,
            expectations=[{k: v for k, v in r.items() if k != "problem"} for r in results],
        )
    return Result(output=output)


# `http.request`'s `expect` did not hold; `expectations` lists each check and the actual value.
HttpExpectationFailed = ExpectationFailed


def _absolute_url(url: str, endpoints: Endpoints) -> str:
    if url.startswith("/"):
        if not endpoints.gateway_url:
            raise ActionError(
                f"relative URL {url!r} needs the target's gateway_url",
                hint="give a full URL, or set APIM_GATEWAY_URL for the target",
            )
        return endpoints.gateway_url + url
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ActionError(f"URL {url!r} is not http(s)", hint="write it like https://host/path")
    return url


def _refuse_clear_text(url: str, headers: Mapping[str, str], query: Mapping[str, Any]) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or is_loopback(parts.hostname):
        return
    carried = [n for n in headers if is_secret_name(n)]
    carried += [n for n in query if is_secret_name(n)]
    if carried:
        raise SecurityViolation(
            f"refusing to send {', '.join(sorted(set(carried)))} over plain http to {parts.hostname}: "
            "keys and tokens would travel in clear",
            hint="use https:// (plain http is allowed only for 127.0.0.1/localhost), or auth: none",
        )


# ----------------------------------------------------------------------------------------- output


def _decode(response: "httpx.Response") -> tuple[bool, Any, str | None]:
    """(is JSON, the parsed JSON, the text — None for binary bodies)."""
    content_type = response.headers.get("content-type", "").lower()
    if _is_binary(content_type):
        return False, None, None
    text = response.content.decode(response.encoding or "utf-8", "replace")
    if "json" in content_type or text.lstrip()[:1] in ("{", "["):
        try:
            return True, json.loads(text), text
        except ValueError:
            pass
    return False, None, text


def _is_binary(content_type: str) -> bool:
    kind = content_type.split(";", maxsplit=1)[0].strip()
    if not kind:
        return False
    if kind.startswith(("image/", "audio/", "video/")) or kind == "application/octet-stream":
        return True
    return kind in ("application/pdf", "application/zip")


# Response headers left out of the record: `date` repeats the step's own timestamps.
_UNRECORDED_HEADERS = frozenset({"date"})


# At most this many response headers are recorded, each value cut at HEADER_VALUE_CHARS.
MAX_HEADERS = 50
HEADER_VALUE_CHARS = 500


def _recorded_headers(headers: "httpx.Headers") -> dict[str, str]:
    kept = {
        name.lower(): value if len(value) <= HEADER_VALUE_CHARS else value[:HEADER_VALUE_CHARS] + "…"
        for name, value in headers.items()
        if not is_secret_name(name) and name.lower() not in _UNRECORDED_HEADERS
    }
    return dict(sorted(kept.items())[:MAX_HEADERS])


def _output(exchange: Exchange, is_json: bool, payload: Any, text: str | None, limit: int) -> dict[str, Any]:
    response = exchange.response
    raw = response.content
    output: dict[str, Any] = {
        "method": exchange.method,
        "url": display_url(exchange.url),
        "status": response.status_code,
        "reason": response.reason_phrase,
        "ok": response.status_code < 400,
        "elapsed_ms": exchange.elapsed_ms,
        "total_ms": exchange.total_ms,
        "attempts": exchange.attempts,
        "headers": _recorded_headers(response.headers),
        "content_type": response.headers.get("content-type"),
        "body_bytes": len(raw) + exchange.dropped_bytes,
    }
    if exchange.dropped_bytes:
        output["dropped_bytes"] = exchange.dropped_bytes
    if is_json:
        bounded = bound_json(payload, max_chars=limit)
        output["json"] = bounded
        output["json_paths"] = json_paths(bounded)
        code, message = error_body(payload)
        if response.status_code >= 400 and (code or message):
            output["error"] = {"code": code, "message": message}
    elif text is not None:
        output["text"] = summarise_string(text, max_chars=limit)
    else:
        kind = (response.headers.get("content-type") or "application/octet-stream").split(";")[0]
        output["binary"] = f"<binary {kind} {len(raw)} bytes, sha256 {_short_sha(raw)}>"
    return output


def _short_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12] + "…"


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _base64_summary(encoded: str, mime: str | None = None) -> str | None:
    """`<base64 image/png N chars, sha256 …>` for base64 text, or None when it is not base64."""
    compact = "".join(encoded.split())
    try:
        data = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = mime or _sniff(data[:16])
    label = f"base64 {kind}" if kind else "base64"
    return f"<{label} {len(encoded)} chars, sha256 {_short_sha(data)}>"


def summarise_string(value: str, *, max_chars: int = BODY_CHARS, key: str | None = None) -> str:
    """A string as recorded: base64 payloads summarised, long text cut with a count of what was cut."""
    match = _BASE64_URL.match(value[:512]) if value.startswith("data:") else None
    if match is not None:
        payload = value[value.index(",") + 1 :]
        summary = _base64_summary(payload, match.group("mime"))
        if summary is not None:
            return summary
    looks_base64 = len(value) >= 16 and _BASE64_TEXT.match(value[:4096]) is not None
    if looks_base64 and ((key is not None and key.lower() in _BASE64_FIELDS) or len(value) >= _LONG_BASE64):
        summary = _base64_summary(value)
        if summary is not None:
            return summary
    if len(value) > max_chars:
        return f"{value[:max_chars]}…(+{len(value) - max_chars} chars)"
    return value


def bound_json(value: Any, *, max_chars: int = BODY_CHARS, key: str | None = None, depth: int = 0) -> Any:
    """A copy of a JSON value small enough to record: strings cut/summarised, long lists shortened."""
    if isinstance(value, str):
        return summarise_string(value, max_chars=max_chars, key=key)
    if depth >= MAX_DEPTH:
        return "<…nested too deep>" if isinstance(value, dict | list) else value
    if isinstance(value, dict):
        return {str(k): bound_json(v, max_chars=max_chars, key=str(k), depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        kept = [bound_json(v, max_chars=max_chars, key=key, depth=depth + 1) for v in value[:LIST_ITEMS]]
        if len(value) > LIST_ITEMS:
            kept.append(f"<+{len(value) - LIST_ITEMS} more items>")
        return kept
    return value


# ------------------------------------------------------------------------------------- JSON paths


def parse_path(path: str) -> list[str | int]:
    """`data[0].b64_json` -> ["data", 0, "b64_json"]; raises ValueError on bad syntax."""
    parts: list[str | int] = []
    position = 0
    text = path.strip()
    if not text:
        raise ValueError("an empty JSON path")
    while position < len(text):
        match = _PATH_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"bad JSON path {path!r} at character {position + 1}; write it like data[0].b64_json")
        name, index, _quote, quoted = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(quoted or "")
        position = match.end()
    return parts


def resolve_path(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of `path` in `document`."""
    node = document
    for part in parse_path(path):
        if isinstance(part, int):
            if not isinstance(node, list) or not -len(node) <= part < len(node):
                return False, None
            node = node[part]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False, None
    return True, node


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$@-]+$")


def json_paths(document: Any, *, limit: int = JSON_PATH_LIMIT) -> dict[str, Any]:
    """Leaf values by path (`data[0].revised_prompt`), the first `limit` of them, values shortened."""
    found: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(node, dict) and node:
            for key, value in node.items():
                step = f".{key}" if _PLAIN_KEY.match(key) else f"[{json.dumps(key)}]"
                walk(value, (prefix + step).lstrip("."))
        elif isinstance(node, list) and node:
            for index, value in enumerate(node):
                walk(value, f"{prefix}[{index}]")
        else:
            leaf = summarise_string(node, max_chars=PATH_VALUE_CHARS) if isinstance(node, str) else node
            found[prefix or "$"] = leaf

    walk(document, "")
    return found


# ----------------------------------------------------------------------------------- expectations


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regex {pattern!r}: {exc}") from None


def _is_matcher(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and set(value) <= _MATCHER_KEYS


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return summarise_string(value, max_chars=PATH_VALUE_CHARS)
    if isinstance(value, dict | list):
        text = json.dumps(bound_json(value, max_chars=60), ensure_ascii=False)
        return text if len(text) <= PATH_VALUE_CHARS else text[:PATH_VALUE_CHARS] + "…"
    return value


def _described(value: Any) -> str:
    """A value as written in a failure message: strings quoted, the rest as JSON."""
    if isinstance(value, str):
        return repr(summarise_string(value, max_chars=PATH_VALUE_CHARS))
    if isinstance(value, dict | list):
        return str(_shown(value))
    return json.dumps(value)


def _check(that: str, passed: bool, actual: Any, problem: str) -> dict[str, Any]:
    return {"that": that, "passed": passed, "actual": _shown(actual), "problem": problem}


def _header_matches(actual: str, wanted: str) -> bool:
    if actual == wanted:
        return True
    try:
        return re.fullmatch(wanted, actual) is not None
    except re.error:
        return False


def _json_check(path: str, want: Any, document: Any) -> dict[str, Any]:
    found, value = resolve_path(document, path) if document is not None else (False, None)
    shown = _described(value) if found else "missing"
    if _is_matcher(want):
        problems: list[str] = []
        if "exists" in want and bool(want["exists"]) != found:
            problems.append("is missing" if want["exists"] else f"exists ({shown})")
        if "equals" in want and (not found or value != want["equals"]):
            problems.append(f"is {shown}, expected {_described(want['equals'])}")
        if "regex" in want and (not found or re.search(str(want["regex"]), _as_text(value)) is None):
            problems.append(f"is {shown}, does not match /{want['regex']}/")
        if "contains" in want and (not found or not _contains(value, want["contains"])):
            problems.append(f"is {shown}, does not contain {_described(want['contains'])}")
        if "min_length" in want and (not found or not _long_enough(value, int(want["min_length"]))):
            problems.append(f"is {shown}, shorter than {want['min_length']}")
        rule = ", ".join(f"{k}={_shown(v)}" for k, v in want.items())
        return _check(f"json {path} {rule}", not problems, value if found else None,
                      f"json {path} " + " and ".join(problems))
    passed = found and value == want
    return _check(
        f"json {path} == {_shown(want)}",
        passed,
        value if found else None,
        f"json {path} is {shown}, expected {_described(want)}",
    )


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _contains(value: Any, wanted: Any) -> bool:
    if isinstance(value, str):
        return str(wanted) in value
    if isinstance(value, list):
        return wanted in value
    if isinstance(value, dict):
        return wanted in value
    return False


def _long_enough(value: Any, minimum: int) -> bool:
    return isinstance(value, str | list | dict) and len(value) >= minimum


def check_expectations(
    params: HttpRequestParams, exchange: Exchange, payload: Any, text: str | None
) -> list[dict[str, Any]]:
    """Every check of `expect` (plus the implicit status < 400 when `check`), passed or not."""
    expect = params.expect or HttpExpect()
    response = exchange.response
    status = response.status_code
    results: list[dict[str, Any]] = []
    if expect.status is not None:
        allowed = expect.status if isinstance(expect.status, list) else [expect.status]
        detail = _status_detail(payload, text)
        results.append(
            _check(
                f"status in {allowed}" if len(allowed) > 1 else f"status == {allowed[0]}",
                status in allowed,
                status,
                f"status is {status}{detail}, expected {' or '.join(map(str, allowed))}",
            )
        )
    elif params.check:
        results.append(
            _check("status < 400", status < 400, status, f"status is {status}{_status_detail(payload, text)}")
        )
    for path, want in expect.json_.items():
        results.append(_json_check(path, want, payload))
    for name, wanted in expect.headers.items():
        actual = response.headers.get(name)
        passed = actual is not None and _header_matches(actual, wanted)
        results.append(
            _check(
                f"header {name} ~ {wanted}",
                passed,
                actual,
                f"header {name} is {actual!r}, expected {wanted!r}" if actual is not None else f"header {name} is missing",
            )
        )
    body = text if text is not None else ""
    contains = [expect.body_contains] if isinstance(expect.body_contains, str) else expect.body_contains or []
    for needle in contains:
        results.append(
            _check(f"body contains {needle!r}", needle in body, _shown(body), f"body does not contain {needle!r}")
        )
    if expect.body_regex is not None:
        passed = re.search(expect.body_regex, body) is not None
        results.append(
            _check(f"body ~ /{expect.body_regex}/", passed, _shown(body), f"body does not match /{expect.body_regex}/")
        )
    if expect.max_latency_ms is not None:
        results.append(
            _check(
                f"latency <= {expect.max_latency_ms:g} ms",
                exchange.elapsed_ms <= expect.max_latency_ms,
                exchange.elapsed_ms,
                f"latency {exchange.elapsed_ms:g} ms > {expect.max_latency_ms:g} ms",
            )
        )
    return results


def _status_detail(payload: Any, _text: str | None) -> str:
    code, message = error_body(payload)
    if code or message:
        joined = ": ".join(part for part in (code, message) if part)
        return f" ({summarise_string(joined, max_chars=PATH_VALUE_CHARS)})"
    return ""
