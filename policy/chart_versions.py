"""The jupyterhub chart versions this project supports, and what each one runs.

One table for the program (config checks, values built per chart generation) and the
policy pack (advisories on versions): the pack runs in a virtualenv of its own with only
`pulumi_policy`, so this module uses nothing but the standard library.

Figures are the chart's own: its hub image's frozen requirements (jupyterhub,
oauthenticator, kubespawner) and the Kubernetes range in its Chart.yaml `kubeVersion`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChartVersion:
    """One supported release of the jupyterhub chart."""

    version: str
    released: str
    jupyterhub: str
    oauthenticator: str
    kubespawner: str
    min_kubernetes: tuple[int, int]
    """The oldest Kubernetes minor version the chart declares it runs on."""
    kube_scheduler: str
    """The kube-scheduler its user-scheduler runs (values.yaml, scheduling.userScheduler)."""
    advisories: tuple[str, ...] = ()
    """Published vulnerabilities of what the chart runs, fixed in a later version."""

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


# fmt: off
SUPPORTED_CHARTS: dict[str, ChartVersion] = {
    chart.version: chart
    for chart in (
        ChartVersion(
            "3.1.0", "2023-09-29", "4.0.2", "16.1.0", "6.1.0", (1, 23), "1.26.9",
            advisories=(
                "GHSA-7r3h-4ph8-w38g: JupyterHub 4.0.2 has a High-severity cross-site "
                "scripting flaw, fixed in JupyterHub 4.1.0 (chart 3.3.x; 4.4.0 runs 5.5.0)",
            ),
        ),
        ChartVersion("3.3.8", "2024-07-31", "4.1.6", "16.3.1", "6.2.0", (1, 23), "1.26.15"),
        ChartVersion("4.4.0", "2026-06-10", "5.5.0", "17.4.0", "7.0.0", (1, 28), "1.30.14"),
    )
}
# fmt: on


# The first supported chart whose oauthenticator refreshes tokens (`refresh_user`, 17.4),
# manages groups and sends PKCE: the generation the token settings need.
FIRST_REFRESHING_CHART = "4.4.0"


def chart_major(version: str) -> int:
    """The generation of a chart version: "4.4.0" is 4."""
    return int(version.split(".", 1)[0])


def kubernetes_minor(version: str) -> tuple[int, int]:
    """`"1.30"` or `"1.30.6"` as (1, 30)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)
