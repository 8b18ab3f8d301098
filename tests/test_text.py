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


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"FORCE_COLOR": "1"}, True), ({"CLICOLOR_FORCE": "1"}, True), ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, False)],
)
def test_the_run_console_follows_the_colour_convention(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
) -> None:
    from runbook.console import ConsolePrinter

    for name in ("NO_COLOR", "FORCE_COLOR", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    printer = ConsolePrinter(io.StringIO())  # not a terminal
    assert printer.colour is expected
    assert ("\033[32m" in printer.paint("ok", "ok")) is expected


def test_an_empty_no_color_leaves_the_run_console_coloured_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from runbook.console import ConsolePrinter

    for name in ("FORCE_COLOR", "CLICOLOR_FORCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "")
    assert ConsolePrinter(_Tty()).colour is True


@pytest.mark.parametrize(
    "name",
    [
        "API_KEY",
        "AZURE_CLIENT_SECRET",
        "OPENAI_API_TOKEN",
        "DB_PASSWORD",
        "STORAGE_CONNECTION_STRING",
        "api-key",  # the APIM subscription-key header
        "Authorization",
        "Set-Cookie",
        "x-ms-signature",
        "subscription-key",  # query parameters
        "sig",
        "code",
        "sas_token",
    ],
)
def test_one_secret_name_heuristic_for_variables_headers_and_query_parameters(name: str) -> None:
    from runbook.azure.client import display_url
    from runbook.secrets import is_secret_name

    assert is_secret_name(name)
    assert display_url(f"https://host/p?{name}=hunter2&api-version=1") == f"https://host/p?{name}=***&api-version=1"


@pytest.mark.parametrize("name", ["api-version", "$skiptoken", "content-type", "x-ms-request-id", "MODEL", "encode"])
def test_names_that_are_not_secrets(name: str) -> None:
    from runbook.secrets import is_secret_name

    assert not is_secret_name(name)


def test_recorded_http_headers_drop_what_the_heuristic_calls_secret() -> None:
    import httpx

    from runbook.actions.http import _recorded_headers

    headers = httpx.Headers({"api-key": "k", "Set-Cookie": "c", "Content-Type": "application/json", "Date": "now"})
    assert _recorded_headers(headers) == {"content-type": "application/json"}


def test_kernels_strip_ansi_with_the_shared_pattern() -> None:
    from runbook import kernel, text

    assert kernel._ANSI is text.ANSI
