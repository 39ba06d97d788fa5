"""deploy/prometheus/rules.yml against its runbook and its promtool tests (text only, no YAML lib).

Every rule states the basis of its threshold in a comment, links a section of docs/runbook.md
that exists, and has promtool cases where it fires and where it must not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
RULES_TESTS = (
    ROOT / "deploy" / "prometheus" / "rules_test.yml",
    ROOT / "deploy" / "prometheus" / "rules_test_daily.yml",
)
RUNBOOK = ROOT / "docs" / "runbook.md"


def _rule_blocks() -> dict[str, str]:
    """Each alert's text, from its `- alert:` line to the next one."""
    text = RULES.read_text()
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"^\s*- alert: (\w+)$", text, re.M)]
    ends = [s for s, _ in starts[1:]] + [len(text)]
    return {name: text[start:end] for (start, name), end in zip(starts, ends, strict=True)}


def _anchor(heading: str) -> str:
    """The anchor a Markdown renderer (GitHub's rules) gives a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


RULE_NAMES = sorted(_rule_blocks())


def test_rules_were_found() -> None:
    assert len(RULE_NAMES) >= 16
    for wanted in (
        "ChurnstreamModelStale",
        "ChurnstreamTrainerNotLearning",
        "ChurnstreamInputGaps",
        "ChurnstreamInputLostToRetention",
        "ChurnstreamAlertVolumeRise",
        "ChurnstreamAlertVolumeFall",
    ):
        assert wanted in RULE_NAMES


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_links_its_runbook_section(name: str) -> None:
    block = _rule_blocks()[name]
    m = re.search(r'runbook_url: "docs/runbook\.md#([\w-]+)"', block)
    assert m, f"{name} has no runbook_url into docs/runbook.md"
    anchors = {_anchor(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)}
    assert m.group(1) in anchors, f"{name}: no section #{m.group(1)} in docs/runbook.md"
    section = RUNBOOK.read_text().split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    assert "**Means:**" in section and "**Do:**" in section


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_states_its_basis(name: str) -> None:
    comments = [ln for ln in _rule_blocks()[name].splitlines() if ln.strip().startswith("#")]
    assert comments, f"{name}: no comment giving the basis of its threshold"


@pytest.mark.parametrize("name", RULE_NAMES)
def test_rule_has_firing_and_quiet_promtool_cases(name: str) -> None:
    text = "\n".join(path.read_text() for path in RULES_TESTS)
    cases = re.findall(rf"alertname: {name}\n\s*exp_alerts:(\s*\[\]|\n\s*- exp_labels)", text, re.M)
    kinds = {"quiet" if c.strip() == "[]" else "fires" for c in cases}
    assert kinds == {"quiet", "fires"}, f"{name}: promtool cases {sorted(kinds)}"
