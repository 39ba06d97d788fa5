"""The documentation stays true to the code: settings, CLI, links and the input contract.

Each test reads the docs as text and the code as the source of truth, so adding a setting, a
sub-command, an option or an accepted input field without documenting it fails here.
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest

from churnstream.stream.cli.main import build_parser
from churnstream.stream.contract.topics import (
    AUDIT,
    ERASURE,
    EXAMPLES,
    INPUT_TOPICS,
    MODELS,
    REKEYED,
)
from churnstream.stream.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]

README = ROOT / "README.md"
CONTRACT = ROOT / "docs" / "contract.md"
VALIDATION = ROOT / "stream" / "contract" / "validation.py"
MARKDOWN_FILES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Field readers of stream/contract/validation.py: `reader(d, "field", ...)` accepts input
# field "field".
FIELD_READERS = frozenset(
    {
        "_id",
        "_req_str",
        "_opt_str",
        "_req_num",
        "_opt_num",
        "_int",
        "_bool",
        "_req_enum",
        "_opt_enum",
    }
)

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


# --- markdown helpers ----------------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """Body of the section whose heading line is exactly `heading`, up to the next heading of
    the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = text.splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise AssertionError(f"heading {heading!r} not found") from None
    body = []
    for line in lines[start + 1 :]:
        hashes = len(line) - len(line.lstrip("#"))
        if 0 < hashes <= level and line[hashes : hashes + 1] == " ":
            break
        body.append(line)
    return "\n".join(body)


def table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row in `text` (header and separator rows included)."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([cell.strip() for cell in _CELL_SPLIT.split(line[1:-1])])
    return rows


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def relative_links(path: Path) -> list[str]:
    """Link targets in `path` outside code, minus absolute URLs."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", path.read_text(encoding="utf-8")))
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_helpers_find_what_they_should() -> None:
    text = "# A\n## B c\n| x | `a\\|b` |\n```\n[no](nowhere.md)\n```\n### D\n## E\n"
    assert section(text, "## B c") == "| x | `a\\|b` |\n```\n[no](nowhere.md)\n```\n### D"
    assert table_rows(text) == [["x", "`a\\|b`"]]
    assert slug("Dead-letter topic (`churn.dlq`)") == "dead-letter-topic-churndlq"
    assert slug("Keys and partitioning (addition)") == "keys-and-partitioning-addition"


# --- README: configuration -----------------------------------------------------------------


def render_default(value: Any) -> str:
    """How the README shows a default: in backticks, the empty string as `""`."""
    if value == "":
        return '`""`'
    return f"`{value}`"


def first_table(text: str) -> str:
    """The lines of the first markdown table in `text`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def config_rows() -> dict[str, list[str]]:
    """Rows of the settings table (the first table of README's Configuration), by setting."""
    rows = table_rows(first_table(section(README.read_text(encoding="utf-8"), "## Configuration")))
    return {row[0].strip("`"): row for row in rows if row[0].startswith("`")}


@pytest.mark.parametrize("name", [f.name for f in fields(Settings)])
def test_setting_in_readme_configuration_table(name: str) -> None:
    rows = config_rows()
    assert name in rows, f"Settings.{name} has no row in README.md, section Configuration"
    row = rows[name]
    assert len(row) == 4, f"row of {name}: expected setting | variable | default | meaning"
    assert row[3], f"row of {name}: the meaning is empty"
    if name == "extra":  # not read from one variable: the catch-all of other CHURNSTREAM_*
        return
    field = next(f for f in fields(Settings) if f.name == name)
    default = field.default if field.default is not MISSING else field.default_factory()
    assert row[1] == f"`{PREFIX}{name.upper()}`"
    assert row[2] == render_default(default), f"default of {name} is {default!r}"


def test_configuration_table_has_no_stale_rows() -> None:
    documented = set(config_rows())
    assert documented == {f.name for f in fields(Settings)}


# --- README: command line ------------------------------------------------------------------


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the churnstream parser has no sub-commands")


def test_cli_has_subcommands() -> None:
    assert {"worker", "demo", "tail"} <= set(subcommands())


