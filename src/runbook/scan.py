"""`runbook scan`: run a notebook in one real kernel against a target and triage what fails.

Every chosen code cell runs in order (each under a timeout, the run carrying on after errors); each
gets a status, a duration, its error and a bounded, redacted output excerpt, and each failure a
cause read from the output and traceback: the HTTP status and Azure error code
(`DeploymentNotFound`, 401, 403 firewall, `404 Resource not found`), a `NameError` for a name an
earlier cell defines, an import error, a timeout, or a failure the cell caught and printed
(`[image] gpt-image-1 failed: 404`). Failing cells are grouped by notebook section (markdown
headings) and cause into proposed phases. The result is written as a triage report
(reports/scan/<stem>.md) and as JSON (reports/scan/<stem>.json), which `runbook new --from-scan`
turns into a runbook.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import symtable
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .errors import InputError, NotebookError
from .notebooks import Cell, Notebook
from .secrets import environment_redactor
from .workspace import Workspace

__all__ = ["Cause", "ScanCell", "ScanResult", "classify", "scan_notebook", "sections", "select_cells"]

EXCERPT_LIMIT = 600
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)
_SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
_HTTP_STATUS = re.compile(
    r"(?:HTTP(?:\s+Error)?\s*|status(?:\s+code)?\s*[=:]?\s*|\bfailed:?\s*|\berror:?\s*|^|\s)([45]\d\d)\b(?![.\d])",
    re.IGNORECASE | re.MULTILINE,
)
_AZURE_CODE = re.compile(r"""["']code["']\s*:\s*["']([A-Za-z][A-Za-z0-9_.]+)["']""")
_KNOWN_CODES = (
    "DeploymentNotFound",
    "ResourceNotFound",
    "InvalidApiVersion",
    "OperationNotSupported",
    "AuthenticationFailed",
    "PermissionDenied",
    "IpForbidden",
    "ModelNotFound",
)
# A failure a cell caught and printed: "failed: 404", "error 403", "HTTP Error 401" on one line.
_CAUGHT = re.compile(
    r"^.*(?:\b(?:failed|error)\b[:\s-]*(?:with\s+)?(?:HTTP(?:\s+Error)?\s*|status\s*)?|\bHTTP(?:\s+Error)?\s+)[45]\d\d\b.*$",
    re.IGNORECASE | re.MULTILINE,
)
_FIREWALL = re.compile(r"firewall|virtual network|ip ?forbidden|not allowed from|public access is disabled", re.I)


# ---------------------------------------------------------------------------------------------
# sections and selection


def sections(nb: Notebook) -> dict[int, list[str]]:
    """Per cell index, the markdown headings it sits under (outermost first)."""
    stack: list[tuple[int, str]] = []
    result: dict[int, list[str]] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for hashes, title in _HEADING.findall(cell.source):
                level = len(hashes)
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, title.strip()))
        result[cell.index] = [title for _, title in stack]
    return result


def _section_matches(path: Sequence[str], wanted: str) -> bool:
    for title in path:
        number = _SECTION_NUMBER.match(title)
        if number and (number.group(1) == wanted or number.group(1).startswith(wanted + ".")):
            return True
        if title.lower().startswith(wanted.lower()):
            return True
    return False


def _ranges(text: str, count: int) -> list[int]:
    """`"3-20,25"` -> [3, ..., 20, 25] (1-based cell numbers), checked against the notebook."""
    numbers: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise InputError(f"--cells {text!r}: {part!r} is not a number or a range like 3-20")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if low < 1 or high < low or high > count:
            raise InputError(f"--cells {text!r}: {part} is outside cells 1-{count}")
        numbers.extend(range(low, high + 1))
    return sorted(set(numbers))


def select_cells(nb: Notebook, cells: str | None = None, section: str | None = None) -> list[Cell]:
    """The code cells to scan: all, those numbered in `cells` ("3-20,25"), or those under `section`."""
    chosen = nb.cells
    if cells:
        wanted = set(_ranges(cells, len(nb)))
        chosen = [c for c in chosen if c.number in wanted]
    if section:
        paths = sections(nb)
        chosen = [c for c in chosen if _section_matches(paths[c.index], section)]
        if not chosen:
            titles = sorted({p[-1] for p in paths.values() if p})
            raise InputError(
                f"no cells under a section {section!r}",
                hint="sections are markdown headings; this notebook has: " + "; ".join(titles[:12]),
            )
    return [c for c in chosen if c.cell_type == "code" and c.source.strip()]


# ---------------------------------------------------------------------------------------------
# causes


@dataclass(frozen=True)
class Cause:
    """Why a cell failed: a `kind` (stable key), a one-line `summary`, HTTP status and Azure code."""

    kind: str
    summary: str
    http_status: int | None = None
    code: str | None = None
    hint: str | None = None


