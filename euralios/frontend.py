"""Front-ends for a full boot: the prompt_toolkit terminal UI and the headless runner."""

from __future__ import annotations

import argparse
import sys


def main(opts: argparse.Namespace) -> int:
    print("euralios: the console front-end is not built yet; try `euralios run examples/hello.py`",
          file=sys.stderr)
    return 1
