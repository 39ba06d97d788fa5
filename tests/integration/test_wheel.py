"""A wheel built from the repo installs and runs outside the checkout, under `churnstream.*` only.

The fresh venv gets its third-party dependencies from the project's venv through a path file
(no download in the test) but not churnstream itself: that comes only from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from churnstream.stream.kafka.broker import docker_daemon_available

ROOT = Path(__file__).resolve().parents[2]
GENERIC = {"stream", "agents", "features", "model", "deploy"}

pytestmark = pytest.mark.slow


def _env_outside() -> dict[str, str]:
    """The environment without what would point the installed package back at this checkout."""
    dropped = {"PYTHONPATH", "KAFKA_BOOTSTRAP_SERVERS"}
    return {k: v for k, v in os.environ.items() if k not in dropped}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
        cwd=out,
    )  # fmt: skip
    (built,) = out.glob("churnstream-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path entry: the project venv's packages are importable, but its editable
    # churnstream is not (that needs its own .pth hook to run, which a path entry does not).
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
         str(wheel)],
        check=True,
    )  # fmt: skip
    return home


def test_the_wheel_holds_only_the_churnstream_namespace(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/", 1)[0] for name in zf.namelist()}
        names = set(zf.namelist())
    assert not tops & GENERIC, tops
    assert {t for t in tops if not t.endswith(".dist-info")} == {"churnstream"}
    for data in ("deploy/kafka/pom.xml", "deploy/kafka/log4j2.yaml", "model/playbook.json"):
        assert f"churnstream/{data}" in names
    assert "churnstream/deploy/docker-compose.kafka.yml" in names


def test_installed_wheel_imports_and_runs_outside_the_checkout(
    fresh_venv: Path, tmp_path: Path
) -> None:
    python = fresh_venv / "bin" / "python"
    env = {
        k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "KAFKA_BOOTSTRAP_SERVERS"}
    }
    probe = (
        "import importlib.util, churnstream.model.engine as e, churnstream.stream.cli.main;"
        "from churnstream.model.playbook import Playbook; Playbook.load();"
        "print(e.__file__);"
        "print([m for m in ('stream','agents','features','model') "
        "if importlib.util.find_spec(m)])"
    )
    out = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, env=env
    ).stdout.splitlines()
    assert str(fresh_venv) in out[0]  # from the wheel, not from the checkout
    assert out[1] == "[]"


def test_kafka_start_works_from_the_installed_wheel(fresh_venv: Path, tmp_path: Path) -> None:
    cli = fresh_venv / "bin" / "churnstream"
    env = {
        k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "KAFKA_BOOTSTRAP_SERVERS"}
    }
    env["CHURNSTREAM_KAFKA_HOME"] = str(tmp_path / "kafka")
    if docker_daemon_available():
        pytest.skip("a Docker daemon answers: `kafka start` would use the compose broker")
    try:
        started = subprocess.run(
            [cli, "kafka", "start"], capture_output=True, text=True, cwd=tmp_path, env=env,
            timeout=300, check=False,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().startswith("127.0.0.1:")
    finally:
        subprocess.run(
            [cli, "kafka", "stop"], capture_output=True, cwd=tmp_path, env=env, timeout=120,
            check=False,
        )  # fmt: skip
