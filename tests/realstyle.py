"""A generated real-style lab notebook: how repaired notebooks really look, not how the sample does.

`build_realstyle()` makes a 230-cell nbformat 4.4 notebook written the way a real lab notebook
ends up after years of editors: CRLF line endings, ASCII escaping (`\\u2705`), no final newline,
ids on about 10% of the cells only (editors add them), no tags, sections as markdown headings,
most sources as one item per line but some as a one-element list holding the whole multi-line
text (sources and stream outputs), old outputs with errors and images. The working cells come from
the sample notebook (so they run against the emulator); the rest is filler of realistic shapes,
among them cells that catch their own failure and print it (`[image] gpt-image-1 failed: 404`).

`Realstyle.number(marker)` finds a cell by a text it contains, for tests that address by number.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE_NOTEBOOK = REPO / "notebooks" / "master-ai-gateway-fix-MCP.ipynb"
CELL_COUNT = 230
# Sample cells (by their first line) kept as one-element multi-line lists, like the real notebook's 13.
ONE_ITEM_MARKERS = ("# IMAGE GENERATION CONFIG", "# IMAGE TESTS", "# ENVIRONMENT LOADER", "checks = {")

CAUGHT_FAILURE = """\
# IMAGE MODEL PROBE: try each candidate model, keep going on failure
for candidate in ["gpt-image-1", "dall-e-3"]:
    url = f"{apim_gateway_url}/{inference_api_path}/openai/deployments/{candidate}/images/generations?api-version={image_api_version}"
    status, body = post_json(url, {"prompt": "probe", "n": 1, "size": "256x256"})
    if status != 200:
        print(f"[image] {candidate} failed: {status} {body.get('error', {}).get('code', '')}")
    else:
        print(f"[image] {candidate} ok")
"""

_FILLER_CODE = [
    "values_{n} = [i * {k} for i in range({k})]\nprint('section {n}:', sum(values_{n}))\n",
    "summary_{n} = {{'cells': {n}, 'ok': True}}\nsummary_{n}\n",
    "def helper_{n}(x):\n    return x * {k}\n\n\nprint(helper_{n}(2))\n",
    "text_{n} = 'caf\u00e9 \u2705 r\u00e9sum\u00e9 {n}'\nprint(text_{n}.upper())\n",
    "import math\nprint('sqrt', round(math.sqrt({k}), 3))\n",
]
_FILLER_MARKDOWN = [
    "Notes for step {n}: the gateway answers with the deployment's own error codes.",
    "### Check {n}\n\n- run the cell below\n- compare with the expected output\n- move on",
    "> Tip {n}: never assume a model name \u2014 discover it \U0001f50e",
]


@dataclass(frozen=True)
class Realstyle:
    """The generated notebook: its bytes and its cells (as plain strings, before serialising)."""

    data: bytes
    cells: list[dict[str, Any]]

    def number(self, marker: str) -> int:
        """The 1-based number of the only cell whose source contains `marker`."""
        found = [i + 1 for i, c in enumerate(self.cells) if marker in c["source"]]
        if len(found) != 1:
            raise LookupError(f"{marker!r} is in cells {found}")
        return found[0]

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.data)
        return path


def _png(rng: random.Random, size: int) -> str:
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)).decode("ascii")


def _old_outputs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    kind = n % 5
    if kind == 0:
        return []
    if kind == 1:
        text = "".join(f"[{n}] line {i} \u2705\n" for i in range(3))
        return [{"name": "stdout", "output_type": "stream", "text": text}]
    if kind == 2:
        return [
            {
                "ename": "HTTPError",
                "evalue": "HTTP Error 404: Resource not found",
                "output_type": "error",
                "traceback": ["\x1b[0;31mHTTPError\x1b[0m: HTTP Error 404: Resource not found"],
            }
        ]
    if kind == 3:
        return [
            {
                "data": {"image/png": _png(rng, 300), "text/plain": "<Figure size 640x480 with 1 Axes>"},
                "metadata": {},
                "output_type": "display_data",
            }
        ]
    return [{"data": {"text/plain": f"{n * n}"}, "execution_count": n, "metadata": {}, "output_type": "execute_result"}]


def realstyle_cells(seed: int = 0, count: int = CELL_COUNT) -> list[dict[str, Any]]:
    """The content: the sample's cells in order, filler between them, one caught-failure probe."""
    rng = random.Random(seed)
    sample = json.loads(SAMPLE_NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    kept: list[dict[str, Any]] = []
    for cell in sample:
        source = "".join(cell["source"])
        if source.startswith("## 1.6"):  # the probe sits at the end of the image section
            kept.append({"cell_type": "code", "metadata": {}, "source": CAUGHT_FAILURE, "outputs": []})
        kept.append({"cell_type": cell["cell_type"], "metadata": {}, "source": source, "outputs": []})
    fillers = count - len(kept)
    # Filler goes after every sample cell from the fourth on, spread evenly.
    slots = [i for i, c in enumerate(kept) if i > 2]
    per_slot = [fillers // len(slots) + (1 if k < fillers % len(slots) else 0) for k in range(len(slots))]
    cells: list[dict[str, Any]] = []
    n = 0
    for index, cell in enumerate(kept):
        cells.append(cell)
        if index not in slots:
            continue
        for _ in range(per_slot[slots.index(index)]):
            n += 1
            if n % 3 == 0:
                text = _FILLER_MARKDOWN[n % len(_FILLER_MARKDOWN)].format(n=n)
                cells.append({"cell_type": "markdown", "metadata": {}, "source": text})
            else:
                text = _FILLER_CODE[n % len(_FILLER_CODE)].format(n=n, k=n % 7 + 2)
                cells.append({"cell_type": "code", "metadata": {}, "source": text, "outputs": _old_outputs(rng, n)})
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] == "code":
            cell["execution_count"] = number if cell.get("outputs") else None
    return cells


def _cell_id(index: int, source: str) -> str:
    return hashlib.sha256(f"{index}:{source}".encode()).hexdigest()[:8] + "-" + f"{index:04d}"


def _serialise(cells: list[dict[str, Any]]) -> dict[str, Any]:
    out = []
    for index, cell in enumerate(cells):
        source = cell["source"]
        one_item = source.startswith(ONE_ITEM_MARKERS) or (source.count("\n") >= 2 and index % 9 == 0)
        serial: dict[str, Any] = {"cell_type": cell["cell_type"], "metadata": cell["metadata"]}
        serial["source"] = ([source] if source else []) if one_item else source.splitlines(keepends=True)
        if index % 10 == 3:  # ids on ~10% of the cells
            serial["id"] = _cell_id(index, source)
        if cell["cell_type"] == "code":
            serial["execution_count"] = cell.get("execution_count")
            outputs = json.loads(json.dumps(cell.get("outputs", [])))
            for output in outputs:
                if "text" in output:
                    text = output["text"]
                    output["text"] = [text] if index % 2 else text.splitlines(keepends=True)
                if "text/plain" in output.get("data", {}):
                    output["data"]["text/plain"] = output["data"]["text/plain"].splitlines(keepends=True)
            serial["outputs"] = outputs
        out.append(serial)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.10.12"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }


def build_realstyle(seed: int = 0, count: int = CELL_COUNT) -> Realstyle:
    """The real-style notebook (deterministic for a seed)."""
    cells = realstyle_cells(seed, count)
    doc = _serialise(cells)
    text = json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True)
    text = re.sub(r"\n", "\r\n", text)  # CRLF, and no final newline
    return Realstyle(text.encode("ascii"), cells)
