"""`python -m euralios`: the `euralios` command (euralios/cli.py), its exit status passed through."""

from euralios.cli import main

raise SystemExit(main())
