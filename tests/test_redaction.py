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
