"""The shared text module: one code-span rule, one duration format, one colour convention."""

from __future__ import annotations

import io

import pytest

from runbook.text import cell_label, code, duration_text, is_loopback, md_cell, strip_ansi, use_colour, utc_text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("text", ["a``b", "`x`", "``", "a ` b `` c ``` d"])
def test_code_span_survives_any_backtick_run(text: str) -> None:
    import markdown

    html = markdown.markdown(code(text))
    # the code element holds exactly the text, whatever backtick runs it contains
    inner = html.split("<code>", 1)[1].split("</code>", 1)[0]
    assert inner.strip() == text.strip()


def test_one_duration_format() -> None:
    assert duration_text(0.004) == "4 ms"
    assert duration_text(1.24) == "1.2 s"
    assert duration_text(75) == "1 minute 15 s"
    assert duration_text(3900) == "1 h 5 minutes"
    assert duration_text(None) == "—"


def test_utc_text_normalises_offsets() -> None:
    assert utc_text("2025-11-14T05:15:00.123+01:00") == "2025-11-14T04:15:00Z"
    assert utc_text("not a time") == "not a time"


def test_cell_label() -> None:
    assert cell_label({"number": 15, "id": "cell_14_f21837aa"}) == "15 (cell_14_f21837aa)"
    assert cell_label(number=3) == "3"
    assert cell_label(cell_id="abc") == "abc"


def test_md_cell_escapes_pipes_and_ansi() -> None:
    assert md_cell("a|b") == "a\\|b"
    assert strip_ansi("\x1b[0;31mError\x1b[0m") == "Error"


@pytest.mark.parametrize(
    ("env", "tty", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # an empty NO_COLOR does not count (no-color.org)
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "0"}, False, False),
        ({"CLICOLOR_FORCE": "1"}, False, True),
        ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False, False),
    ],
)
def test_colour_conventions(env: dict[str, str], tty: bool, expected: bool) -> None:
    stream = _Tty() if tty else io.StringIO()
    assert use_colour(stream, env) is expected


def test_loopback() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com") and not is_loopback(None)
