"""`churnstream model list|export|import|rollback`: the model snapshots on `churn.models`.

`list` shows every snapshot the topic still holds (it is compacted: older versions of a segment
go once the broker compacts it), `export` saves one to a file: the JSON document as published,
signature included (`model/snapshot_codec.py`, `model/snapshot_signing.py`). `import` publishes
such a file, `rollback` an older version's content, each as a new version above the newest
(stream/cli/model_release.py). Reading never unpickles unless pickles are trusted: a snapshot a
worker would refuse is listed as refused, with the reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from churnstream.agents.configure import model_config
from churnstream.agents.model_feed import ROLLBACK_HEADER, snapshot_check
from churnstream.stream.cli.common import CommandError, check_output
from churnstream.stream.cli.model_release import (
    Release,
    load_file,
    prepare,
    publish,
    rollback_target,
)
from churnstream.stream.cli.model_topic import Snapshot, describe, read_snapshots
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.kafka.connect import find_bootstrap
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "model", help="list, export, import or roll back the model snapshots on churn.models"
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every snapshot the topic holds, oldest first")
    export = actions.add_parser("export", help="save a segment's snapshot (JSON) to a file")
    export.add_argument("segment", help="course, saas or docs")
    export.add_argument("file", type=Path, help="where to write the snapshot")
    export.add_argument(
        "--version", type=int, default=None, help="that version (default: the newest readable)"
    )
    imp = actions.add_parser(
        "import", help="publish a snapshot file (from `model export`) as the segment's next version"
    )
    imp.add_argument("file", type=Path, help="a snapshot file `model export` wrote")
    imp.add_argument(
        "--trust-file",
        action="store_true",
        help="accept a file that is unsigned or signed with another key (it is signed with "
        "this deployment's key when published)",
    )
    back = actions.add_parser(
        "rollback", help="publish an older version's content as the segment's next version"
    )
    back.add_argument("--segment", required=True, help="course, saas or docs")
    back.add_argument(
        "--to-version",
        type=int,
        default=None,
        help="the version to go back to (default: the one before the newest)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "export":
        check_output(args.file, "FILE")
    check = snapshot_check(settings)
    topic = settings.topic(t.MODELS)
    if args.action == "import":
        # --trust-file: the operator vouches for the file; it is still checked as data.
        file_check = (
            check.of(None, check.allow_pickle, check.features) if args.trust_file else check
        )
        model = load_file(args.file, file_check)  # a bad file fails before the broker is read
        was = model.version
        bootstrap = find_bootstrap(settings)

        def imported(snapshots: list[Snapshot]) -> Release:
            return prepare(load_file(args.file, file_check), snapshots, "import", check)

        release, offset = publish(settings, bootstrap, check, imported)
        print(
            f"{model.segment} v{was} from {args.file} published as v{release.version} "
            f"({topic} offset {offset})"
        )
        return 0
    if args.action == "rollback":
        if args.segment not in SEGMENTS:
            raise CommandError(f"unknown segment {args.segment!r} (one of {', '.join(SEGMENTS)})")
        bootstrap = find_bootstrap(settings)

        def rolled_back(snapshots: list[Snapshot]) -> Release:
            target = rollback_target(snapshots, args.segment, args.to_version, topic)
            return prepare(target, snapshots, "rollback", check, rollback_of=target.version)

        release, offset = publish(settings, bootstrap, check, rolled_back)
        source = dict(release.headers)[ROLLBACK_HEADER].decode()
        print(
            f"{args.segment} rolled back to v{source}: published as v{release.version} "
            f"({topic} offset {offset}); workers switch as they read it"
        )
        return 0
    snapshots = read_snapshots(settings, find_bootstrap(settings), check)
    if args.action == "list":
        if not snapshots:
            print(f"{topic} holds no snapshot")
        for s in snapshots:
            print(describe(s, model_config(settings)))
        return 0
    mine = [
        (s.data, s.model.version)
        for s in snapshots
        if s.segment == args.segment
        and s.model is not None
        and (args.version is None or s.model.version == args.version)
    ]
    if not mine:
        which = f"version {args.version}" if args.version is not None else "readable snapshot"
        raise CommandError(f"no {args.segment} {which} on {topic}")
    data, version = mine[-1]
    args.file.write_bytes(data)
    print(f"{args.segment} v{version} ({len(data):,} bytes) -> {args.file}")
    return 0
