"""Serve the policy pack to the Pulumi engine: `pulumi preview --policy-pack policy`.

Only this module builds the PolicyPack; its constructor starts a gRPC server and blocks,
so tests and the offline plan import `rules` instead.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

try:
    from rules import POLICIES  # the Pulumi CLI runs this file from inside policy/
except ImportError:  # `python -m policy` from the repository root
    from policy.rules import POLICIES

PolicyPack(
    name="jupyterhub-platform",
    description="The runbook's pitfalls, checked before anything is deployed.",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
