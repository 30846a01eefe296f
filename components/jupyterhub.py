"""JupyterHub: the hub's namespace, its proxy token, and the Helm release of the chart.

The namespace is a resource of its own (the release does not create it) so that other
components can put objects in it before the release exists, and so it carries the hub URL
as an annotation: policies compare the OAuth callback against it, since they cannot read
stack outputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.config import HubSettings, VaultSettings
from components.hub_values import SecretKeyRef, chart_values, deep_merge, without_blobs

CHART_NAME = "jupyterhub"
CHART_REPOSITORY = "https://hub.jupyter.org/helm-chart/"
HUB_URL_ANNOTATION = "jupyterhub-platform/hub-url"
# The largest CPU and memory limits the site configures, for policies to hold the merged
# values (hub.extraValues included) to: {"cpu": 2.0, "memory": "4G"}.
RESOURCE_CEILING_ANNOTATION = "jupyterhub-platform/resource-ceiling"
# A ConfigMap in the hub namespace with the chart values minus secrets (see below).
SETTINGS_CONFIG_MAP = "jupyterhub-platform-settings"
SETTINGS_KEY = "values.json"
# What policies need besides the values (the cluster's Kubernetes version, the chart
# version an adopted release runs), in the same ConfigMap.
SITE_KEY = "site.json"
SETTINGS_REDACTED = "[secret]"
# The site's hub.extraValues as given: policies refuse some keys only when they come from
# there rather than from the program.
EXTRA_VALUES_KEY = "extraValues.json"
# The Kubernetes Secret External Secrets writes the client secret into, and its key.
OAUTH_SECRET = SecretKeyRef(name="jupyterhub-oauth-client", key="client-secret")


@dataclass
class JupyterHubArgs:
    hub: HubSettings
    """The hub's settings from the site config."""
    hub_url: str
    """https://<hubHost><baseUrl>: the URL users open, and the root of the callback URL."""
    kubernetes_version: str
    """The cluster's Kubernetes version (site.kubernetesVersion)."""
    storage_class: pulumi.Input[str]
    """StorageClass for the hub database and every user's volume."""
    oauth_client_secret: pulumi.Input[str] | None
    """Secret for `hub.config`; None when it comes from Vault (`vault`)."""
    vault: VaultSettings | None = None
    """Where External Secrets reads the client secret from, in vault mode."""
    release_depends_on: Sequence[pulumi.Resource] = field(default_factory=list)
    """What must exist before the release installs (the storage class, the node mounts)."""


