"""Signed snapshots: what a worker or the trainer loads, and each reason it refuses one."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from churnstream.features import FEATURE_NAMES
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import (
    REASONS,
    SnapshotCheck,
    SnapshotRefused,
    sign,
    split,
)

KEY = b"model-signing-key-0123456789"
NAMES = ("days_since_event", "trend_active_days")
assert set(NAMES) <= set(FEATURE_NAMES)
STRICT = SnapshotCheck.of(KEY, False, FEATURE_NAMES)


def trained(segment: str = "saas", names: tuple[str, ...] = NAMES) -> SegmentModel:
    m = SegmentModel(segment, base_rate=0.04, feature_names=names, clip_z=3.0)
    for i in range(40):
        m.learn({n: float(i % 7) for n in names}, i % 5 == 0)
    return m


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def refusal(check: SnapshotCheck, data: bytes, segment: str | None = None) -> str:
    with pytest.raises(SnapshotRefused) as caught:
        check.load(data, segment)
    assert caught.value.reason in REASONS
    assert "\n" not in str(caught.value)
    return caught.value.reason


def test_a_signed_snapshot_is_the_document_plus_its_signature_and_loads() -> None:
    m = trained()
    doc = m.snapshot()
    signed = sign(doc, KEY)
    assert split(signed) == (doc, split(signed)[1]) and split(signed)[1] is not None
    assert json.loads(signed)["signature"].startswith("hmac-sha256:")
    loaded = STRICT.load(signed, "saas")
    assert (loaded.version, loaded.feature_names) == (m.version, m.feature_names)
    assert loaded.predict({"days_since_event": 3.0}) == m.predict({"days_since_event": 3.0})
    # Signing again replaces the signature; a file saved with a final newline still loads.
    assert sign(signed, KEY) == signed
    assert STRICT.load(signed + b"\n").version == m.version


def test_without_a_key_nothing_is_signed_and_any_signature_is_not_required() -> None:
    open_check = SnapshotCheck.of(None, False, FEATURE_NAMES)
    doc = trained().snapshot()
    assert open_check.sign(doc) == doc
    assert open_check.load(doc).version == open_check.load(sign(doc, b"x" * 16)).version


def test_an_unsigned_snapshot_is_refused_when_a_key_is_set() -> None:
    assert refusal(STRICT, trained().snapshot()) == "unsigned"


def test_a_tampered_or_foreign_signature_is_refused() -> None:
    signed = sign(trained().snapshot(), KEY)
    doc = json.loads(split(signed)[0])
    doc["n_pos"] += 1000  # any edit of the signed bytes
    body = json.dumps(doc, separators=(",", ":")).encode()
    forged = body[:-1] + signed[signed.rindex(b',"signature"') :]
    assert refusal(STRICT, forged) == "bad_signature"
    assert refusal(STRICT, sign(trained().snapshot(), b"another-key-0123456789")) == "bad_signature"


def test_a_crafted_pickle_is_refused_before_it_runs_even_when_pickles_are_trusted(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "pwned"
    crafted = pickle.dumps(_RunsCommand(marker))
    assert refusal(SnapshotCheck.of(None, False, None), crafted) == "pickle"
    # With a key a pickle is never signed, so even a trusting worker refuses it unrun.
    assert refusal(SnapshotCheck.of(KEY, True, None), crafted) == "unsigned"
    assert not marker.exists()


def test_what_does_not_parse_is_refused() -> None:
    check = SnapshotCheck.of(None, False, FEATURE_NAMES)
    assert refusal(check, b"{not json") == "unparsable"
    assert refusal(check, b'{"kind":"something else"}') == "unparsable"
    # Signed garbage: the signature holds, the document does not.
    assert refusal(STRICT, sign(b'{"kind":"churnstream.segment-model"}', KEY)) == "unparsable"


def test_features_this_code_does_not_have_are_refused() -> None:
    alien = trained(names=("days_since_event", "telepathy_score"))
    reason = refusal(STRICT, sign(alien.snapshot(), KEY))
    assert reason == "unknown_features"
    with pytest.raises(SnapshotRefused, match="telepathy_score"):
        STRICT.load(sign(alien.snapshot(), KEY))


def test_a_snapshot_published_under_another_segment_is_refused() -> None:
    signed = sign(trained("course").snapshot(), KEY)
    assert STRICT.load(signed, "course").segment == "course"
    assert refusal(STRICT, signed, "saas") == "wrong_segment"


def test_a_pickle_cannot_be_signed() -> None:
    with pytest.raises(ValueError, match="only a snapshot document"):
        sign(pickle.dumps({"format": 1}), KEY)