def _azure_code(text: str) -> str | None:
    for code in _KNOWN_CODES:
        if code in text:
            return code
    found = _AZURE_CODE.search(text)
    return found.group(1) if found else None


def _http_status(text: str) -> int | None:
    found = [int(m.group(1)) for m in _HTTP_STATUS.finditer(text)]
    return found[0] if found else None


def _http_cause(text: str, caught: bool) -> Cause | None:
    status = _http_status(text)
    code = _azure_code(text)
    prefix = "caught and printed: " if caught else ""
    kind_prefix = "caught-" if caught else ""
    if code == "DeploymentNotFound" or (status == 404 and code == "DeploymentNotFound"):
        return Cause(
            kind_prefix + "deployment-not-found",
            f"{prefix}HTTP 404 DeploymentNotFound",
            404,
            code,
            "the cell names a deployment the account does not have: discover the real deployment names",
        )
    if status == 401 or code in ("AuthenticationFailed", "Unauthorized"):
        return Cause(
            kind_prefix + "unauthorized",
            f"{prefix}HTTP 401" + (f" {code}" if code else ""),
            401,
            code,
            "the key or token is missing or wrong (APIM subscription key, api-key header)",
        )
    if status == 403 or code in ("PermissionDenied", "IpForbidden"):
        firewall = bool(_FIREWALL.search(text))
        return Cause(
            kind_prefix + ("forbidden-firewall" if firewall else "forbidden"),
            f"{prefix}HTTP 403" + (" (firewall / network rule)" if firewall else "") + (f" {code}" if code else ""),
            403,
            code,
            "the caller's network is not allowed (firewall, private endpoint)" if firewall else "missing permission",
        )
    if status == 404:
        not_found = "resource not found" in text.lower()
        return Cause(
            kind_prefix + ("resource-not-found" if not_found else "http-404"),
            f"{prefix}HTTP 404" + (" Resource not found" if not_found else "") + (f" {code}" if code else ""),
            404,
            code,
            "no route for this URL: check the API path and the URL style (deployment-style vs model-name)"
            if not_found
            else None,
        )
    if status is not None:
        return Cause(
            kind_prefix + f"http-{status}", f"{prefix}HTTP {status}" + (f" {code}" if code else ""), status, code
        )
    return None


def classify(item: Mapping[str, Any], defined_earlier: Mapping[str, int] | None = None) -> Cause | None:
    """The cause of one cell's failure (None for a cell that passed and printed no failure).

    `item` is a cell run (`CellRun.to_dict()`); `defined_earlier` maps names to the number of the
    earlier cell that defines them (for NameError hints).
    """
    status = item.get("status")
    error = item.get("error") or {}
    ename, evalue = str(error.get("ename") or ""), str(error.get("evalue") or "")
    output = "\n".join(str(item.get(k) or "") for k in ("stdout", "text", "stderr"))
    everything = "\n".join((output, ename, evalue, str(error.get("traceback") or "")))
    if status == "timeout":
        return Cause(
            "timeout", str(error.get("evalue") or "the cell timed out"), hint="raise the timeout or fix a hang"
        )
    if status == "dead":
        return Cause("kernel-died", str(item.get("message") or "the kernel died"))
    if status == "failed":
        if ename == "NameError":
            name = re.search(r"name '([^']+)' is not defined", evalue)
            missing = name.group(1) if name else "?"
            where = (defined_earlier or {}).get(missing)
            hint = (
                f"`{missing}` is defined by cell {where}, which must run first (or failed)"
                if where
                else f"no earlier cell defines `{missing}`: a cell is missing or was renamed"
            )
            return Cause("name-error", f"NameError: {missing} is not defined", hint=hint)
        if ename in ("ModuleNotFoundError", "ImportError"):
            module = re.search(r"named '([^']+)'", evalue)
            return Cause(
                "import-error",
                f"{ename}: {module.group(1) if module else evalue}",
                hint="install the package in the kernel's environment",
            )
        http = _http_cause(everything, caught=False)
        if http is not None:
            return http
        return Cause("exception", f"{ename}: {evalue}"[:200])
    if status == "ok":
        for line in _CAUGHT.findall(output):
            http = _http_cause(line, caught=True)
            if http is not None:
                return http
        return None
    return None


# ---------------------------------------------------------------------------------------------
# the result


@dataclass
class ScanCell:
    """One scanned cell. `section`: the deepest numbered heading above it ("1.5 Image generation"),
    else the nearest heading; `heading`: the nearest heading."""

    number: int
    id: str | None
    section: str
    status: str
    duration_s: float | None
    preview: str
    error_name: str | None = None
    error_value: str | None = None
    excerpt: str = ""
    cause: dict[str, Any] | None = None
    heading: str = ""

    @property
    def failing(self) -> bool:
        return self.cause is not None or self.status not in ("ok", "skipped")


