"""Files from `deploy/` that the package needs at run time, found from a checkout or a wheel.

`deploy/` is installed as the data package `churnstream.deploy` (see pyproject.toml), so the
Kafka pom and log4j config, the compose file and the Prometheus config are found the same way
whether churnstream runs from a source checkout (editable install) or from an installed wheel.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def deploy_file(relative: str) -> Path:
    """Path of `deploy/<relative>` in this installation; raises FileNotFoundError if missing."""
    path = Path(str(files("churnstream.deploy").joinpath(relative)))
    if not path.exists():
        raise FileNotFoundError(f"churnstream is installed without deploy/{relative}")
    return path
