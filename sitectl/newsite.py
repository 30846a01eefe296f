"""`python -m sitectl new-site NAME`: a `Pulumi.<NAME>.yaml` to fill in for a new site.

The stack file comes from a neutral template (templates/Pulumi.site.yaml): safe defaults,
access by group, and a "<fill in>" placeholder with a `# <-` comment at each value only
the site knows. The plan lists every placeholder left, so an operator fills the file by
running `make plan` until it is quiet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from components import validators
from components.config import PROJECT_DIR

TEMPLATE = Path(__file__).resolve().parent / "templates" / "Pulumi.site.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", metavar="NAME", help="the new stack's name, e.g. mysrc")
    parser.add_argument(
        "--dir",
        type=Path,
        default=PROJECT_DIR,
        help="where to write Pulumi.NAME.yaml (default: the project)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        validators.dns_label(args.site)
    except ValueError as err:
        print(f"error: STACK: {args.site!r} {err}", file=sys.stderr)
        return 2
    out: Path = args.dir / f"Pulumi.{args.site}.yaml"
    text = TEMPLATE.read_text(encoding="utf-8").replace("@SITE@", args.site)
    try:
        # "x": never over an existing stack file, even one made since a check.
        with out.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        print(f"error: {out} exists; a new site needs a name of its own", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: --dir {args.dir}: cannot be written to ({err.strerror})", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    print(f'next: fill every "<fill in>" value, then `make plan STACK={args.site}`')
    return 0