@dataclass
class ScanResult:
    notebook: str
    target: str
    cells: list[ScanCell]
    started_at: str | None = None
    finished_at: str | None = None
    phases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing(self) -> list[ScanCell]:
        return [c for c in self.cells if c.failing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "notebook": self.notebook,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "summary": self.summary(),
            "cells": [asdict(c) for c in self.cells],
            "phases": self.phases,
        }

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {"scanned": len(self.cells), "failing": len(self.failing)}
        for cell in self.cells:
            counts[cell.status] = counts.get(cell.status, 0) + 1
        return counts


def preview(source: str) -> str:
    line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return line if len(line) <= 70 else line[:69] + "…"


def _symbols(source: str) -> symtable.SymbolTable | None:
    try:
        return symtable.symtable(source, "<cell>", "exec")
    except (SyntaxError, ValueError):  # IPython magics, shell escapes
        return None


def _definitions(source: str) -> set[str]:
    """Names a cell binds at top level (assignments, defs, classes, imports, loop targets)."""
    top = _symbols(source)
    if top is None:
        return set()
    return {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}


def free_names(source: str) -> set[str]:
    """Global names a cell reads (also inside its functions) that it does not bind itself: what
    earlier cells must define."""
    top = _symbols(source)
    if top is None:
        return set()
    defined = _definitions(source)
    found = {s.get_name() for s in top.get_symbols() if s.is_referenced()}
    tables = list(top.get_children())
    while tables:
        table = tables.pop()
        found |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
        tables.extend(table.get_children())
    return found - defined - set(dir(builtins))


def definers(cells: Sequence[Cell]) -> dict[str, int]:
    """Name -> number of the last cell (of `cells`, in order) that defines it."""
    found: dict[str, int] = {}
    for cell in cells:
        for name in _definitions(cell.source):
            found[name] = cell.number
    return found


def propose_phases(result: ScanResult) -> list[dict[str, Any]]:
    """Failing cells grouped by top-level section and cause: one proposed phase per group."""
    groups: dict[tuple[str, str], list[ScanCell]] = {}
    for cell in result.failing:
        kind = (cell.cause or {}).get("kind") or cell.status
        groups.setdefault((cell.section, kind), []).append(cell)
    phases = []
    for (section, kind), cells in groups.items():
        number = _SECTION_NUMBER.match(section)
        summary = (cells[0].cause or {}).get("summary") or cells[0].status
        phases.append(
            {
                "section": section,
                "phase": number.group(1) if number else None,
                "title": f"{_SECTION_NUMBER.sub('', section) or section or 'Notebook'}: {summary}",
                "cause": kind,
                "cells": [c.number for c in cells],
                "ids": [c.id for c in cells],
                "hint": (cells[0].cause or {}).get("hint"),
            }
        )
    return phases


# ---------------------------------------------------------------------------------------------
# running


