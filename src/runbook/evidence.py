"""What makes a run's evidence trustworthy: whether a reproduce step proved the fault, and dry-run lines.

A reproduce step is evidence only when it *failed* (a check did not hold) and, when it declares an
expected failure signature (`reproduce: {expect: [...]}`), only when the failure matches it. An *error*
(the runbook or the machine is wrong) or a failure unlike the fault stops the run before any fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import RunbookError
from .model import Expectation
from .templating import evaluate


def reproduce_verdict(
    step_id: str, status: str, error: RunbookError | None, signature: Mapping[str, Any] | None
) -> tuple[str, str] | None:
    """None when a reproduce outcome is evidence (or passed); else (note kind, message) saying why not."""
    if status == "error":
        message = error.message if error is not None else "the step could not run"
        return (
            "reproduce_error",
            f"the runbook could not check the fault: step {step_id} errored before the fix ({message}); "
            "no fix was applied",
        )
    if status == "failed" and signature is not None and not signature["matched"]:
        unmet = [r["that"] for r in signature["results"] if not r["passed"]]
        return (
            "reproduce_mismatch",
            f"step {step_id} failed before the fix, but not the way the fault does (expected failure "
            f"signature not met: {'; '.join(unmet)}); no fix was applied",
        )
    return None


def match_signature(expect: Sequence[str | Expectation], context: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate an expected failure signature over a failed step's `output` (in `context`)."""
    results = []
    for item in expect:
        that, message = (item, None) if isinstance(item, str) else (item.that, item.message)
        try:
            passed = bool(evaluate(that, context))
        except RunbookError:
            passed = False
        entry: dict[str, Any] = {"that": that, "passed": passed}
        if message:
            entry["message"] = message
        results.append(entry)
    return {"matched": all(r["passed"] for r in results), "results": results}


def describe_params(params: Any, limit: int = 200) -> str:
    """A one-line view of rendered parameters for a dry-run line (`DELETE https://…`, or compact JSON)."""
    method, url = getattr(params, "method", None), getattr(params, "url", None)
    if isinstance(method, str) and isinstance(url, str):
        return f"{method.upper()} {url}"
    data = params.model_dump(by_alias=True, exclude_defaults=True) if hasattr(params, "model_dump") else params
    text = json.dumps(data, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def used_later(step_id: str, register: str | None, text: str) -> bool:
    """Whether any template of the runbook `text` names a step's output (by `steps.<id>` or its register)."""
    if re.search(rf"steps\s*(?:\.\s*{re.escape(step_id)}\b|\[\s*['\"]{re.escape(step_id)}['\"])", text):
        return True
    if register:
        return len(re.findall(rf"(?<![\w.]){re.escape(register)}\b", text)) > 1  # more than `register:` itself
    return False
