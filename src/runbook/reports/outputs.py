"""How the reports show an action's output: one renderer per action name, looked up by `uses`.

Every step event carries the `uses` of its action, so the renderer is chosen by name, never by
guessing from the output's shape: `azure.deployments` gets the per-account deployment tables,
`azure.apim.operations` the operations table, `http.request` the request/status/body block,
`shell` the command and its streams, `notebook.cells` the cell listing, and `notebook.run` speaks
about its per-cell results. Any other action (the other built-ins and every plug-in from the
`runbook.actions` entry points) gets the generic renderer: tables for records and mappings, JSON for
anything deeper. A plug-in may register its own renderer with `register_renderer`.

A renderer also checks that the output has the shape it reads (`accepts`): a dry run or a record
written by an older version falls back to the generic renderer instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..text import Markdown, code, duration_text, fence, md_cell, md_table
from .markdown import EXCERPT_LINES, excerpt, first_line, plural

__all__ = [
    "OutputRenderer",
    "cell_results",
    "discovery_item",
    "output_excerpt",
    "output_observed",
    "register_renderer",
    "renderer_for",
]

TABLE_ROWS = 50
#: Discovery tables longer than this are collapsible on the site (pymdownx.details `??? note`).
COLLAPSE_ROWS = 10
Details = tuple[Markdown, dict[str, Any]]


def collapsible(block: str, rows: int, title: str) -> str:
    """`block` as is, or folded under `??? note "title (N rows)"` when it has more than COLLAPSE_ROWS rows.

    The site renders the fold with pymdownx.details (enabled in the mkdocs.yml the project writes); a
    plain markdown viewer shows the title line and the indented table.
    """
    if rows <= COLLAPSE_ROWS:
        return block
    label = title.replace('"', "'").replace("*", "")
    body = "\n".join(f"    {line}" if line else "" for line in block.split("\n"))
    return f'??? note "{label} ({rows} rows)"\n\n{body}'


def _always(_output: Any) -> bool:
    return True


def _nothing(_output: Any) -> str | None:
    return None


@dataclass(frozen=True)
class OutputRenderer:
    """How the reports show the output of one action.

    kind: a short name templates can test (`item.kind == "deployments"`); details: the discovery
    section (markdown, plus facts the summary sentence uses); accepts: whether the output has the
    shape `details` reads; excerpt: the part worth showing next to a failure; observed: one line of
    what the step got (`HTTP 404 (DeploymentNotFound)`), or None to let the step's status speak.
    """

    kind: str
    details: Callable[[Any], Details]
    accepts: Callable[[Any], bool] = _always
    excerpt: Callable[[Any], str] | None = None
    observed: Callable[[Any], str | None] = _nothing


_RENDERERS: dict[str, OutputRenderer] = {}


def register_renderer(uses: str, renderer: OutputRenderer) -> None:
    """Show the outputs of action `uses` with `renderer` (a later registration replaces an earlier one)."""
    _RENDERERS[uses] = renderer


def renderer_for(uses: str | None, output: Any = None) -> OutputRenderer:
    """The renderer of action `uses`; the generic one for unknown actions or an output it cannot read."""
    found = _RENDERERS.get(uses or "")
    if found is None or (output is not None and not found.accepts(output)):
        return GENERIC
    return found


def output_excerpt(uses: str | None, output: Any) -> str:
    """The part of an output worth showing next to a failure."""
    if output is None:
        return ""
    shown = renderer_for(uses, output).excerpt
    return shown(output) if shown is not None else excerpt(output)


def output_observed(uses: str | None, output: Any) -> str | None:
    """One line of what a step got, when its action can say (`HTTP 404`, `cell 109: KeyError: …`)."""
    if output is None:
        return None
    return renderer_for(uses, output).observed(output)


def cell_results(uses: str | None, output: Any) -> list[Mapping[str, Any]] | None:
    """notebook.run's per-cell results (number, id, status, error, stdout, setup), else None."""
    if uses != "notebook.run":
        return None
    return _cell_results(output)