def scan_notebook(
    workspace: Workspace,
    notebook: Path,
    *,
    target: str | None = None,
    cells: str | None = None,
    section: str | None = None,
    timeout: float = 60.0,
    kernel: str = "python3",
    progress: Callable[[ScanCell, int, int], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ScanResult:
    """Run the chosen code cells of `notebook` in one kernel against `target` and classify them."""
    from .kernel import CellRun, bounded, run_cells, utc_now
    from .targets import open_target

    environ = dict(os.environ if environ is None else environ)
    nb = Notebook.read(notebook)
    chosen = select_cells(nb, cells, section)
    if not chosen:
        raise InputError(f"{notebook}: no code cells to scan")
    redactor = environment_redactor(environ, workspace.read_env_file())
    paths = sections(nb)
    session = open_target(workspace, target, redactor, environ=environ)
    by_index = {c.index: c for c in chosen}
    order = [c.index for c in chosen]
    scanned: list[ScanCell] = []
    seen: list[Cell] = []

    def finished(run: CellRun) -> None:
        cell = by_index.get(run.index)
        if cell is None:
            return
        item = run.to_dict()
        cause = classify(item, definers(seen))
        seen.append(cell)
        text = "\n".join(p.rstrip("\n") for p in (run.stdout, run.text, run.stderr) if p)
        if run.error is not None:
            text = (text + "\n" if text else "") + f"{run.error.ename}: {run.error.evalue}"
        result_cell = ScanCell(
            number=cell.number,
            id=cell.id,
            section=_section_of(paths[cell.index]),
            heading=(paths[cell.index] or [""])[-1],
            status=run.status,
            duration_s=run.duration_s,
            preview=preview(cell.source),
            error_name=run.error.ename if run.error else None,
            error_value=redactor(bounded(run.error.evalue, 300)) if run.error else None,
            excerpt=redactor(bounded(text, EXCERPT_LIMIT)),
            cause=redactor(asdict(cause)) if cause else None,
        )
        scanned.append(result_cell)
        if progress is not None:
            progress(result_cell, len(scanned), len(chosen))

    started = utc_now()
    try:
        env = session.kernel_env(c.source for c in nb.cells if c.cell_type == "code")
        runs = run_cells(
            nb.as_nbformat(), order, env=env, cwd=notebook.parent, timeout=timeout, kernel_name=kernel, on_cell=finished
        )
    except NotebookError:
        raise
    finally:
        session.close()
    for run in runs:  # cells never run (the kernel died before them)
        if run.status == "not_run" and run.index in by_index:
            finished(run)
    scanned.sort(key=lambda c: order.index(c.number - 1))
    result = ScanResult(
        notebook=_shown(workspace, notebook),
        target=session.name,
        cells=scanned,
        started_at=started,
        finished_at=utc_now(),
    )
    result.phases = propose_phases(result)
    return result


def _section_of(path: Sequence[str]) -> str:
    numbered = [title for title in path if _SECTION_NUMBER.match(title)]
    return numbered[-1] if numbered else (path[-1] if path else "")


def _shown(workspace: Workspace, path: Path) -> str:
    try:
        return path.resolve().relative_to(workspace.root.resolve()).as_posix()
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# output


def _cell_md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def triage_markdown(result: ScanResult) -> str:
    """The triage report: summary, failing cells with cause, proposed phases, every cell."""
    summary = result.summary()
    lines = [
        f"# Scan: {Path(result.notebook).name}",
        "",
        f"- **Notebook:** `{result.notebook}`",
        f"- **Target:** {result.target}",
        f"- **Scanned:** {result.started_at} - {result.finished_at}",
        f"- **Cells:** {summary['scanned']} code cells run, {summary['failing']} failing",
        "",
        "## Failing cells",
        "",
    ]
    if not result.failing:
        lines += ["Every scanned cell ran without error and printed no failure.", ""]
    else:
        lines += ["| Cell | Section | Status | Cause | Output |", "|---|---|---|---|---|"]
        for cell in result.failing:
            label = f"{cell.number}" + (f" (`{cell.id}`)" if cell.id else "")
            cause = (cell.cause or {}).get("summary") or cell.status
            excerpt = cell.excerpt.splitlines()[-1] if cell.excerpt else ""
            lines.append(
                f"| {label} | {_cell_md(cell.section)} | {cell.status} | {_cell_md(cause)} | `{_cell_md(excerpt)[:120]}` |"
            )
        lines.append("")
    lines += ["## Proposed phases", ""]
    if not result.phases:
        lines += ["None: nothing to fix.", ""]
    for number, phase in enumerate(result.phases, start=1):
        cells = ", ".join(str(c) for c in phase["cells"])
        lines.append(
            f"{number}. **{phase['title']}** - cells {cells}" + (f". {phase['hint']}" if phase.get("hint") else "")
        )
    lines += [
        "",
        "Scaffold a runbook for them with `runbook new PHASE --from-scan "
        f"reports/scan/{Path(result.notebook).stem}.json`.",
        "",
        "## All scanned cells",
        "",
        "| Cell | Section | Status | Duration | First line |",
        "|---|---|---|---|---|",
    ]
    for cell in result.cells:
        duration = f"{cell.duration_s:.2f} s" if cell.duration_s is not None else "-"
        lines.append(
            f"| {cell.number} | {_cell_md(cell.section)} | {cell.status} | {duration} | `{_cell_md(cell.preview)}` |"
        )
    return "\n".join(lines) + "\n"


def write_scan(result: ScanResult, folder: Path) -> tuple[Path, Path]:
    """Write reports/scan/<stem>.md and .json; returns both paths."""
    stem = Path(result.notebook).stem
    markdown, data = folder / f"{stem}.md", folder / f"{stem}.json"
    atomic_write_text(markdown, triage_markdown(result))
    atomic_write_text(data, json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return markdown, data


def progress_line(cell: ScanCell, done: int, total: int) -> str:
    """`[ 12/230] cell 105  failed   0.31 s  HTTP 404 DeploymentNotFound`"""
    width = len(str(total))
    duration = f"{cell.duration_s:6.2f} s" if cell.duration_s is not None else "     - "
    cause = (cell.cause or {}).get("summary") or (cell.error_name or "")
    return f"[{done:>{width}}/{total}] cell {cell.number:<4} {cell.status:<8} {duration}  {cause}".rstrip()


def load_scan(path: Path) -> dict[str, Any]:
    """A scan's JSON as written by `write_scan` (an InputError for anything else)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such scan file: {path}", hint="run `runbook scan NOTEBOOK` first") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list) or "notebook" not in data:
        raise InputError(
            f"{path} is not a scan result (no `notebook` and `cells`)", hint="use the .json that `runbook scan` wrote"
        )
    return data
