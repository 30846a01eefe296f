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

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])


SUPPORTED_CHARTS: dict[str, ChartVersion] = {
    chart.version: chart
    for chart in (
        ChartVersion("3.1.0", "2023-09-29", "4.0.2", "16.1.0", "6.1.0", (1, 23)),
        ChartVersion("3.3.8", "2024-07-31", "4.1.6", "16.3.1", "6.2.0", (1, 23)),
        ChartVersion("4.4.0", "2026-06-10", "5.5.0", "17.4.0", "7.0.0", (1, 28)),
    )
}


def kubernetes_minor(version: str) -> tuple[int, int]:
    """`"1.30"` or `"1.30.6"` as (1, 30)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)
