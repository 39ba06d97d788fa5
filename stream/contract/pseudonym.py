"""Pseudonymous user ids: a keyed hash that replaces `user_id` at ingest when a key is set.

`pseudonym(user_id, key)` = `"p-"` + the first 32 hex digits (128 bits) of
HMAC-SHA256(key, UTF-8 user_id). Properties this gives:

- stable: the same id and key always give the same pseudonym, so per-user state, partitioning
  (records are keyed by it) and joins keep working;
- not reversible without the key, and not guessable by hashing candidate ids (unlike a plain
  hash of an e-mail address), as long as the key stays secret;
- 128 bits keep collisions negligible (about 1 in 10^19 for a billion users) while the id stays
  short; the `p-` prefix marks it as a pseudonym in outputs (35 characters, within the
  contract's 128).

Rotating the key changes every pseudonym: state under the old ones is then orphaned (treat it
as a migration). Pure module: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Final

PREFIX: Final = "p-"
HEX_DIGITS: Final = 32
MIN_KEY_BYTES: Final = 16


_PATTERN: Final = re.compile(rf"{PREFIX}[0-9a-f]{{{HEX_DIGITS}}}")


def is_pseudonym(text: str) -> bool:
    """True if `text` has the exact shape of a pseudonym (`p-` and 32 lowercase hex digits)."""
    return _PATTERN.fullmatch(text) is not None


class PseudonymKeyError(ValueError):
    """The key is unusable (too short); the message never includes the key."""


def check_key(key: bytes) -> bytes:
    """Return `key` if it is long enough to resist guessing, else raise PseudonymKeyError."""
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"the pseudonym key must have at least {MIN_KEY_BYTES} bytes (has {len(key)}); "
            "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


def pseudonym(user_id: str, key: bytes) -> str:
    """The pseudonym of `user_id` under `key` (see the module docstring for the format)."""
    digest = hmac.new(check_key(key), user_id.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:HEX_DIGITS]


FINGERPRINT_LABEL: Final = b"churnstream pseudonym key fingerprint v1"
FINGERPRINT_OFF: Final = "off"


def fingerprint(key: bytes | None) -> str:
    """What workers publish so a group can see it shares one key, without the key: `off`
    without a key, else `hmac-sha256:` and 16 hex digits of HMAC-SHA256(key, a fixed label)
    (as hard to reverse as any pseudonym, and unlike any pseudonym, since the label is no
    user id)."""
    if not key:
        return FINGERPRINT_OFF
    digest = hmac.new(check_key(key), FINGERPRINT_LABEL, hashlib.sha256).hexdigest()
    return "hmac-sha256:" + digest[:16]


class Pseudonymizer:
    """Maps user ids to pseudonyms with one key; `None` key = identity (pseudonymisation off)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes | None) -> None:
        self._key = check_key(key) if key else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint (`fingerprint`), safe to publish and log."""
        return fingerprint(self._key)

    def __call__(self, user_id: str) -> str:
        return pseudonym(user_id, self._key) if self._key is not None else user_id

    def stored_id(self, user_id: str) -> str:
        """The id state is kept under, for an id an operator names (`forget`, block lists).

        With pseudonymisation on, a pseudonym is taken as given (hashing it again would name
        nobody) and a raw id is pseudonymised; off, every id is a raw id, `p-...` included. A
        raw id of the exact pseudonym shape is then read as a pseudonym: such ids must be
        named by their pseudonym (`churnstream pseudonym ID`).
        """
        if self._key is None or is_pseudonym(user_id):
            return user_id
        return pseudonym(user_id, self._key)

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(enabled={self.enabled})"