class JupyterHub(pulumi.ComponentResource):
    namespace: pulumi.Output[str]
    hub_url: pulumi.Output[str]
    oauth_callback_url: pulumi.Output[str]
    release_status: pulumi.Output[str]
    health_check_token: pulumi.Output[str]
    """API token of the `platform-health-check` service (secret)."""

    def __init__(
        self, name: str, args: JupyterHubArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("jupyterhub-platform:hub:JupyterHub", name, None, opts)
        hub = args.hub
        callback_url = f"{args.hub_url}hub/oauth_callback"
        child = pulumi.ResourceOptions(parent=self)

        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=hub.namespace,
                annotations={
                    HUB_URL_ANNOTATION: args.hub_url,
                    RESOURCE_CEILING_ANNOTATION: json.dumps(hub.resource_ceiling()),
                },
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                # An adopted release's namespace exists already.
                import_=hub.namespace if hub.adopt_release else None,
                # Deleting a namespace deletes every user's claim in it: a destroy, or a
                # change of hub.namespace, leaves the old one (and the homes) in place.
                retain_on_delete=True,
            ),
        )

        # A fresh token on every run would restart the proxy and drop every user's route;
        # RandomBytes keeps it in state, and its hex is a secret.
        proxy_token = random.RandomBytes(f"{name}-proxy-token", length=32, opts=child)
        # The health check's API token (`sitectl verify --spawn`), kept like the proxy's.
        health_token = random.RandomBytes(f"{name}-health-check-token", length=32, opts=child)

        client_secret: pulumi.Input[str] | SecretKeyRef
        release_depends_on = list(args.release_depends_on)
        if args.vault is not None:
            self.external_secret = self._external_secret(name, args.vault)
            release_depends_on.append(self.external_secret)
            client_secret = OAUTH_SECRET
        elif args.oauth_client_secret is not None:
            client_secret = args.oauth_client_secret
        else:
            raise ValueError("JupyterHub needs an OAuth client secret or a vault source")

        def merged_values(
            secret: pulumi.Input[str] | SecretKeyRef,
            token: pulumi.Input[str],
            health: pulumi.Input[str],
        ) -> dict[str, Any]:
            return deep_merge(
                chart_values(
                    hub,
                    callback_url=callback_url,
                    storage_class=args.storage_class,
                    client_secret=secret,
                    proxy_token=token,
                    health_check_token=health,
                ),
                hub.extra_values,
            )

        values = merged_values(client_secret, proxy_token.hex, health_token.hex)
        # The same values with the secrets left out, readable by policies even in a first
        # preview (when the proxy token, and so the release's values, are still unknown)
        # and by operators: `kubectl get configmap -n <namespace> jupyterhub-platform-settings`.
        public = merged_values(
            client_secret if isinstance(client_secret, SecretKeyRef) else SETTINGS_REDACTED,
            SETTINGS_REDACTED,
            SETTINGS_REDACTED,
        )
        self.settings = k8s.core.v1.ConfigMap(
            f"{name}-settings",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SETTINGS_CONFIG_MAP, namespace=self.namespace_resource.metadata.name
            ),
            data={
                SETTINGS_KEY: pulumi.Output.from_input(public).apply(
                    lambda v: json.dumps(without_blobs(v), sort_keys=True)
                ),
                SITE_KEY: json.dumps(
                    {
                        "kubernetesVersion": args.kubernetes_version,
                        "adoptedChartVersion": hub.adopted_chart_version,
                    },
                    sort_keys=True,
                ),
                EXTRA_VALUES_KEY: json.dumps(hub.extra_values, sort_keys=True),
            },
            opts=child,
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            k8s.helm.v3.ReleaseArgs(
                name=hub.release,
                chart=CHART_NAME,
                version=hub.chart_version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPOSITORY),
                namespace=self.namespace_resource.metadata.name,
                create_namespace=False,
                # The values carry the client secret and the proxy token: keep all of them
                # secret in state and in every diff.
                values=pulumi.Output.secret(values),
                cleanup_on_fail=True,
                timeout=hub.timeout_seconds,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=release_depends_on,
                # Helm's own id for a release: <namespace>/<name>.
                import_=f"{hub.namespace}/{hub.release}" if hub.adopt_release else None,
            ),
        )

        self.namespace = self.namespace_resource.metadata.name
        self.hub_url = pulumi.Output.from_input(args.hub_url)
        self.oauth_callback_url = pulumi.Output.from_input(callback_url)
        self.release_status = self.release.status.apply(lambda s: s.status)
        self.health_check_token = pulumi.Output.secret(health_token.hex)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "hub_url": self.hub_url,
                "oauth_callback_url": self.oauth_callback_url,
                "release_status": self.release_status,
                "health_check_token": self.health_check_token,
            }
        )

    def _external_secret(self, name: str, vault: VaultSettings) -> k8s.apiextensions.CustomResource:
        """External Secrets copies the client secret from Vault into the hub's namespace."""
        return k8s.apiextensions.CustomResource(
            f"{name}-oauth-secret",
            api_version=vault.api_version,
            kind="ExternalSecret",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=OAUTH_SECRET.name, namespace=self.namespace_resource.metadata.name
            ),
            spec={
                "refreshInterval": vault.refresh_interval,
                "secretStoreRef": {"name": vault.store_name, "kind": vault.store_kind.value},
                "target": {"name": OAUTH_SECRET.name, "creationPolicy": "Owner"},
                "data": [
                    {
                        "secretKey": OAUTH_SECRET.key,
                        "remoteRef": {"key": vault.remote_key, "property": vault.property},
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