def shared_options() -> set[str]:
    """Options every sub-command shares with the top level (e.g. --log-level): documented once
    in the section's text, not in each command's row."""
    return {o for a in build_parser()._actions for o in a.option_strings if o.startswith("--")}


def test_shared_options_in_readme() -> None:
    cli = section(README.read_text(encoding="utf-8"), "## Command line")
    for option in shared_options() - {"--help"}:
        assert option in cli, f"`churnstream {option}` is not documented"


@pytest.mark.parametrize("command", sorted(subcommands()))
def test_subcommand_and_its_options_in_readme(command: str) -> None:
    cli = section(README.read_text(encoding="utf-8"), "## Command line")
    assert f"`churnstream {command}" in cli, f"`churnstream {command}` missing from README"
    row = next((r for r in table_rows(cli) if r[0].startswith(f"`churnstream {command}")), None)
    assert row is not None, f"no row for `churnstream {command}` in the command table"
    for action in subcommands()[command]._actions:
        for option in action.option_strings:
            if option.startswith("--") and option not in shared_options():
                assert option in row[0], f"`churnstream {command} {option}` is not documented"


# --- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files(path: Path) -> None:
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no file {linked.relative_to(ROOT)})")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"broken links in {path.relative_to(ROOT)}: {broken}"


def test_link_check_sees_links() -> None:
    """Guards the regexes: the README links its docs, so the check must find those links."""
    assert "docs/contract.md" in relative_links(README)
    assert "#configuration" in relative_links(README)


# --- docs/contract.md: input topics and fields ---------------------------------------------


def accepted_fields() -> dict[str, set[str]]:
    """Input kind -> every field name `stream.contract.validation.parse` reads for that kind."""
    tree = ast.parse(VALIDATION.read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def read_by(func: ast.FunctionDef) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.IfExp):  # (_req_enum if required else _opt_enum)(d, "x", ...)
                f = f.body
            if isinstance(f, ast.Name) and f.id in FIELD_READERS:
                arg = node.args[1] if len(node.args) > 1 else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
            elif isinstance(f, ast.Name) and f.id in functions and f.id.startswith("_common"):
                names |= read_by(functions[f.id])
            elif isinstance(f, ast.Attribute) and f.attr == "get" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)  # e.g. d.get("ts"), read before its own check
        return names

    builders = next(
        n.value
        for n in tree.body
        if isinstance(n, ast.AnnAssign)
        and isinstance(n.target, ast.Name)
        and n.target.id == "_BUILDERS"
    )
    assert isinstance(builders, ast.Dict)
    out = {}
    for key, value in zip(builders.keys, builders.values, strict=True):
        assert isinstance(key, ast.Constant) and isinstance(value, ast.Name)
        out[key.value] = read_by(functions[value.id])
    return out


def test_field_extraction_sees_the_parser() -> None:
    found = accepted_fields()
    assert set(found) == set(INPUT_TOPICS)
    assert {"event_id", "user_id", "ts", "segment", "video_id", "seeks"} <= found["video_views"]
    assert {"event", "plan_price", "currency"} <= found["subscriptions"]


@pytest.mark.parametrize("kind", sorted(INPUT_TOPICS))
def test_contract_names_topic_and_every_accepted_field(kind: str) -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    topic = INPUT_TOPICS[kind]
    heading = f"### `{topic}`"
    assert heading in text.splitlines(), f"docs/contract.md has no section {heading}"
    own = section(text, heading)
    common = section(text, "## Conventions")
    missing = [
        name
        for name in sorted(accepted_fields()[kind])
        if f"`{name}`" not in own and f"`{name}`" not in common
    ]
    assert not missing, f"{topic}: fields the parser accepts but docs/contract.md omits: {missing}"


def test_contract_marks_churnstream_additions() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    dlq = section(text, "## Dead-letter topic (`churn.dlq`)")
    assert "`payload_size`" in dlq and "(addition)" in dlq
    internal = section(text, "## Internal topics (addition)")
    for topic in (REKEYED, EXAMPLES, MODELS, AUDIT, ERASURE):
        assert f"`{topic}`" in internal
    keys = section(text, "## Keys and partitioning (addition)")
    assert "murmur2" in keys and "-X topic.partitioner=murmur2_random" in keys
