"""`churnstream deliver --check`: a good file is summarised, a bad one is one line, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnstream.stream.cli.main import main

GOOD = """
[[sinks]]
name = "crm"
type = "webhook"
url_env = "DELIVER_CMD_URL"
secret_env = "DELIVER_CMD_SECRET"

[[routes]]
sinks = ["crm"]
severities = ["critical"]
"""


def test_check_accepts_a_valid_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DELIVER_CMD_URL", "https://hooks.example.com/T/B/token")
    monkeypatch.setenv("DELIVER_CMD_SECRET", "hush")
    path = tmp_path / "deliver.toml"
    path.write_text(GOOD)
    assert main(["deliver", "--config", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{path}: 1 sinks, 1 routes"
    assert "token" not in out and "hush" not in out


def test_a_bad_file_is_one_line_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DELIVER_CMD_URL", "https://hooks.example.com/T/B/token")
    monkeypatch.delenv("DELIVER_CMD_SECRET", raising=False)
    path = tmp_path / "deliver.toml"
    path.write_text(GOOD)
    assert main(["deliver", "--config", str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"churnstream: {path}: sinks[0].secret_env: environment variable DELIVER_CMD_SECRET "
        "is not set\n"
    )
    monkeypatch.setenv("DELIVER_CMD_SECRET", "hush")
    path.write_text(GOOD.replace('["critical"]', '["urgent"]'))
    assert main(["deliver", "--config", str(path), "--check"]) == 1
    err = capsys.readouterr().err
    assert "routes[0].severities: unknown value 'urgent'" in err and "token" not in err
    assert "hush" not in err
    assert main(["deliver", "--config", str(tmp_path / "missing.toml"), "--check"]) == 1
    assert "missing.toml" in capsys.readouterr().err