def discovery_item(view: Mapping[str, Any]) -> dict[str, Any]:
    """A discovery step as the report shows it: {step, kind, markdown, facts}."""
    output = view["output"]
    facts: dict[str, Any] = {}
    if view["status"] in ("failed", "error", "interrupted"):
        kind = "failed"
        error = view["error"] or {}
        block = Markdown(f"**Failed**: {md_cell(error.get('message') or view['status'])}")
        if view["output_excerpt"]:
            block = Markdown(block + "\n\n" + fence(view["output_excerpt"]))
    elif view["status"] in ("skipped", "not_run", "running"):
        kind = "not_run"
        block = Markdown(f"*Did not run: {view['reason'] or view['status']}.*")
    else:
        renderer = renderer_for(view.get("uses"), output)
        kind = renderer.kind
        block, facts = renderer.details(output)
    return {"step": view, "kind": kind, "markdown": block, "facts": facts}


# ---------------------------------------------------------------- notebook.run


def _cell_results(output: Any) -> list[Mapping[str, Any]] | None:
    """notebook.run's per-cell results, when `output` is (or holds) a list of them."""
    candidates: Any = output
    if isinstance(output, Mapping):
        candidates = next((output[k] for k in ("cells", "results") if isinstance(output.get(k), list)), None)
    if (
        isinstance(candidates, list)
        and candidates
        and all(isinstance(c, Mapping) and "number" in c and ("status" in c or "error" in c) for c in candidates)
    ):
        return list(candidates)
    return None


def _cell_error(result: Mapping[str, Any]) -> str | None:
    error = result.get("error")
    if not error:
        return None
    if isinstance(error, Mapping):
        name = error.get("ename") or error.get("type") or "error"
        value = error.get("evalue") or error.get("message") or ""
        return f"{name}: {first_line(value)}" if value else str(name)
    return first_line(error)


