"""Realistic notebook files, written the way different tools write them, for tests and benchmarks.

A notebook's content (`sample_cells`) is kept apart from how a tool serialises it (`Writer`):
JupyterLab/nbformat (indent 1, sorted keys, raw UTF-8, sources as line lists, final newline),
VS Code (uuid ids, maybe no final newline, maybe 4-space indent), an ASCII-escaping writer,
nbformat 4.4 without ids, partial ids, CRLF + tabs, minified, odd spacing, and so on. Because the
writer is deterministic, a test can build "what the tool would write after this edit" and compare
it byte for byte with what `runbook.notebooks` wrote.

`large_notebook()` makes the benchmark's 2,000-cell, ~20 MB notebook.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import nbformat

Cells = list[dict[str, Any]]


@dataclass(frozen=True)
class Writer:
    """How one tool serialises a notebook."""

    indent: int | str | None = 1
    sort_keys: bool = True
    ensure_ascii: bool = False
    final_newline: bool = True
    # "lines": one item per line (nbformat); "string": one string; "one_item": a one-element list
    # holding the whole text; "mixed": per cell one of lines / one item / a mid-line split
    source_as: Literal["lines", "string", "one_item", "mixed"] = "lines"
    newline: str = "\n"
    separators: tuple[str, str] = (",", ": ")
    ids: Literal["seed", "uuid", "none", "partial"] = "seed"
    minor: int = 5
    bom: bool = False
    via_nbformat: bool = False  # let nbformat.writes itself serialise
    ids_in_4_4: bool = False  # a 4.4 notebook whose cells carry ids anyway (editors add them)
    escape_slash: bool = False  # write "/" as "\\/" (some PHP/Java serialisers do)
    upper_hex: bool = False  # write \\u escapes with uppercase hex (\\u00E9, \\uD83D\\uDE80)
    escape_in_raw: str = ""  # characters escaped as \\uXXXX although the file is raw UTF-8
    exotic: bool = False  # add cells with "/", a form feed, a lone surrogate, uppercase-able escapes


WRITERS: dict[str, Writer] = {
    "jupyterlab": Writer(),
    "vscode": Writer(final_newline=False, ids="uuid"),
    "vscode_indent4": Writer(indent=4, ids="uuid"),
    "nbformat_write": Writer(via_nbformat=True),
    "ascii_escaped": Writer(ensure_ascii=True),
    "v4_4": Writer(ids="none", minor=4),
    "partial_ids": Writer(ids="partial"),
    "string_sources": Writer(indent=2, sort_keys=False, source_as="string", ids="uuid"),
    "crlf_tabs": Writer(indent="\t", newline="\r\n", final_newline=False),
    "minified": Writer(indent=None, separators=(",", ":"), final_newline=False, ids="uuid"),
    "odd_spacing": Writer(indent=2, separators=(", ", " : "), sort_keys=False, ids="none", minor=4),
    "bom": Writer(bom=True),
    "one_item_lists": Writer(source_as="one_item", ids="none", minor=4, exotic=True),
    "mixed_chunks": Writer(source_as="mixed", sort_keys=False, exotic=True),
    "escapes_upper": Writer(ensure_ascii=True, escape_slash=True, upper_hex=True, exotic=True),
    "escaped_in_raw": Writer(escape_in_raw="✅é", final_newline=False, exotic=True),
    "v4_4_with_ids": Writer(ids="partial", minor=4, ids_in_4_4=True),
    "crlf_ascii_4_4": Writer(
        newline="\r\n", ensure_ascii=True, final_newline=False, ids="none", minor=4, source_as="mixed"
    ),
}

VARIANT_NAMES: tuple[str, ...] = (*WRITERS, "large_outputs")

_MARKDOWN = [
    "# Lab {n}: gateway checks ✅\n\nThis section calls the **APIM** gateway — café, naïve, 日本語, 🚀.",
    "## Step {n}\n\n- discover deployments\n- fix the cell\n- verify with `curl`\n",
    '> Note: tabs\there, a backslash \\ and "quotes" survive.',
    "",
]
_CODE = [
    "import os\nprint(f\"[{n}] gateway={{os.getenv('APIM_GATEWAY_URL', '?')}} ✅\")",
    "values = [i * i for i in range({n})]\nvalues[-1] if values else None\n",
    "def step_{n}(x):\n\treturn x + {n}  # tab-indented\n\nstep_{n}(1)",
    'print("emoji 🎨 and escapes \\u00e9 \\n inside a string")\nprint("done")',
    "# empty-ish cell {n}",
]


def _png(rng: random.Random, size: int) -> str:
    header = b"\x89PNG\r\n\x1a\n"
    return base64.b64encode(header + rng.randbytes(max(size - len(header), 0))).decode("ascii")


def _outputs(rng: random.Random, n: int, output_bytes: int) -> list[dict[str, Any]]:
    outputs: list[dict[str, Any]] = [
        {"name": "stdout", "output_type": "stream", "text": f"[{n}] gateway=http://127.0.0.1 ✅\nok\n"}
    ]
    kind = n % 4
    if kind == 1:
        outputs.append(
            {
                "data": {"text/plain": f"[{n}, {n * n}]"},
                "execution_count": n,
                "metadata": {},
                "output_type": "execute_result",
            }
        )
    elif kind == 2:
        outputs.append(
            {
                "ename": "HTTPError",
                "evalue": "HTTP Error 404: Resource not found",
                "output_type": "error",
                "traceback": [
                    "\u001b[0;31m---------------------------------------------------------------\u001b[0m",
                    "\u001b[0;31mHTTPError\u001b[0m: HTTP Error 404: Resource not found",
                ],
            }
        )
    if output_bytes > 0:
        if kind == 3:
            lines = "".join(f"progress {i:05d} ▓▓▓▓▓▓▓▓ {rng.random():.6f}\n" for i in range(output_bytes // 40))
            outputs.append({"name": "stderr", "output_type": "stream", "text": lines})
        else:
            outputs.append(
                {
                    "data": {
                        "image/png": _png(rng, output_bytes * 3 // 4),
                        "text/plain": "<Figure size 640x480>",
                    },
                    "metadata": {"needs_background": "light"},
                    "output_type": "display_data",
                }
            )
    return outputs


_EXOTIC = [
    'url = "http://127.0.0.1/inference/openai/deployments"  # slashes\nname = "café — ✅ 🚀"\nprint(url, name)\n',
    "page_one = 1\fpage_two = 2\nprint(page_one)\n",
    'broken = "\ud83d lone high surrogate"\nlow = "\udc00"\nprint(len(broken))',
]


def exotic_cells() -> Cells:
    """Cells whose text stresses escaping: slashes, non-BMP, a form feed, lone surrogates."""
    return [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": text}
        for text in _EXOTIC
    ]


def sample_cells(count: int = 30, *, seed: int = 0, output_bytes: int = 0) -> Cells:
    """`count` cells of realistic content (markdown and code, outputs, tags), in a tool-neutral model:
    sources and output texts are plain strings, ids are filled in by the writer."""
    rng = random.Random(seed)
    cells: Cells = []
    for n in range(count):
        if n % 3 == 0:
            cells.append(
                {
                    "cell_type": "markdown",
                    "metadata": {},
                    "source": _MARKDOWN[(n // 3) % len(_MARKDOWN)].format(n=n),
                }
            )
            continue
        metadata: dict[str, Any] = {}
        if n % 5 == 1:
            metadata["tags"] = ["image-test" if n % 10 == 1 else "setup"]
        if n % 7 == 2:
            metadata["scrolled"] = True
        cells.append(
            {
                "cell_type": "code",
                "execution_count": n if n % 6 else None,
                "metadata": metadata,
                "outputs": _outputs(rng, n, output_bytes) if n % 6 else [],
                "source": _CODE[n % len(_CODE)].format(n=n),
            }
        )
    return cells


def _cell_id(index: int, cell: dict[str, Any], style: str) -> str | None:
    digest = hashlib.sha256(f"{index}:{cell['source']}".encode("utf-8", "surrogatepass")).hexdigest()
    if style == "seed":
        return f"cell_{index}_{digest[:8]}"
    if style == "uuid":
        return str(uuid.UUID(digest[:32]))
    if style == "partial":
        return f"cell_{index}_{digest[:8]}" if index % 2 == 0 else None
    return None


def _split(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def with_ids(cells: Cells, writer: Writer) -> Cells:
    """Give the cells the ids this writer's notebooks carry (none for 4.4, some for "partial")."""
    for index, cell in enumerate(cells):
        cell_id = _cell_id(index, cell, writer.ids) if writer.minor >= 5 or writer.ids_in_4_4 else None
        if cell_id is not None:
            cell["id"] = cell_id
    return cells


