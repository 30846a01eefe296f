"""The operator's command line: `python -m sitectl plan SITE [options]`, `... verify SITE`,
`... charts VERSION`, `... config-reference`, `... new-site NAME`.

`make plan STACK=<site>` wraps it. Each subcommand's module adds its own options and
returns the process's exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from sitectl import charts, configref, newsite, plan, verify

    parser = argparse.ArgumentParser(prog="python -m sitectl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan_parser = commands.add_parser(
        "plan",
        help="plan a site offline: its full desired state, no credentials needed",
        description="Plan a site offline: the full desired state, no credentials needed.",
    )
    plan.add_arguments(plan_parser)
    plan_parser.set_defaults(run=plan.run)
    verify_parser = commands.add_parser(
        "verify",
        help="check a deployed site from here: front door, NodePorts, identity provider, "
        "node mounts, and with --spawn a real user session",
        description="Check a deployed site from here: the runbook's post-deployment checks "
        "and troubleshooting, one line per check.",
    )
    verify.add_arguments(verify_parser)
    verify_parser.set_defaults(run=verify.run)
    charts_parser = commands.add_parser(
        "charts",
        help="fetch jupyterhub chart packages into the cache (digest-checked), print their paths",
        description="Find or fetch jupyterhub chart packages: $JHP_CHART_DIR, the cache, "
        "then the chart repository (digest-checked).",
    )
    charts.add_arguments(charts_parser)
    charts_parser.set_defaults(run=charts.run)
    reference_parser = commands.add_parser(
        "config-reference",
        help="write docs/config.md, the reference of every site config key, from the model",
        description="Write (or --check) docs/config.md from the site config model.",
    )
    configref.add_arguments(reference_parser)
    reference_parser.set_defaults(run=configref.run)
    new_site_parser = commands.add_parser(
        "new-site",
        help="write Pulumi.NAME.yaml for a new site from the template, to fill in",
        description="Write Pulumi.NAME.yaml for a new site from the template.",
    )
    newsite.add_arguments(new_site_parser)
    new_site_parser.set_defaults(run=newsite.run)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