def _records(value: Any) -> list[Mapping[str, Any]] | None:
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        return list(value)
    return None


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _deployment_rows(output: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    rows = _records(output.get("deployments")) or []
    if rows:
        return rows
    by_account = output.get("by_account")
    if isinstance(by_account, Mapping):
        for account, value in by_account.items():
            items = value.get("deployments") if isinstance(value, Mapping) else value
            for item in _records(items) or []:
                rows.append({"account": account, **item})
    return rows


def _fits_deployments(output: Any) -> bool:
    if not isinstance(output, Mapping):
        return False
    if "deployments" not in output and "by_account" not in output:
        return False
    rows = output.get("deployments")
    if rows is not None and not isinstance(rows, list):
        return False
    return all(isinstance(r, Mapping) and ("name" in r or "model" in r) for r in _deployment_rows(output))


def _account_names(output: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for item in output.get("accounts") or []:
        name = item.get("name") if isinstance(item, Mapping) else item
        if name is not None and str(name) not in names:
            names.append(str(name))
    for row in rows:
        if row.get("account") is not None and str(row["account"]) not in names:
            names.append(str(row["account"]))
    by_account = output.get("by_account")
    if isinstance(by_account, Mapping):
        names.extend(str(k) for k in by_account if str(k) not in names)
    return names


def _account_location(output: Mapping[str, Any], account: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
    for item in output.get("accounts") or []:
        if isinstance(item, Mapping) and str(item.get("name")) == account and item.get("location"):
            return str(item["location"])
    return next((str(r["location"]) for r in rows if r.get("location")), None)


def _sku_text(row: Mapping[str, Any]) -> str:
    sku = row.get("sku")
    if isinstance(sku, Mapping):
        sku = sku.get("name")
    capacity = row.get("capacity")
    if isinstance(row.get("sku"), Mapping) and capacity is None:
        capacity = row["sku"].get("capacity")
    if sku is None:
        return ""
    return f"{sku} ({capacity})" if capacity is not None else str(sku)


def _model_name(row: Mapping[str, Any]) -> Any:
    model = row.get("model")
    return model.get("name") if isinstance(model, Mapping) else model


def _model_version(row: Mapping[str, Any]) -> Any:
    model = row.get("model")
    if isinstance(model, Mapping):
        return model.get("version")
    return row.get("version")


def _deployments_block(output: Mapping[str, Any]) -> tuple[Markdown, dict[str, Any]]:
    rows = _deployment_rows(output)
    accounts = _account_names(output, rows)
    images = [r for r in rows if r.get("image") is True]
    without = [str(a.get("name") if isinstance(a, Mapping) else a) for a in output.get("accounts_without_match") or []]
    all_images = bool(rows) and len(images) == len(rows)
    parts: list[str] = []
    for account in accounts:
        mine = [r for r in rows if str(r.get("account")) == account]
        location = _account_location(output, account, mine)
        where = f" ({location})" if location else ""
        if not mine:
            if account in without:
                continue
            parts.append(f"**{account}**{where}: no deployments")
            continue
        table = md_table(
            (
                [
                    code(r.get("name", "")),
                    code(_model_name(r)) if _model_name(r) is not None else "",
                    _model_version(r) or "",
                    _sku_text(r),
                    Markdown("**← IMAGE MODEL**") if r.get("image") is True else "",
                ]
                for r in mine
            ),
            ["Deployment", "Model", "Version", "SKU (capacity)", ""],
        )
        total = f"{location}, " if location else ""
        heading = f"{account} ({total}{plural(len(mine), 'deployment')} total)"
        if len(mine) > COLLAPSE_ROWS:
            parts.append(collapsible(table, len(mine), heading))
        else:
            parts.append(f"**{account}** ({total}{plural(len(mine), 'deployment')} total):\n\n{table}")
    orphans = [r for r in rows if r.get("account") is None]
    if orphans:
        table = md_table(
            ([code(r.get("name", "")), _model_name(r) or "", _model_version(r) or "", _sku_text(r)] for r in orphans),
            ["Deployment", "Model", "Version", "SKU (capacity)"],
        )
        parts.append(table)
    image_accounts = {str(r.get("account")) for r in images}
    for account in accounts:
        if account in without:
            parts.append(f"**{account}**: {'No image models' if all_images else 'No matching deployments'}")
        elif images and account not in image_accounts:
            parts.append(f"**{account}**: No image models")
    facts: dict[str, Any] = {
        "deployments": len(rows),
        "accounts": len(accounts),
        "image_models": [str(r.get("name")) for r in images],
        "image_accounts": sorted({str(r.get("account")) for r in images if r.get("account") is not None}),
        "accounts_without_match": without,
    }
    if images:
        names = ", ".join(str(code(r.get("name"))) for r in images)
        where = ", ".join(f"**{a}**" for a in facts["image_accounts"])
        parts.insert(0, f"Image models: {names}" + (f" (only in {where})" if where else ""))
    return Markdown("\n\n".join(parts) if parts else "*No deployments found.*"), facts


def _fits_operations(output: Any) -> bool:
    ops = output.get("operations") if isinstance(output, Mapping) else output
    rows = _records(ops)
    return rows is not None and all("url_template" in r or "urlTemplate" in r for r in rows)


def _operations_block(output: Any) -> Markdown:
    ops = _records(output.get("operations") if isinstance(output, Mapping) else output) or []
    parts: list[str] = []
    api = output.get("api") if isinstance(output, Mapping) else None
    if isinstance(api, Mapping):
        name = api.get("name") or api.get("id") or api.get("display_name")
        line = f"**API**: {code(name)}"
        if api.get("path") is not None:
            line += f" (path: {code(api['path'])})"
        parts.append(line)
    elif isinstance(api, str):
        parts.append(f"**API**: {code(api)}")
    table = md_table(
        (
            [
                code(
                    op.get("name")
                    if op.get("name") and _is_arm_id(op.get("id"))
                    else op.get("id") or op.get("name") or ""
                ),
                op.get("display_name") or op.get("displayName") or "",
                op.get("method") or "",
                code(op.get("url_template") or op.get("urlTemplate") or ""),
            ]
            for op in ops
        ),
        ["Operation", "Display name", "Method", "URL template"],
    )
    parts.append(collapsible(table, len(ops), "Operations"))
    return Markdown("\n\n".join(parts))


def _fits_http(output: Any) -> bool:
    return (
        isinstance(output, Mapping)
        and isinstance(output.get("status"), int)
        and not isinstance(output.get("status"), bool)
        and isinstance(output.get("url"), str)
    )


def _http_body(output: Mapping[str, Any]) -> Any:
    return next((output[k] for k in ("json", "body", "text", "binary") if output.get(k) not in (None, "")), None)


def _http_block(output: Mapping[str, Any]) -> Markdown:
    method = f"{output['method']} " if isinstance(output.get("method"), str) else ""
    lines = [f"**Request**: {code(method + output['url'])}"]
    status = f"**Status**: {output['status']}" + (f" {output['reason']}" if output.get("reason") else "")
    error = output.get("error")
    if isinstance(error, Mapping) and error.get("code"):
        status += f" ({code(error['code'])})"
    lines.append(status)
    if isinstance(output.get("elapsed_ms"), int | float):
        lines.append(f"**Elapsed**: {duration_text(float(output['elapsed_ms']) / 1000)}")
    body = _http_body(output)
    if body is None:
        return Markdown("\n".join(lines))
    lang = "json" if not isinstance(body, str) else ""
    return Markdown("\n".join(lines) + f"\n\n{fence(excerpt(body), lang)}")


def _fits_shell(output: Any) -> bool:
    return isinstance(output, Mapping) and "argv" in output and ("stdout" in output or "rc" in output)


def _shell_block(output: Mapping[str, Any]) -> Markdown:
    argv = output.get("argv")
    command = " ".join(str(a) for a in argv) if isinstance(argv, list) else str(argv)
    parts = [f"**Command**: {code(command)} (exit {output.get('rc')})"]
    if output.get("json") is not None:
        parts.append(_generic_block(output["json"]))
    elif output.get("stdout"):
        parts.append(fence(excerpt(output["stdout"])))
    if output.get("stderr"):
        parts.append("stderr:\n\n" + fence(excerpt(output["stderr"], tail=True)))
    return Markdown("\n\n".join(parts))


def _is_arm_id(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith("/subscriptions/")


def _table_value(value: Any) -> Any:
    if value is None or _is_scalar(value):
        return value
    if isinstance(value, list) and all(_is_scalar(v) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, list | Mapping):
        return plural(len(value), "item")
    return str(value)


def _records_table(rows: Sequence[Mapping[str, Any]], title: str = "") -> Markdown:
    """A table of records: the union of their keys (at most 8), nested values summarised."""
    headers: list[str] = []
    for row in rows:
        headers.extend(str(k) for k in row if str(k) not in headers)
    if "name" in headers and "id" in headers and all(_is_arm_id(row.get("id")) for row in rows if "id" in row):
        headers.remove("id")  # full ARM ids make tables unreadable; the name says the same
    headers = headers[:8]
    table = str(md_table(([_table_value(row.get(h)) for h in headers] for row in rows[:TABLE_ROWS]), headers))
    more = len(rows) - TABLE_ROWS
    table += f"\n\n*… {plural(more, 'more row')} in the run record.*" if more > 0 else ""
    return Markdown(collapsible(table, len(rows), title or "Table"))


def _mapping_block(output: Mapping[str, Any]) -> Markdown:
    """A mapping: its scalars as a Name/Value table, URLs in fences, lists as tables or lines."""
    parts: list[str] = []
    scalars = [(k, v) for k, v in output.items() if _is_scalar(v)]
    urls = [(k, v) for k, v in scalars if isinstance(v, str) and re.match(r"^https?://\S+$", v)]
    plain = [(k, v) for k, v in scalars if (k, v) not in urls]
    if plain:
        parts.append(md_table(([code(k), code(v) if v is not None else ""] for k, v in plain), ["Name", "Value"]))
    for key, url in urls:
        parts.append(f"**{key}**:\n\n{fence(url)}")
    for key, value in output.items():
        if _is_scalar(value):
            continue
        if value in ({}, []):
            parts.append(f"**{key}**: none")
        elif isinstance(value, list) and all(_is_scalar(v) for v in value):
            shown = ", ".join(str(code(v)) for v in value[:30])
            parts.append(f"**{key}**: {shown}" + (f" … ({len(value) - 30} more)" if len(value) > 30 else ""))
        elif _records(value) is not None:
            parts.append(f"**{key}**:\n\n{_records_table(value, str(key))}")
        else:
            parts.append(f"**{key}**:\n\n{fence(excerpt(value, lines=30), 'json')}")
    return Markdown("\n\n".join(parts))


def _generic_block(output: Any) -> Markdown:
    """Unknown shapes: tables for records and mappings, lists as lines, anything deeper as JSON."""
    if output is None or output in ({}, []):
        return Markdown("*No output.*")
    if _is_scalar(output):
        return fence(str(output))
    rows = _records(output)
    if rows is not None:
        return _records_table(rows)
    if isinstance(output, Mapping):
        return _mapping_block(output)
    return fence(excerpt(output, lines=40), "json")


def _fits_cell_listing(output: Any) -> bool:
    """notebook.cells: {"cells": [{number, id, tags, matches: [{line, text}]}]}."""
    rows = _records(output.get("cells")) if isinstance(output, Mapping) else None
    return rows is not None and all(
        "number" in r and "status" not in r and ("matches" in r or "tags" in r or "type" in r) for r in rows
    )


def _cell_listing_block(output: Mapping[str, Any]) -> Markdown:
    rows = []
    for cell in output["cells"]:
        matches = [m for m in cell.get("matches") or [] if isinstance(m, Mapping)]
        lines = [f"L{m.get('line')}: {code(first_line(m.get('text', ''), 100))}" for m in matches[:3]]
        if len(matches) > 3:
            lines.append(f"… {len(matches) - 3} more")
        tags = ", ".join(str(code(t)) for t in cell.get("tags") or [])
        rows.append(
            [
                cell.get("number"),
                code(cell["id"]) if cell.get("id") else "",
                Markdown(tags),
                Markdown("\n".join(lines)),
            ]
        )
    notebook = f"In {code(output['notebook'])}:\n\n" if isinstance(output.get("notebook"), str) else ""
    table = md_table(rows, ["Cell", "ID", "Tags", "Matching lines"])
    return Markdown(notebook + collapsible(table, len(rows), "Cells found"))


# ---------------------------------------------------------------- excerpts and observed lines


def _streams_excerpt(output: Any) -> str:
    if not isinstance(output, Mapping) or ("stdout" not in output and "stderr" not in output):
        return excerpt(output)
    parts = []
    for key in ("stdout", "stderr"):
        if output.get(key):
            parts.append(f"{key}:\n{excerpt(output[key], tail=True)}")
    return "\n".join(parts) or excerpt(output)


def _http_excerpt(output: Mapping[str, Any]) -> str:
    head = f"HTTP {output['status']} {output.get('method', '')} {output.get('url', '')}".replace("  ", " ").rstrip()
    return head + "\n" + excerpt(_http_body(output), lines=EXCERPT_LINES - 1)


def _http_observed(output: Any) -> str | None:
    if not isinstance(output, Mapping) or type(output.get("status")) is not int:
        return None
    found = output.get("error")
    error_body: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    detail = f" ({error_body['code']})" if error_body.get("code") else ""
    return f"HTTP {output['status']}{detail}"


def _cells_excerpt(output: Any) -> str:
    parts = []
    for cell in _cell_results(output) or []:
        line = f"cell {cell.get('number')}" + (f" ({cell['id']})" if cell.get("id") else "")
        line += f": {_cell_error(cell) or cell.get('status', 'ok')}"
        parts.append(line)
        if cell.get("stdout"):
            parts.append(excerpt(cell["stdout"], lines=5, tail=True))
    return excerpt("\n".join(parts))


def _cells_observed(output: Any) -> str | None:
    cells = _cell_results(output)
    if not cells:
        return None
    failing = [(c, _cell_error(c)) for c in cells if _cell_error(c) or c.get("status") not in ("ok", "skipped")]
    if failing:
        cell, message = failing[0]
        more = f" (+{len(failing) - 1} more)" if len(failing) > 1 else ""
        return f"cell {cell.get('number')}: {message or cell.get('status')}{more}"
    ran = [str(c.get("number")) for c in cells if not c.get("setup")] or [str(c.get("number")) for c in cells]
    return f"cell{'s' if len(ran) != 1 else ''} {', '.join(ran)} ran without error"


# ---------------------------------------------------------------- the registry of built-in actions


def _with_facts(block: Callable[[Any], Markdown]) -> Callable[[Any], Details]:
    return lambda output: (block(output), {})


GENERIC = OutputRenderer("generic", _with_facts(_generic_block))
register_renderer("azure.deployments", OutputRenderer("deployments", _deployments_block, _fits_deployments))
register_renderer(
    "azure.apim.operations", OutputRenderer("apim_operations", _with_facts(_operations_block), _fits_operations)
)
register_renderer(
    "http.request",
    OutputRenderer("http", _with_facts(_http_block), _fits_http, excerpt=_http_excerpt, observed=_http_observed),
)
register_renderer("shell", OutputRenderer("shell", _with_facts(_shell_block), _fits_shell, excerpt=_streams_excerpt))
register_renderer(
    "notebook.cells", OutputRenderer("notebook_cells", _with_facts(_cell_listing_block), _fits_cell_listing)
)
register_renderer(
    "notebook.run",
    OutputRenderer(
        "generic",
        _with_facts(_generic_block),
        lambda output: _cell_results(output) is not None,
        excerpt=_cells_excerpt,
        observed=_cells_observed,
    ),
)
