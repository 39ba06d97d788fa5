"""`churnstream pseudonym USER_ID`: the pseudonym under the configured key (for look-ups).

Operators who must find a person's records (an access request, a support case) compute the
pseudonym here and search outputs for it; the key itself is never printed.
"""

from __future__ import annotations

import argparse
from typing import Any

from churnstream.stream.cli.common import CommandError
from churnstream.stream.settings import Settings


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pseudonym", help="print the pseudonym of a user id (needs the key)")
    p.add_argument("user_id", nargs="+", help="one or more user ids")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from churnstream.stream.kafka.client import security_settings

    pseudo = security_settings(settings).pseudonymizer()
    if not pseudo.enabled:
        raise CommandError(
            "pseudonymisation is off: set CHURNSTREAM_PSEUDONYM_KEY or "
            "CHURNSTREAM_PSEUDONYM_KEY_FILE (the same key as the workers)"
        )
    for user_id in args.user_id:
        print(f"{user_id}\t{pseudo(user_id)}")
    return 0
