"""Pseudonyms: keyed, stable, short, never leaking the key; the forget/pseudonym commands."""

from __future__ import annotations

import argparse
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from churnstream.stream.cli.commands import pseudonym as pseudonym_command
from churnstream.stream.cli.commands.forget import request_for
from churnstream.stream.contract.erasure import BadErasureRequest, ErasureRequest
from churnstream.stream.contract.pseudonym import (
    MIN_KEY_BYTES,
    Pseudonymizer,
    PseudonymKeyError,
    is_pseudonym,
    pseudonym,
)
from churnstream.stream.kafka.security import ENV_VARS
from churnstream.stream.settings import Settings

KEY = b"0123456789abcdef-test-key"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


def test_documented_format() -> None:
    # Pinned: changing the format orphans every stored state and breaks operators' look-ups.
    expected = "p-" + hmac.new(KEY, b"user-1", hashlib.sha256).hexdigest()[:32]
    assert pseudonym("user-1", KEY) == expected == "p-9151496a3348b9c8017b5afa8db19bb4"
    assert is_pseudonym(expected) and not is_pseudonym("user-1")


@given(st.text(min_size=1, max_size=128), st.text(min_size=1, max_size=128))
def test_same_id_same_pseudonym_other_id_other_pseudonym(a: str, b: str) -> None:
    assert pseudonym(a, KEY) == pseudonym(a, KEY)
    assert (pseudonym(a, KEY) == pseudonym(b, KEY)) == (a == b)
    assert is_pseudonym(pseudonym(a, KEY)) and len(pseudonym(a, KEY)) <= 128


def test_the_key_matters() -> None:
    assert pseudonym("user-1", KEY) != pseudonym("user-1", KEY + b"x")


def test_short_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(PseudonymKeyError) as info:
        pseudonym("u", b"tiny-secret")
    assert "tiny-secret" not in str(info.value)
    assert str(MIN_KEY_BYTES) in str(info.value)


def test_pseudonymizer_off_is_identity_and_repr_hides_the_key() -> None:
    assert Pseudonymizer(None)("user-1") == "user-1"
    on = Pseudonymizer(KEY)
    assert on("user-1") == pseudonym("user-1", KEY)
    assert KEY.decode() not in repr(on)


def test_pseudonym_command_prints_pseudonyms_not_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHURNSTREAM_PSEUDONYM_KEY", KEY.decode())
    args = argparse.Namespace(user_id=["alice", "bob"])
    assert pseudonym_command.run(args, Settings()) == 0
    out = capsys.readouterr().out
    assert out == f"alice\t{pseudonym('alice', KEY)}\nbob\t{pseudonym('bob', KEY)}\n"


def test_pseudonym_command_without_a_key_says_how_to_set_one() -> None:
    with pytest.raises(RuntimeError, match="CHURNSTREAM_PSEUDONYM_KEY"):
        pseudonym_command.run(argparse.Namespace(user_id=["alice"]), Settings())


def test_forget_publishes_the_pseudonym_when_the_key_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert request_for("alice", Settings()).user_id == "alice"
    monkeypatch.setenv("CHURNSTREAM_PSEUDONYM_KEY", KEY.decode())
    request = request_for("alice", Settings(), event_id="req-1")
    assert request.user_id == pseudonym("alice", KEY)
    assert b"alice" not in request.to_bytes()


def test_erasure_request_codec() -> None:
    request = ErasureRequest("e1", "u1", 1_780_000_000.0)
    assert ErasureRequest.from_bytes(request.to_bytes()) == request
    rfc = b'{"event_id":"e1","user_id":"u1","ts":"2026-03-01T12:00:00Z"}'
    assert ErasureRequest.from_bytes(rfc).ts == 1772366400.0


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"nope", "not_json"),
        (b"[1]", "not_object"),
        (b'{"event_id":"e","ts":1780000000}', "bad_field:user_id"),
        (b'{"event_id":"e","user_id":"","ts":1780000000}', "bad_field:user_id"),
        (b'{"user_id":"u","ts":1780000000}', "bad_field:event_id"),
        (b'{"event_id":"e","user_id":"u","ts":"yesterday"}', "bad_field:ts"),
        (None, "not_json"),
    ],
)
def test_erasure_request_rejects(value: bytes | None, error: str) -> None:
    with pytest.raises(BadErasureRequest, match=error):
        ErasureRequest.from_bytes(value)
