"""`python -m churnstream.stream.cli`: the same as the `churnstream` command."""

from churnstream.stream.cli.main import main

raise SystemExit(main())
