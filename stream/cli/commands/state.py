"""`churnstream state USER_ID`: a user's current features and score, from the worker."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from churnstream.stream.cli.common import CommandError
from churnstream.stream.kafka.client import security_settings
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("state", help="show a user's features, last score and pending labels")
    p.add_argument("user_id", help="the user id as the worker stores it")
    p.add_argument("--json", action="store_true", help="the worker's JSON answer as it is")
    p.add_argument(
        "--url",
        default=None,
        help="worker web URL (default: http://$CHURNSTREAM_WEB_HOST:$CHURNSTREAM_WEB_PORT, "
        "else http://127.0.0.1:6066)",
    )
    p.set_defaults(handler=run)


def fetch(base: str, user_id: str, token: str | None = None) -> dict[str, Any] | None:
    """The worker's view of `user_id` (None: unknown), with the bearer token if one is set."""
    url = f"{base.rstrip('/')}/users/{urllib.parse.quote(user_id, safe='')}/"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        request = urllib.request.Request(url, headers=headers)  # noqa: S310 - our own worker
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise CommandError(f"worker answered {exc.code} for {url}") from None
    except urllib.error.URLError as exc:
        raise CommandError(
            f"no worker at {base} ({exc.reason}); is `churnstream worker` running?"
        ) from None


def run(args: argparse.Namespace, settings: Settings) -> int:
    base = args.url or f"http://{settings.web_host}:{settings.web_port}"
    token = security_settings(settings).web_token.reveal() or None
    view = fetch(base, args.user_id, token)
    if view is None:
        print(f"unknown user {args.user_id!r}: no event of this user reached the worker")
        return 3
    if args.json:
        print(json.dumps(view, indent=2, sort_keys=False))
        return 0
    last = view.get("last_score") or {}
    print(f"user {view['user_id']}  segment {view['segment']}  churned {view['churned']}")
    if last:
        drivers = ", ".join(d["feature"] for d in last.get("drivers", []))
        print(f"last score {last['score']:.3f} ({last['source']}) drivers: {drivers or '-'}")
    print(f"pending labels {view['pending_labels']}")
    for name, value in view["features"].items():
        print(f"  {name:28} {value:12.4g}")
    return 0