def _chunked(text: str, how: str, index: int) -> list[str]:
    if how == "mixed":
        how = ("lines", "one_item", "mid_line")[index % 3]
    if how == "one_item":
        return [text] if text else []
    lines = _split(text)
    if how == "mid_line" and lines and len(lines[0]) > 4:  # ["a = ", "1\n", ...]
        cut = len(lines[0]) // 2
        lines[0:1] = [lines[0][:cut], lines[0][cut:]]
    return lines


def _serialised_cell(cell: dict[str, Any], writer: Writer, index: int = 0) -> dict[str, Any]:
    cell = copy.deepcopy(cell)
    cell_id = cell.pop("id", None)
    if writer.source_as in ("one_item", "mixed"):
        cell["source"] = _chunked(cell["source"], writer.source_as, index)
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _chunked(output["text"], writer.source_as, index)
    elif writer.source_as == "lines":
        cell["source"] = _split(cell["source"])
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = _split(output["text"])
            for mime, value in output.get("data", {}).items():
                if mime.startswith("text/"):
                    output["data"][mime] = _split(value)
    # Key order when keys are not sorted: the order a generator script would naturally use.
    ordered: dict[str, Any] = {"cell_type": cell["cell_type"]}
    if cell_id is not None:
        ordered["id"] = cell_id
    ordered["metadata"] = cell["metadata"]
    ordered["source"] = cell["source"]
    if cell["cell_type"] == "code":
        ordered["execution_count"] = cell["execution_count"]
        ordered["outputs"] = cell["outputs"]
    return ordered


