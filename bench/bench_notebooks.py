"""Big notebooks: address one cell by id, edit it and write the file, against `json.load` + `json.dump`.

The notebook is the 2,000-cell, ~20 MB JupyterLab-style notebook (mostly outputs) from
`tests/notebook_variants.large_notebook()`. runbook's side, per repetition: `Notebook.read(path)`,
`find(id=...)` for a cell in the middle, `set_source(...)`, `write()` (atomic: temporary file,
fsync, rename; only the cell's source span is re-rendered, the rest of the text is kept byte for
byte). The floor: `json.load` the file, find the cell in the list, set its source and `json.dump` the
whole document back (indent 1, as JupyterLab writes), straight over the file; the same floor with
an atomic write (temporary file, fsync, rename) is shown too. Each repetition edits the same cell to
a new text, so every write really writes. orjson (loads + dumps, atomic) is a second, faster peer.
The sides run interleaved; ratios are medians of per-round ratios. Target: within 1.2x of the
`json.load` + `json.dump` floor.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import TESTS, Row, Section, median, pair_ratio

NAME = "notebooks"
TITLE = "Big notebooks"
TARGET_RATIO = 1.2


def _large_notebook() -> bytes:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import notebook_variants  # type: ignore[import-not-found]

    data: bytes = notebook_variants.large_notebook()
    return data


def runbook_edit(path: Path, cell_id: str, text: str) -> dict[str, float]:
    from runbook.notebooks import Notebook

    times: dict[str, float] = {}
    started = time.perf_counter()
    notebook = Notebook.read(path)
    times["read"] = time.perf_counter() - started
    mark = time.perf_counter()
    (cell,) = notebook.find(id=cell_id)
    times["address"] = time.perf_counter() - mark
    mark = time.perf_counter()
    notebook.set_source(cell.index, text)
    if not notebook.write():
        raise RuntimeError("runbook.notebooks wrote nothing")
    times["edit+write"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    return times


def json_edit(path: Path, cell_id: str, text: str, *, atomic: bool) -> float:
    started = time.perf_counter()
    with path.open(encoding="utf-8") as handle:
        doc: dict[str, Any] = json.load(handle)
    cell = next(c for c in doc["cells"] if c.get("id") == cell_id)
    cell["source"] = text.splitlines(keepends=True)
    if atomic:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=1, sort_keys=True, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    else:
        with path.open("w", encoding="utf-8") as handle:
            json.dump(doc, handle, indent=1, sort_keys=True, ensure_ascii=False)
            handle.write("\n")
    return time.perf_counter() - started


def orjson_edit(path: Path, cell_id: str, text: str) -> float | None:
    """The same edit with orjson (a second, faster peer; it indents by 2, JupyterLab by 1), atomic."""
    try:
        import orjson
    except ImportError:
        return None
    started = time.perf_counter()
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    cell = next(c for c in doc["cells"] if c.get("id") == cell_id)
    cell["source"] = text.splitlines(keepends=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return time.perf_counter() - started


def _common_prefix(a: bytes, b: bytes, chunk: int = 1 << 16) -> int:
    """Length of the common prefix of two byte strings."""
    size = min(len(a), len(b))
    start = 0
    while start < size and a[start : start + chunk] == b[start : start + chunk]:
        start += chunk
    end = min(start + chunk, size)
    while start < end and a[start] == b[start]:
        start += 1
    return start


def run(quick: bool) -> Section:
    section = Section(NAME, TITLE)
    repeat = 6 if quick else 10
    data = _large_notebook()
    cells = json.loads(data)["cells"]
    middle = cells[len(cells) // 2]
    cell_id = str(middle["id"])

    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        path = Path(tmp) / "big.ipynb"
        path.write_bytes(data)
        json_edit(path, cell_id, "warm = 0\n", atomic=False)  # page cache, imports
        path.write_bytes(data)
        runbook_edit(path, cell_id, "warm = 1\n")
        rb_runs: list[dict[str, float]] = []
        plain: list[float] = []
        atomic: list[float] = []
        orjson_runs: list[float] = []
        def fresh() -> None:  # the original file, its pages written out: no run pays for another's dirty pages
            path.write_bytes(data)
            with path.open("rb+") as handle:
                os.fsync(handle.fileno())

        def orjson_round(i: int) -> None:
            fast = orjson_edit(path, cell_id, f"print('edited {i}')\n")
            if fast is not None:
                orjson_runs.append(fast)

        contenders = [
            lambda i: rb_runs.append(runbook_edit(path, cell_id, f"print('edited {i}')\n")),
            lambda i: plain.append(json_edit(path, cell_id, f"print('edited {i}')\n", atomic=False)),
            lambda i: atomic.append(json_edit(path, cell_id, f"print('edited {i}')\n", atomic=True)),
            orjson_round,
        ]
        for i in range(repeat):
            for contender in contenders if i % 2 == 0 else contenders[::-1]:  # A B C D, then D C B A
                fresh()
                contender(i)
        # what runbook wrote differs from the original only inside the edited cell's source
        path.write_bytes(data)
        runbook_edit(path, cell_id, "print('checked')\n")
        written = path.read_bytes()

    rb_totals = [r["total"] for r in rb_runs]
    total = median(rb_totals) * 1000
    floor = median(plain) * 1000
    floor_atomic = median(atomic) * 1000
    section.add(
        Row(
            f"read + find(id=) + set_source + write, {len(data) / 1e6:.1f} MB, {len(cells)} cells",
            total,
            peer="json.load + json.dump",
            peer_value=floor,
            pair=pair_ratio(plain, rb_totals),
            target=f"<= {TARGET_RATIO:g}x the floor (ratio >= {1 / TARGET_RATIO:.2f}x)",
            met=pair_ratio(plain, rb_totals) >= 1 / TARGET_RATIO,
        )
    )
    section.add(
        Row(
            "the same",
            total,
            peer="json.load + json.dump, atomic (fsync, rename)",
            peer_value=floor_atomic,
            pair=pair_ratio(atomic, rb_totals),
        )
    )
    if orjson_runs:
        section.add(
            Row(
                "the same",
                total,
                peer="orjson.loads + orjson.dumps, atomic",
                peer_value=median(orjson_runs) * 1000,
                pair=pair_ratio(orjson_runs, rb_totals),
            )
        )
    for part in ("read", "address", "edit+write"):
        section.add(Row(f"  of which {part}", median([r[part] for r in rb_runs]) * 1000))
    prefix = _common_prefix(data, written)
    suffix = _common_prefix(data[::-1], written[::-1])
    kept = min(prefix + suffix, len(data))
    section.notes.append(
        f"runbook's write replaced {len(data) - kept} bytes (the edited cell's source) and kept the other "
        f"{kept:,} bytes of the file as they were; json.dump re-serialises all of them."
    )
    return section
