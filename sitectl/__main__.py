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
    # (name, module with add_arguments and run, help, description)
    subcommands = [
        (
            "plan",
            plan,
            "plan a site offline: its full desired state, no credentials needed",
            "Plan a site offline: the full desired state, no credentials needed.",
        ),
        (
            "verify",
            verify,
            "check a deployed site from here: front door, NodePorts, identity provider, "
            "node mounts, and with --spawn a real user session",
            "Check a deployed site from here: the runbook's post-deployment checks "
            "and troubleshooting, one line per check.",
        ),
        (
            "charts",
            charts,
            "fetch jupyterhub chart packages into the cache (digest-checked), print their paths",
            "Find or fetch jupyterhub chart packages: $JHP_CHART_DIR, the cache, "
            "then the chart repository (digest-checked).",
        ),
        (
            "config-reference",
            configref,
            "write docs/config.md, the reference of every site config key, from the model",
            "Write (or --check) docs/config.md from the site config model.",
        ),
        (
            "new-site",
            newsite,
            "write Pulumi.NAME.yaml for a new site from the template, to fill in",
            "Write Pulumi.NAME.yaml for a new site from the template.",
        ),
    ]
    for name, module, help_text, description in subcommands:
        sub = commands.add_parser(name, help=help_text, description=description)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