def render(cells: Cells, writer: Writer) -> bytes:
    """Serialise `cells` exactly as the tool described by `writer` would."""
    doc = {
        "cells": [_serialised_cell(c, writer, i) for i, c in enumerate(cells)],
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11.7"},
        },
        "nbformat": 4,
        "nbformat_minor": writer.minor,
    }
    if writer.via_nbformat:
        text: str = nbformat.writes(nbformat.from_dict(doc))  # type: ignore[no-untyped-call]
        text += "" if text.endswith("\n") else "\n"
    else:
        text = json.dumps(
            doc,
            indent=writer.indent,
            sort_keys=writer.sort_keys,
            ensure_ascii=writer.ensure_ascii,
            separators=writer.separators,
        )
        text = _respell(text, writer)
        text = text.replace("\n", writer.newline)
        if writer.final_newline:
            text += writer.newline
    return (b"\xef\xbb\xbf" if writer.bom else b"") + text.encode("utf-8")


_ESCAPE_OR_PAIR = re.compile(r"(\\\\)|\\u([0-9a-f]{4})")


def _respell(text: str, writer: Writer) -> str:
    """Spellings json.dumps never writes but other serialisers do (all valid JSON, same values)."""
    if writer.escape_slash:  # "/" only occurs inside strings in a notebook's JSON
        text = text.replace("/", "\\/")
    if writer.upper_hex:
        text = _ESCAPE_OR_PAIR.sub(lambda m: m.group(1) or "\\u" + m.group(2).upper(), text)
    for char in writer.escape_in_raw:
        text = text.replace(char, f"\\u{ord(char):04x}")
    if not writer.ensure_ascii:  # a lone surrogate cannot be raw UTF-8: escaped, as json does in ASCII
        text = re.sub("[\ud800-\udfff]", lambda m: f"\\u{ord(m.group()):04x}", text)
    return text


def content(name: str, *, count: int = 30, seed: int = 0) -> Cells:
    """The cells of variant `name` (before ids): `sample_cells`, plus the exotic ones for some."""
    if name == "large_outputs":
        return sample_cells(200, seed=seed, output_bytes=3_000)
    cells = sample_cells(count, seed=seed)
    if WRITERS[name].exotic:
        cells[4:4] = exotic_cells()
    return cells


def build(
    name: str,
    *,
    count: int = 30,
    seed: int = 0,
    edit: Callable[[Cells], None] | None = None,
) -> bytes:
    """The notebook variant `name` (one of VARIANT_NAMES); `edit` changes the content first, so
    `build(name, edit=...)` is what the tool itself would write after that edit."""
    cells = content(name, count=count, seed=seed)
    writer = writer_for(name)
    with_ids(cells, writer)
    if edit is not None:
        edit(cells)
    return render(cells, writer)


def writer_for(name: str) -> Writer:
    return WRITERS["jupyterlab"] if name == "large_outputs" else WRITERS[name]


def large_notebook(cells: int = 2000, target_bytes: int = 20_000_000, *, seed: int = 0) -> bytes:
    """A JupyterLab-style notebook of `cells` cells and about `target_bytes` bytes (mostly outputs)."""
    per_cell = max(target_bytes // cells, 200)
    # Half the code cells carry big outputs; two thirds of the cells are code.
    content = sample_cells(cells, seed=seed, output_bytes=int(per_cell * 1.25))
    writer = WRITERS["jupyterlab"]
    return render(with_ids(content, writer), writer)
