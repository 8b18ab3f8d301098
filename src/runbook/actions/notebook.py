"""Built-in notebook actions: discover cells, edit them faithfully, insert cells, run cells in a kernel.

The notebook layer (`runbook.notebooks`) does the byte-faithful reading and writing and
`runbook.kernel` the execution; these actions turn them into recorded steps. Every record names
the number, the id and a content fingerprint of each cell a step addressed (`output.addressed`).
A step that addresses a cell by number fails when that number now names another cell than last run
(cells were inserted or removed above it: the old cell is found at another number), with or without
cell ids, instead of editing or running the wrong cell.
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from ..errors import ActionError, CheckFailed, NotebookError
from ..notebooks import Cell, CellAddress, Notebook, Replacement, fingerprint
from ..notebooks.cells import CellRef, to_address
from . import ActionContext, Params, Regex, Result, action
from .outputs import Output


class NotebookParams(Params):
    path: str = Field(description="the notebook, relative to the workspace")


# ---------------------------------------------------------------- declared outputs


class CellRefOutput(Output):
    number: int = Field(description="the cell's number, counting from 1 as people say 'Cell 15'")
    id: str | None = Field(description="the cell's id (nbformat 4.5+), e.g. cell_14_f21837aa")
    type: Literal["code", "markdown", "raw"] = Field(description="the cell's type")


class LineMatch(Output):
    line: int = Field(description="line number in the cell, from 1")
    text: str = Field(description="the matching line, stripped, first 200 characters")
    groups: list[str | None] = Field(description="the pattern's capture groups on that line")


class FoundCell(CellRefOutput):
    tags: list[str] = Field(description="the cell's tags")
    matches: list[LineMatch] = Field(description="lines matching `pattern` (empty without one), up to max_lines")


class CellsOutput(Output):
    notebook: str = Field(description="the notebook, as given")
    cells: list[FoundCell] = Field(description="the cells found, in notebook order")
    count: int = Field(description="how many cells were found")
    numbers: list[int] = Field(description="their numbers")
    cell_count: int = Field(description="how many cells the notebook has")


class AddressedCell(Output):
    ref: str = Field(description="the address as written (`cell number 15`, `id 'cell_14_f21837aa'`, a pattern)")
    number: int = Field(description="the cell's number when it was found")
    id: str | None = Field(description="the cell's id, if it has one")
    fingerprint: str = Field(description="a hash of the cell's source as found (drift detection without ids)")
    preview: str = Field(description="the cell's first line, shortened")
    fingerprint_after: str | None = Field(None, description="the fingerprint of the source the step left in the cell")


class ReplacementOutput(Output):
    find: str = Field(description="the text looked for")
    status: Literal["changed", "already", "failed"] = Field(description="what happened to it")
    occurrences: int = Field(description="how many times it was found")


class EditedCell(CellRefOutput):
    status: Literal["changed", "already", "failed"] = Field(description="what happened to this cell")
    replacements: list[ReplacementOutput] = Field(description="each replacement in this cell, in order")


class EditOutput(Output):
    notebook: str = Field(description="the notebook, as given")
    cell: CellRefOutput = Field(description="the cell edited")
    status: Literal["changed", "already", "failed"] = Field(description="changed, already applied, or failed")
    replacements: list[ReplacementOutput] = Field(description="each replacement, in order (of the first cell)")
    cells: list[EditedCell] | None = Field(
        None, description="with `all: true` or several matches: every cell edited, with its own result"
    )
    addressed: list[AddressedCell] = Field(description="every cell the step addressed, with its fingerprint")


class SetSourceOutput(Output):
    notebook: str = Field(description="the notebook, as given")
    cell: CellRefOutput = Field(description="the cell whose source was set")
    status: Literal["changed", "already"] = Field(description="changed, or already had that source")
    addressed: list[AddressedCell] = Field(description="every cell the step addressed, with its fingerprint")


class InsertOutput(Output):
    notebook: str = Field(description="the notebook, as given")
    cell: CellRefOutput = Field(description="the new cell (or the one already there)")
    status: Literal["inserted", "already"] = Field(description="inserted, or already there")
    anchor: CellRefOutput | None = Field(None, description="the cell it was inserted next to (when inserted)")
    addressed: list[AddressedCell] | None = Field(None, description="the anchor as addressed, with its fingerprint")


class CellErrorOutput(Output):
    ename: str = Field(description="the exception's class, e.g. KeyError")
    evalue: str = Field(description="the exception's message")
    traceback: str = Field(description="a short traceback without ANSI colours")


class CellRunOutput(Output):
    index: int = Field(description="the cell's index, from 0")
    number: int = Field(description="the cell's number, from 1")
    id: str | None = Field(description="the cell's id")
    status: Literal["ok", "failed", "timeout", "interrupted", "dead", "not_run", "skipped"] = Field(
        description="how the cell ended"
    )
    setup: bool = Field(description="true for a `setup` cell")
    started_at: str | None = Field(description="UTC time it started (ISO 8601)")
    finished_at: str | None = Field(description="UTC time it finished")
    duration_s: float | None = Field(description="seconds it ran")
    stdout: str = Field(description="what it printed, bounded")
    stderr: str = Field(description="what it wrote to stderr, bounded")
    text: str = Field(description="its text/plain results, bounded")
    output: str = Field(description="stdout and text together (what `output_contains` searches)")
    error: CellErrorOutput | None = Field(description="the exception it raised, if any")
    message: str = Field(description="why it did not run or end normally")
    execution_count: int | None = Field(description="the kernel's execution count")


class CellExpectationOutput(Output):
    cell: int = Field(description="the cell's number")
    id: str | None = Field(description="the cell's id")
    passed: bool = Field(description="whether every expectation on it held")
    failed: list[str] = Field(description="the ones that did not")
    status: str | None = Field(None, description="how the cell ended (ok, failed, timeout …)")
    excerpt: str = Field("", description="the cell's output, head and tail, bounded and redacted (for reports)")


class RunOutput(Output):
    notebook: str = Field(description="the notebook, as given")
    cells: list[CellRunOutput] = Field(description="every cell run (setup cells first), in order")
    expectations: list[CellExpectationOutput] = Field(description="each cell's expectations and result")
    ok: bool = Field(description="true when every expectation held")
    summary: dict[str, int] = Field(description="cell status -> how many cells ended so")
    addressed: list[AddressedCell] = Field(description="every cell the step addressed, with its fingerprint")


def _open(ctx: ActionContext, path: str) -> tuple[Path, Notebook]:
    resolved = ctx.resolve_path(path)
    try:
        return resolved, Notebook.read(resolved)
    except FileNotFoundError:
        raise ActionError(f"no such notebook: {path}") from None
    except NotebookError as exc:
        raise ActionError(exc.message, hint=exc.hint) from None


def _preview(source: str) -> str:
    line = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return line if len(line) <= 60 else line[:59] + "…"


class _Addressing:
    """Resolves a step's cell references and remembers what each one named, for drift detection.

    `output.addressed` of the step lists, per reference, the cell's number, id, fingerprint as found
    and (after an edit) as left. A number that now names a cell with neither fingerprint, while a
    cell with one of them sits at another number, is drift: the step fails.
    """

    def __init__(self, ctx: ActionContext, nb: Notebook) -> None:
        self.ctx, self.nb = ctx, nb
        self.entries: dict[str, dict[str, Any]] = {}
        previous = ctx.previous or {}
        output = previous.get("output") if isinstance(previous, Mapping) else None
        listed = output.get("addressed") if isinstance(output, Mapping) else None
        self.before: dict[str, Mapping[str, Any]] = {
            str(e.get("ref")): e for e in listed or [] if isinstance(e, Mapping) and e.get("ref")
        }
        # Records from before fingerprints: only the id of `output.cell` is known.
        legacy = output.get("cell") if isinstance(output, Mapping) else None
        self.legacy = legacy if isinstance(legacy, Mapping) else None

    def one(self, ref: CellRef) -> Cell:
        address = to_address(ref)
        try:
            cell = self.nb.address(address)
        except NotebookError as exc:
            raise ActionError(exc.message, hint=exc.hint) from None
        self._remember(address, cell)
        return cell

    def many(self, ref: CellRef) -> list[Cell]:
        address = to_address(ref)
        if not address.all:
            return [self.one(address)]
        try:
            cells = self.nb.select(address)
        except NotebookError as exc:
            raise ActionError(exc.message, hint=exc.hint) from None
        for cell in cells:
            self._remember(address, cell, key=f"{address.describe()} #{cell.number}")
        return cells

    def left(self, cell: Cell, source: str) -> None:
        """Note what the step left in `cell` (an edit): next run, that content is the same cell."""
        for entry in self.entries.values():
            if entry["number"] == cell.number:
                entry["fingerprint_after"] = fingerprint(cell.cell_type, source)

    def record(self) -> list[dict[str, Any]]:
        return list(self.entries.values())

    def _remember(self, address: CellAddress, cell: Cell, key: str | None = None) -> None:
        ref = key or address.describe()
        if address.number is not None:
            self._check_drift(ref, cell)
        self.entries.setdefault(
            ref,
            {
                "ref": ref,
                "number": cell.number,
                "id": cell.id,
                "fingerprint": cell.fingerprint,
                "preview": _preview(cell.source),
            },
        )

    def _check_drift(self, ref: str, cell: Cell) -> None:
        before = self.before.get(ref)
        if before is None:
            legacy = self.legacy
            if (
                legacy
                and legacy.get("id")
                and cell.id
                and legacy.get("number") == cell.number
                and legacy["id"] != cell.id
            ):
                self.ctx.warn(
                    f"cell {cell.number} is now {cell.id}; last run it was {legacy['id']}: cells moved, "
                    "address this cell by id or pattern"
                )
            return
        known = {before.get("fingerprint"), before.get("fingerprint_after")} - {None}
        if cell.fingerprint in known or (before.get("id") and before.get("id") == cell.id):
            return
        moved = [c for c in self.nb.cells if c.fingerprint in known or (before.get("id") and c.id == before.get("id"))]
        old = f"{before.get('preview') or 'a cell'!r}" + (f" ({before['id']})" if before.get("id") else "")
        new = f"{_preview(cell.source)!r}" + (f" ({cell.id})" if cell.id else "")
        if moved:
            raise ActionError(
                f"{ref} now names another cell than last run: it was {old}, now it is {new}; "
                f"that cell is now cell {moved[0].number}",
                hint="cells were inserted or removed above it: address the cell by pattern (or by id, "
                "if it has one) instead of by number",
            )
        self.ctx.warn(
            f"cell {cell.number} changed since the last run (it was {old}, now {new}); "
            "if it is another cell, address it by pattern or id"
        )


def _cell_ref(cell: Cell) -> dict[str, Any]:
    return {"number": cell.number, "id": cell.id, "type": cell.cell_type}


# ---------------------------------------------------------------- notebook.cells


class CellsParams(NotebookParams):
    pattern: Regex | None = Field(None, description="regex searched in each cell's source (multiline)")
    cell_type: Literal["code", "markdown", "raw"] | None = Field(None, description="only cells of this type")
    tag: str | None = Field(None, description="only cells with this tag")
    ignore_case: bool = Field(False, description="match `pattern` case-insensitively")
    max_lines: int = Field(20, ge=0, description="matching lines kept per cell")


@action(
    "notebook.cells",
    params=CellsParams,
    changes=False,
    output=CellsOutput,
    summary="Find cells by pattern, type or tag: number, id, type, tags and matching lines (with groups).",
)
def notebook_cells(params: CellsParams, ctx: ActionContext) -> Result:
    _path, nb = _open(ctx, params.path)
    regex = re.compile(params.pattern, re.IGNORECASE if params.ignore_case else 0) if params.pattern else None
    found = []
    for cell in nb.cells:
        if params.cell_type and cell.cell_type != params.cell_type:
            continue
        if params.tag and params.tag not in cell.tags:
            continue
        matches = []
        if regex is not None:
            for number, line in enumerate(cell.source.splitlines(), start=1):
                hit = regex.search(line)
                if hit:
                    matches.append({"line": number, "text": line.strip()[:200], "groups": list(hit.groups())})
            if not matches:
                continue
        found.append({**_cell_ref(cell), "tags": list(cell.tags), "matches": matches[: params.max_lines]})
    return Result(
        output={
            "notebook": params.path,
            "cells": found,
            "count": len(found),
            "numbers": [c["number"] for c in found],
            "cell_count": len(nb),
        }
    )


# ---------------------------------------------------------------- notebook.edit


class EditParams(NotebookParams):
    cell: CellRef = Field(description="the cell: a number, an id, or {id|number|tag|pattern: …}")
    replacements: list[Replacement] = Field(min_length=1, description="find/replace pairs, applied in order")
    description: str | None = Field(None, description="what the change does (for the report)")


def _excerpts(diff: str) -> tuple[str, str]:
    removed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    return "\n".join(removed), "\n".join(added)


def _cell_change(params_path: str, cell: Cell, status: str, description: str | None, diff: str) -> dict[str, Any]:
    before, after = _excerpts(diff)
    return {
        "kind": "cell",
        "path": params_path,
        "number": cell.number,
        "id": cell.id,
        "status": status,
        "description": description,
        "before": before,
        "after": after,
    }


@action(
    "notebook.edit",
    params=EditParams,
    changes=True,
    supports_dry_run=True,
    output=EditOutput,
    summary="Replacements in one cell, or every match of a pattern with `all: true`; idempotent; "
    "byte-faithful atomic write; records a diff.",
)
def notebook_edit(params: EditParams, ctx: ActionContext) -> Result:
    path, nb = _open(ctx, params.path)
    cells = _Addressing(ctx, nb)
    targets = cells.many(params.cell)
    edits = []
    for cell in targets:
        outcome = nb.edit_cell(cell.index, params.replacements)
        if outcome.status == "changed":
            cells.left(cell, outcome.after)
        edits.append((cell, outcome))
    per_cell = [
        {
            **_cell_ref(cell),
            "status": outcome.status,
            "replacements": [
                {"find": r.find, "status": r.status, "occurrences": r.occurrences} for r in outcome.results
            ],
        }
        for cell, outcome in edits
    ]
    failed = [(cell, outcome) for cell, outcome in edits if outcome.status == "failed"]
    changed = [(cell, outcome) for cell, outcome in edits if outcome.status == "changed"]
    status = "failed" if failed else "changed" if changed else "already"
    output: dict[str, Any] = {"notebook": params.path, "cell": _cell_ref(targets[0]), "status": status}
    output["replacements"] = per_cell[0]["replacements"]
    if len(targets) > 1 or to_address(params.cell).all:
        output["cells"] = per_cell
    output["addressed"] = cells.record()
    if failed:  # all or nothing: no cell is written when one fails
        raise ActionError(
            "; ".join(f"{params.path}: {cell.label}: {outcome.message}" for cell, outcome in failed), output=output
        )
    label = ", ".join(cell.label for cell, _ in (changed or edits))
    if not changed:
        return Result(status="ok", output=output, message=f"{label}: already applied")
    if not ctx.dry_run:
        try:
            nb.write()
        except NotebookError as exc:
            raise ActionError(exc.message, hint=exc.hint, output=output) from None
        ctx.changed_files.add(path)
    return Result(
        status="changed",
        output=output,
        diff="".join(outcome.diff for _, outcome in changed),
        changes=[
            _cell_change(params.path, cell, "changed", params.description, outcome.diff) for cell, outcome in changed
        ],
        message=label,
    )


# ---------------------------------------------------------------- notebook.set_source


class SetSourceParams(NotebookParams):
    cell: CellRef = Field(description="the cell: a number, an id, or {id|number|tag|pattern: …}")
    source: str | None = Field(None, description="the new source, inline")
    source_file: str | None = Field(None, description="or a file (relative to the workspace) holding it")
    description: str | None = Field(None, description="what the change does (for the report)")


@action(
    "notebook.set_source",
    params=SetSourceParams,
    changes=True,
    supports_dry_run=True,
    output=SetSourceOutput,
    summary="Replace a whole cell's source from inline text or a file; no-op when it already matches.",
)
def notebook_set_source(params: SetSourceParams, ctx: ActionContext) -> Result:
    if (params.source is None) == (params.source_file is None):
        raise ActionError("notebook.set_source needs exactly one of `source` and `source_file`")
    text = params.source
    if params.source_file is not None:
        text = ctx.resolve_path(params.source_file).read_text(encoding="utf-8")
    assert text is not None
    path, nb = _open(ctx, params.path)
    cells = _Addressing(ctx, nb)
    cell = cells.one(params.cell)
    before = cell.source
    cells.left(cell, text)
    output = {"notebook": params.path, "cell": _cell_ref(cell), "addressed": cells.record()}
    if before == text:
        return Result(status="ok", output={**output, "status": "already"}, message=f"{cell.label}: already applied")
    from ..notebooks import cell_diff

    diff = cell_diff(before, text, cell.label)
    nb.set_source(cell.index, text)
    if not ctx.dry_run:
        try:
            nb.write()
        except NotebookError as exc:
            raise ActionError(exc.message, hint=exc.hint, output=output) from None
        ctx.changed_files.add(path)
    return Result(
        status="changed",
        output={**output, "status": "changed"},
        diff=diff,
        changes=[_cell_change(params.path, cell, "changed", params.description, diff)],
        message=cell.label,
    )


# ---------------------------------------------------------------- notebook.insert


class InsertParams(NotebookParams):
    cell: CellRef = Field(description="the cell to insert next to")
    position: Literal["before", "after"] = Field("after", description="insert before or after the anchor cell")
    cell_type: Literal["code", "markdown", "raw"] = Field("code", description="the new cell's type")
    source: str = Field(description="the new cell's source")
    id: str | None = Field(None, description="id for the new cell (4.5+ notebooks only)")
    description: str | None = Field(None, description="what the change does (for the report)")


@action(
    "notebook.insert",
    params=InsertParams,
    changes=True,
    supports_dry_run=True,
    output=InsertOutput,
    summary="Insert a new cell before/after an addressed cell; ok when that cell is already there.",
)
def notebook_insert(params: InsertParams, ctx: ActionContext) -> Result:
    path, nb = _open(ctx, params.path)
    address = to_address(params.cell)

    def is_new(cell: Cell) -> bool:
        return cell.source == params.source and cell.cell_type == params.cell_type

    # Already inserted? The anchor itself may be the new cell (a number anchor with position
    # before names the inserted cell next run), or the new cell sits next to the anchor.
    already: Cell | None = None
    try:
        candidates = nb.select(
            address.model_copy(update={"all": True}) if address.all or address.tag or address.pattern else address
        )
    except NotebookError:
        candidates = []
    originals = [c for c in candidates if not is_new(c)]
    if candidates and not originals:
        already = candidates[0]
    elif len(originals) == 1:
        anchor = originals[0]
        side = anchor.index + (1 if params.position == "after" else -1)
        if 0 <= side < len(nb) and is_new(nb.cells[side]):
            already = nb.cells[side]
    if already is not None:
        return Result(
            status="ok",
            output={"notebook": params.path, "cell": _cell_ref(already), "status": "already"},
            message=f"{already.label}: already inserted",
        )
    cells = _Addressing(ctx, nb)
    anchor = cells.one(params.cell)
    index = anchor.index + (1 if params.position == "after" else 0)
    try:
        cell = nb.insert(index, params.cell_type, params.source, id=params.id)
    except NotebookError as exc:
        raise ActionError(exc.message, hint=exc.hint) from None
    output = {
        "notebook": params.path,
        "cell": _cell_ref(cell),
        "status": "inserted",
        "anchor": _cell_ref(anchor),
        "addressed": cells.record(),
    }
    if not ctx.dry_run:
        try:
            nb.write()
        except NotebookError as exc:
            raise ActionError(exc.message, hint=exc.hint, output=output) from None
        ctx.changed_files.add(path)
    diff = "".join(f"+{line}\n" for line in params.source.splitlines())
    return Result(
        status="changed",
        output=output,
        diff=f"--- /dev/null\n+++ b/{cell.label} (new)\n{diff}",
        changes=[_cell_change(params.path, cell, "inserted", params.description, "+" + params.source)],
        message=f"inserted {cell.label}",
    )


# ---------------------------------------------------------------- notebook.run


class CellExpectation(Params):
    cell: CellRef = Field(description="the cell this expectation is about")
    no_error: bool = Field(True, description="the cell must not raise")
    output_contains: list[str] = Field(default_factory=list, description="texts its output must contain")
    output_matches: list[Regex] = Field(default_factory=list, description="regexes its output must match")
    output_not_contains: list[str] = Field(
        default_factory=list, description="texts its output must not contain (a caught failure it printed)"
    )
    output_not_matches: list[Regex] = Field(default_factory=list, description="regexes its output must not match")


class SetupFile(Params):
    file: str = Field(description="a Python file (relative to the workspace) run before the cells")


class RunParams(NotebookParams):
    cells: list[CellRef] = Field(min_length=1, description="cells to execute, in this order")
    setup: list[CellRef] = Field(default_factory=list, description="cells run first (loaders, imports)")
    setup_code: str | SetupFile | None = Field(
        None,
        description="code run first, before the setup cells, without touching the notebook: inline, or {file: path.py}",
    )
    timeout: float = Field(120.0, gt=0, description="seconds per cell before it is interrupted")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment for the kernel")
    kernel: str = Field("python3", description="kernel name")
    expect: list[CellExpectation] = Field(
        default_factory=list, description="per-cell expectations (default: every cell runs without error)"
    )


EXCERPT_LIMIT = 800  # characters of output kept per verified cell in `output.expectations[].excerpt`


@action(
    "notebook.run",
    params=RunParams,
    # Cells can do anything (the lab's environment cell writes master-lab.env): executing them is a
    # change unless the step says `changes: false`.
    changes=True,
    output=RunOutput,
    summary="Execute chosen cells in one real Jupyter kernel with per-cell timeouts, timestamps and expectations.",
)
def notebook_run(params: RunParams, ctx: ActionContext) -> Result:
    from ..kernel import bounded, run_cells

    path, nb = _open(ctx, params.path)
    addressing = _Addressing(ctx, nb)
    setup = [addressing.one(ref) for ref in params.setup]
    cells = [addressing.one(ref) for ref in params.cells]
    setup_code = _setup_code(ctx, params.setup_code)
    env = {**_kernel_env(ctx.target, nb), **params.env}
    pool = ctx.run_state.get(KERNELS)
    started = pool.take(params.kernel, env, path.parent) if pool is not None else None
    try:
        runs = run_cells(
            nb.as_nbformat(),
            [c.index for c in cells],
            setup=[c.index for c in setup],
            setup_code=[setup_code] if setup_code else [],
            env=env,
            cwd=path.parent,
            timeout=params.timeout,
            kernel_name=params.kernel,
            stop=ctx.stop,
            on_cell=_progress_reporter(ctx, (1 if setup_code else 0) + len(setup) + len(cells)),
            kernel=started,
        )
    except NotebookError as exc:
        raise ActionError(exc.message, hint=exc.hint) from None
    results = [run.to_dict() for run in runs]
    for item in results:
        item["output"] = "\n".join(part for part in (item.get("stdout"), item.get("text")) if part)
    by_index = {run.index: item for run, item in zip(runs, results, strict=True) if not run.setup}
    problems: list[str] = []
    expectations = params.expect or [CellExpectation(cell=c.number) for c in cells]
    checked = []
    for expectation in expectations:
        cell = addressing.one(expectation.cell)
        found = by_index.get(cell.index)
        if found is None:
            problems.append(f"{cell.label} was not among the cells run")
            continue
        failed = _failed_expectations(expectation, found)
        excerpt = bounded(_output_text(found), EXCERPT_LIMIT)
        checked.append(
            {
                "cell": cell.number,
                "id": cell.id,
                "passed": not failed,
                "failed": failed,
                "status": found.get("status"),
                "excerpt": ctx.redactor(excerpt) if callable(ctx.redactor) else excerpt,
            }
        )
        problems.extend(f"{cell.label}: {text}" for text in failed)
    for run, item in zip(runs, results, strict=True):
        if run.setup and run.status not in ("ok", "skipped"):
            problems.append(f"setup {run.label} {run.status}: {_error_text(item)}")
    dead = next((r for r in runs if r.status == "dead"), None)
    output = {
        "notebook": params.path,
        "cells": results,
        "expectations": checked,
        "ok": not problems,
        "summary": {s: sum(1 for r in runs if r.status == s) for s in sorted({r.status for r in runs})},
        "addressed": addressing.record(),
    }
    if dead is not None:
        raise ActionError(
            f"the kernel died while running {dead.label}: {dead.message}",
            hint="the cell crashed the Python process (os._exit, a native crash, out of memory)",
            output=output,
        )
    if problems:  # cells that raised or missed their expected output: a check, not an error
        raise CheckFailed("; ".join(problems), output=output)
    return Result(output=output, message=f"{len(cells)} cell(s) ran")


KERNELS = "kernels"  # the run-state key of the run's runbook.kernel.KernelPool


def prestart_kernel(params: RunParams, ctx: ActionContext) -> None:
    """Start the kernel this `notebook.run` step will need, before the step comes (the executor
    calls it while steps that change nothing run first). The step adopts the kernel only if it
    still needs the same kernel name, environment and folder; the cells are read when it runs."""
    from ..kernel import KernelPool

    path, nb = _open(ctx, params.path)
    env = {**_kernel_env(ctx.target, nb), **params.env}
    pool = ctx.run_state.setdefault(KERNELS, KernelPool())
    pool.prestart(params.kernel, env, path.parent)


def _setup_code(ctx: ActionContext, value: str | SetupFile | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    file = ctx.resolve_path(value.file)
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ActionError(
            f"cannot read setup_code file {value.file}: {exc.strerror or exc}",
            hint="the path is relative to the workspace root",
        ) from None


def _kernel_env(target: Any, nb: Notebook) -> dict[str, str]:
    """The target's environment for this notebook's kernel (see TargetSession.kernel_env)."""
    kernel_env = getattr(target, "kernel_env", None)
    if callable(kernel_env):
        return dict(kernel_env(c.source for c in nb.cells if c.cell_type == "code"))
    return dict(getattr(target, "env", {}) or {})


def _output_text(item: Mapping[str, Any]) -> str:
    """What a cell showed: stdout, results, stderr, and the error line (the traceback's last line)."""
    parts = [str(item.get(k) or "") for k in ("stdout", "text", "stderr")]
    error = item.get("error") or {}
    if error:
        parts.append(f"{error.get('ename')}: {error.get('evalue')}")
    return "\n".join(p.rstrip("\n") for p in parts if p)


def _error_text(item: dict[str, Any]) -> str:
    error = item.get("error") or {}
    if error:
        return f"{error.get('ename')}: {error.get('evalue')}"
    return str(item.get("message") or item.get("status"))


def _failed_expectations(expectation: CellExpectation, item: dict[str, Any]) -> list[str]:
    failed = []
    status = item.get("status")
    if expectation.no_error and status not in ("ok", "skipped"):
        failed.append(f"{status}: {_error_text(item)}")
    text = str(item.get("output") or "")
    for wanted in expectation.output_contains:
        if wanted not in text:
            failed.append(f"output does not contain {wanted!r}")
    for pattern in expectation.output_matches:
        if not re.search(pattern, text, re.MULTILINE):
            failed.append(f"output does not match {pattern!r}")
    for unwanted in expectation.output_not_contains:
        if unwanted in text:
            failed.append(f"output contains {unwanted!r}: {_line_with(text, unwanted)!r}")
    for pattern in expectation.output_not_matches:
        hit = re.search(pattern, text, re.MULTILINE)
        if hit:
            failed.append(f"output matches {pattern!r}: {_line_with(text, hit.group())!r}")
    return failed


def _line_with(text: str, part: str) -> str:
    """The output line holding `part` (what the failing cell printed), shortened."""
    line = next((line for line in text.splitlines() if part in line), part).strip()
    return line if len(line) <= 160 else line[:159] + "…"


def _progress_reporter(ctx: ActionContext, planned: int) -> Any:
    """The kernel's per-cell hook: live progress on the terminal ("2/4 cells done, last cell 109 ok")."""
    done: list[str] = []

    def report(run: Any) -> None:
        done.append(run.label)
        ctx.progress(f"{len(done)}/{planned} cells done, last {run.label} {run.status}")

    return report
