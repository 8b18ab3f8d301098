"""The redactor masks each secret in the forms it leaves the process in."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from runbook.secrets import MASK, Redactor

SECRET = 'pa\\ss/w"rd+&=kEy-9f3c'


@pytest.mark.parametrize(
    "shown",
    [
        SECRET,
        base64.b64encode(SECRET.encode()).decode(),
        base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
        "Basic " + base64.b64encode(f"apim-user:{SECRET}".encode()).decode(),
        base64.b64encode(f"x{SECRET}yz".encode()).decode(),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        json.dumps({"PASSWORD": SECRET}),
        repr({"PASSWORD": SECRET}),
    ],
)
def test_every_encoding_is_masked(shown: str) -> None:
    redactor = Redactor([SECRET])
    masked = redactor.text(f"before {shown} after")
    assert MASK in masked
    for piece in (SECRET, "kEy-9f3c", base64.b64encode(SECRET.encode()).decode()[:12]):
        assert piece not in masked, masked


def test_innocent_base64_and_text_are_left_alone() -> None:
    redactor = Redactor(["s3cr3t-value"])
    text = "image sha256 " + base64.b64encode(b"just some png bytes here").decode() + " ok"
    assert redactor.text(text) == text


def test_short_secrets_are_masked_as_whole_tokens() -> None:
    redactor = Redactor(["abc"])
    assert redactor.text("key=abc&x=1") == f"key={MASK}&x=1"
    assert redactor.text("abcdef labcx") == "abcdef labcx"  # not inside longer words


def test_a_secret_straddling_the_shell_output_bound_is_masked_whole(local_workspace) -> None:  # type: ignore[no-untyped-def]
    from conftest import invoke
    from runbook.actions.core import OUTPUT_LIMIT

    secret = "cnry-straddle-5f1e9a7d3c"
    pad = OUTPUT_LIMIT - len(secret) // 2
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: t\ninputs:\n  token: {secret: true}\nfix:\n'
        "  - id: echo\n    uses: shell\n    with:\n"
        f"      cmd: [python3, -c, \"import sys; sys.stdout.write('x' * {pad} + sys.argv[1])\", '{{{{ secrets.token }}}}']\n"
    )
    result = invoke(["run", "1.1", "--var", f"token={secret}"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    written = "".join(p.read_text() for p in (local_workspace / "reports").rglob("*") if p.is_file())
    half = secret[: len(secret) // 2]
    assert half not in written and secret not in written


def test_retry_warnings_are_masked_on_the_console_and_in_json(local_workspace) -> None:  # type: ignore[no-untyped-def]
    from conftest import invoke

    secret = "cnry-retry-8d2b61c0fe"
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: t\ninputs:\n  token: {secret: true}\nfix:\n'
        "  - id: flaky\n    uses: shell\n    retries: 1\n    delay: 0\n    with:\n"
        "      cmd: [python3, -c, \"import sys; sys.stderr.write('bad token ' + sys.argv[1]); sys.exit(1)\", "
        "'{{ secrets.token }}']\n"
    )
    for extra in ([], ["--json"]):
        result = invoke(["run", "1.1", "--var", f"token={secret}", *extra], cwd=local_workspace)
        assert result.exit_code == 1
        assert "attempt 1 failed" in result.output  # the warning was shown...
        assert secret not in result.output  # ...masked


RESUMABLE = """\
phase: "1.1"
title: t
inputs:
  token: {{secret: true}}
fix:
  - {{id: kk, uses: set, register: kk, {changes}with: {{auth: "Bearer {{{{ secrets.token }}}}"}}}}
  - {{id: gate, uses: shell, with: {{cmd: [test, -f, go.txt]}}}}
  - {{id: use, uses: shell, with: {{cmd: [python3, -c, "import sys; open('used.txt', 'w').write(sys.argv[1])", "{{{{ kk.auth }}}}"]}}}}
"""


def test_resume_never_hands_a_masked_output_to_later_steps(local_workspace) -> None:  # type: ignore[no-untyped-def]
    from conftest import invoke

    secret = "cnry-resume-41aa09be77"
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(RESUMABLE.format(changes=""))
    first = invoke(["run", "1.1", "--var", f"token={secret}"], cwd=local_workspace)
    assert first.exit_code == 1  # the gate fails: go.txt is missing
    (local_workspace / "go.txt").write_text("")
    resumed = invoke(["run", "1.1", "--resume", "--var", f"token={secret}"], cwd=local_workspace)
    assert resumed.exit_code == 0, resumed.output
    assert "running it again (it only reads)" in resumed.output
    # The later step got the real value, not the mask the record holds.
    assert (local_workspace / "used.txt").read_text() == f"Bearer {secret}"
    assert secret not in "".join(p.read_text() for p in (local_workspace / "reports").rglob("*.jsonl"))


def test_a_secret_through_a_filter_is_still_masked_everywhere(local_workspace) -> None:  # type: ignore[no-untyped-def]
    """`{{ secrets.token | reverse }}` is no value the redactor was seeded with: it becomes one."""
    from conftest import invoke

    secret = "cnry-derived-7a9c3e1b5d"
    (local_workspace / "runbooks" / "phase-1.1.yaml").write_text(
        'phase: "1.1"\ntitle: t\ninputs:\n  token: {secret: true}\nfix:\n'
        "  - id: derive\n    uses: set\n    register: s\n    with:\n"
        "      rev: \"{{ secrets.token | reverse }}\"\n"
        "      squeezed: \"{{ secrets.token | replace('-', '') }}\"\n"
        "      header: \"Bearer {{ secrets.token | upper }}\"\n"
        "      plain: \"{{ 'not secret' }}\"\n"
        "  - id: echo\n    uses: shell\n    with:\n"
        "      cmd: [python3, -c, \"import sys; print(sys.argv[1])\", '{{ s.rev }}']\n"
    )
    result = invoke(["run", "1.1", "--var", f"token={secret}"], cwd=local_workspace)
    assert result.exit_code == 0, result.output
    written = "".join(p.read_text(errors="replace") for p in (local_workspace / "reports").rglob("*") if p.is_file())
    for form in (secret[::-1], secret.upper(), secret.replace("-", "")):
        assert form not in written and form not in result.output, form
    assert "not secret" in written  # what no secret went into is kept
