"""The base of churnstream's expected errors: wrong settings, no broker, unusable files.

Such an error's message is written for the operator (it names the variable, file or command to
fix), so the command line prints it as one line instead of a traceback
(`stream.cli.main`). Programming errors stay ordinary exceptions and keep their traceback.
"""

from __future__ import annotations


class ChurnstreamError(Exception):
    """An expected failure whose message says what is wrong and how to fix it.

    The first line is the message; further lines, if any, are details (a log tail, a tool's
    output) that the command line shows with `-v` only.
    """
