"""Garbage-collector settings for a plan process, which is short-lived.

The SDKs leave a few hundred thousand objects that live as long as the process; every full
collection would walk them again, and a plan of a large site runs many. After the SDKs are
imported they are frozen (collections walk only what the plan creates), and the first
generation is collected at 50,000 new objects rather than 700. docs/benchmarks.md shows
the effect, and the bare SDK measured with and without the same settings.
"""

from __future__ import annotations

import gc
import importlib

# What the program and the policy pack import; loaded before the collector is tuned.
PRELOAD = (
    "pulumi_command",
    "pulumi_kubernetes",
    "pulumi_openstack",
    "pulumi_random",
    "pulumi_policy",
    "components.jupyterhub",
    "components.node_mounts",
    "components.share",
    "components.storage_class",
    "policy.rules",
    "sitectl.mockrun",
    "sitectl.policy_engine",
)
# The SDKs alone: what a process with nothing of ours (the bench's floor, the bare SDK
# script) loads before tuning, to be measured with the plan's settings.
SDK_MODULES = tuple(m for m in PRELOAD if m.startswith("pulumi"))
THRESHOLDS = (50_000, 50, 50)


def tune(preload: tuple[str, ...] = PRELOAD) -> None:
    """Import `preload`, then freeze what exists and raise the collection thresholds."""
    for module in preload:
        importlib.import_module(module)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
