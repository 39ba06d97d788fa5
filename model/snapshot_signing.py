"""Whether a model snapshot may be loaded: its HMAC signature, its document, its features (pure).

With a signing key (`CHURNSTREAM_MODEL_SIGNING_KEY`) every published snapshot carries an
HMAC-SHA256 of its document's bytes as the document's last field:

    {...the document snapshot_codec.encode wrote...,"signature":"hmac-sha256:<64 hex digits>"}

The signed bytes are the document without that field, exactly as encoded, so the codec's
payload is untouched and a file saved by `model export` keeps its signature. A reader with the
key refuses an unsigned snapshot or a wrong signature before decoding anything: a tree
snapshot's pickle is then unpickled only if a holder of the key wrote it. Without a key a
signature is not checked (there is nothing to check it with) and the snapshot is decoded as
before.

Every refusal is a `SnapshotRefused` with one of `REASONS`, the label of the refusal metric.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_codec import PICKLE_OPT_IN, SnapshotError, decode

ALGORITHM: Final = "hmac-sha256"
# The signature field, last in the document; whitespace after it (an edited file) is allowed.
_SIGNED: Final = re.compile(rb',"signature":"hmac-sha256:([0-9a-f]{64})"\}\s*\Z')

REASONS: Final = (
    "unparsable",  # not a snapshot document this code reads (malformed, unknown format)
    "pickle",  # a pickle, and pickles are not trusted
    "unsigned",  # no signature while a signing key is set
    "bad_signature",  # a signature that the configured key did not make
    "unknown_features",  # names features this code does not compute
    "wrong_segment",  # not the segment it is published (or restored) as
)


class SnapshotRefused(SnapshotError):
    """A snapshot this process will not load; `reason` is one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def split(data: bytes) -> tuple[bytes, str | None]:
    """The document as encoded and its signature (hex), or `(data, None)` if unsigned."""
    m = _SIGNED.search(data)
    if m is None:
        return data, None
    return data[: m.start()] + b"}", m.group(1).decode()


def digest(body: bytes, key: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(data: bytes, key: bytes) -> bytes:
    """`data` (a snapshot document, signed or not) signed with `key`."""
    body, _ = split(data)
    if body[:1] != b"{" or body[-1:] != b"}" or len(body) < 3:
        raise SnapshotError("only a snapshot document can be signed (not a pickle)")
    return b'%s,"signature":"%s:%s"}' % (body[:-1], ALGORITHM.encode(), digest(body, key).encode())


@dataclass(frozen=True, slots=True)
class SnapshotCheck:
    """How this process loads snapshots: `key` (None: signatures not required), pickles
    trusted or not, and the feature names it computes (None: any, for tests and tools)."""

    key: bytes | None = None
    allow_pickle: bool = False
    features: frozenset[str] | None = None

    @classmethod
    def of(
        cls, key: bytes | None, allow_pickle: bool, features: Iterable[str] | None
    ) -> SnapshotCheck:
        return cls(key or None, allow_pickle, None if features is None else frozenset(features))

    def sign(self, data: bytes) -> bytes:
        """`data` as published: signed when a key is set, else as it is."""
        return data if self.key is None else sign(data, self.key)

    def load(self, data: bytes, segment: str | None = None) -> SegmentModel:
        """The model in `data`, or `SnapshotRefused`; `segment`: the one it must be of."""
        body, signature = split(data)
        if self.key is not None:
            if signature is None:
                raise SnapshotRefused(
                    "unsigned", "unsigned snapshot refused (a signing key is set)"
                )
            if not hmac.compare_digest(signature, digest(body, self.key)):
                raise SnapshotRefused("bad_signature", "snapshot signature does not match the key")
        try:
            model = decode(body, allow_pickle=self.allow_pickle)
        except SnapshotError as e:
            reason = "pickle" if PICKLE_OPT_IN in str(e) else "unparsable"
            raise SnapshotRefused(reason, str(e)) from None
        except Exception as e:  # a trusted pickle can raise anything
            raise SnapshotRefused("unparsable", f"{type(e).__name__}: {e}") from None
        if self.features is not None:
            unknown = [n for n in model.feature_names if n not in self.features]
            if unknown:
                shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
                raise SnapshotRefused(
                    "unknown_features",
                    f"snapshot names {len(unknown)} features this code does not have: {shown}",
                )
        if segment is not None and model.segment != segment:
            raise SnapshotRefused(
                "wrong_segment", f"a {model.segment!r} snapshot published as {segment!r}"
            )
        return model
