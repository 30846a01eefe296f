"""The policy pack's rules: the runbook's pitfalls, checked before anything is deployed.

Each rule is one typed validator wrapped in a Resource- or StackValidationPolicy. The
module only defines them (building a `PolicyPack` starts a server and blocks, which only
`__main__.py` does), so the offline plan and the tests import it freely. It depends on
nothing but `pulumi_policy` and the standard library, since the Pulumi CLI runs the pack
in a virtualenv of its own.

Hub settings are read from the Helm release's values. In a stack's first preview those
are unknown (they hold the proxy token, which does not exist yet), so the rules then read
the same values, minus secrets, from the `jupyterhub-platform-settings` ConfigMap the
program writes in the hub namespace, whose content is known at preview.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

try:  # the Pulumi CLI runs the pack from inside policy/
    from chart_versions import SUPPORTED_CHARTS, chart_major, kubernetes_minor
except ImportError:  # imported as the package policy (tests, the offline plan)
    from policy.chart_versions import SUPPORTED_CHARTS, chart_major, kubernetes_minor

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
SHARE = "openstack:sharedfilesystem/share:Share"
COMMAND = "command:remote:Command"
SHARE_ACCESS = "openstack:sharedfilesystem/shareAccess:ShareAccess"
CAPACITY_ANNOTATION = "jupyterhub-platform/capacity-enforced"

HUB_URL_ANNOTATION = "jupyterhub-platform/hub-url"
RESOURCE_CEILING_ANNOTATION = "jupyterhub-platform/resource-ceiling"
SETTINGS_CONFIG_MAP = "jupyterhub-platform-settings"
SETTINGS_KEY = "values.json"
SITE_KEY = "site.json"
EXTRA_VALUES_KEY = "extraValues.json"
TESTED_CHART_VERSIONS = list(SUPPORTED_CHARTS)
REQUIRED_SCOPES = ["openid", "profile", "email", "offline_access"]
NODE_PORT_RANGE = (30000, 32767)


# -- reading what the stack registers -------------------------------------------------
def plain(value: Any) -> Any:
    """A deep plain copy; reading an unknown value raises UnknownValueError (not run)."""
    if isinstance(value, Mapping):
        return {k: plain(value[k]) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(value[i]) for i in range(len(value))]
    return value


def dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def _metadata_name(resource: PolicyResource) -> tuple[str | None, str | None]:
    metadata = resource.props.get("metadata") or {}
    return metadata.get("name"), metadata.get("namespace")


@dataclass
class Hub:
    """One JupyterHub release and what its values say."""

    release: PolicyResource
    values: dict[str, Any]
    namespace: PolicyResource | None
    site: dict[str, Any]
    """The program's site facts: kubernetesVersion, adoptedChartVersion (may be empty)."""
    extra_values: dict[str, Any] | None = None
    """The site's hub.extraValues as given (from the settings ConfigMap), if known."""

    def annotation(self, key: str) -> Any:
        annotations = (
            dig(plain(self.namespace.props), "metadata", "annotations") if self.namespace else None
        )
        return (annotations or {}).get(key)


def hubs(resources: Sequence[PolicyResource]) -> Iterator[Hub]:
    by_type: dict[str, list[PolicyResource]] = {}
    for resource in resources:
        by_type.setdefault(resource.resource_type, []).append(resource)
    for release in by_type.get(RELEASE, []):
        if release.props.get("chart") != "jupyterhub":
            continue
        namespace_name = release.props.get("namespace")
        settings = next(
            (
                cm
                for cm in by_type.get(CONFIG_MAP, [])
                if _metadata_name(cm) == (SETTINGS_CONFIG_MAP, namespace_name)
            ),
            None,
        )
        try:
            values = plain(release.props.get("values") or {})
        except UnknownValueError:
            if settings is None:
                raise
            values = json.loads(settings.props["data"][SETTINGS_KEY])
        site: dict[str, Any] = {}
        site_text = dig(plain(settings.props), "data", SITE_KEY) if settings else None
        if isinstance(site_text, str):
            site = json.loads(site_text)
        extra = None
        if settings is not None and EXTRA_VALUES_KEY in (settings.props.get("data") or {}):
            extra = json.loads(settings.props["data"][EXTRA_VALUES_KEY])
        namespace = next(
            (ns for ns in by_type.get(NAMESPACE, []) if _metadata_name(ns)[0] == namespace_name),
            None,
        )
        yield Hub(release, values, namespace, site, extra)


def stack_rule(
    check: Callable[[Hub, dict[str, Any], ReportViolation], None],
) -> Callable[[StackValidationArgs, ReportViolation], None]:
    """A stack validation that runs `check` on every hub."""

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        config = dict(args.get_config() or {})
        for hub in hubs(args.resources):
            check(hub, config, report)

    return validate


# -- images ---------------------------------------------------------------------------
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def is_pinned(reference: str) -> bool:
    """A fixed tag or a digest; not `latest`, not nothing."""
    if "@" in reference:
        return _DIGEST.search(reference) is not None
    _, sep, tag = reference.rpartition(":")
    return bool(sep) and "/" not in tag and tag not in ("", "latest")


def images_in_values(values: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, reference) for every image the chart values name."""
    if isinstance(values, Mapping):
        for key, inner in values.items():
            here = f"{path}.{key}" if path else str(key)
            if key == "image" and isinstance(inner, str):
                yield here, inner
            elif (key == "image" or path.endswith("extraImages")) and isinstance(inner, Mapping):
                if "name" in inner:
                    tag = inner.get("tag")
                    yield here, f"{inner['name']}:{tag}" if tag else str(inner["name"])
            else:
                yield from images_in_values(inner, here)
    elif isinstance(values, list):
        for i, inner in enumerate(values):
            yield from images_in_values(inner, f"{path}[{i}]")


def images_in_object(resource: PolicyResource) -> Iterator[tuple[str, str]]:
    """(where, reference) for the images of a Deployment or a provisioner ConfigMap."""
    props = plain(resource.props)
    if resource.resource_type == DEPLOYMENT:
        for group in ("initContainers", "containers"):
            for container in dig(props, "spec", "template", "spec", group) or []:
                yield f"{group}[{container.get('name')}]", str(container.get("image", ""))
                args = [*(container.get("command") or []), *(container.get("args") or [])]
                for flag, value in itertools.pairwise(args):
                    if flag == "--helper-image":
                        yield f"{group}[{container.get('name')}] --helper-image", str(value)
    elif resource.resource_type == CONFIG_MAP:
        helper = dig(props, "data", "helperPod.yaml")
        if isinstance(helper, str):
            for match in re.finditer(r"image:\s*[\"']?([^\s\"']*)", helper):
                yield "data.helperPod.yaml", match.group(1)


def _pinned_images(args: StackValidationArgs, report: ReportViolation) -> None:
    for hub in hubs(args.resources):
        for where, reference in images_in_values(hub.values):
            if not is_pinned(reference):
                report(
                    f"Helm values {where} uses image '{reference}': pin a dated tag or a "
                    "sha256 digest, never 'latest' or no tag.",
                    hub.release.urn,
                )
    for resource in args.resources:
        if resource.resource_type in (DEPLOYMENT, CONFIG_MAP):
            for where, reference in images_in_object(resource):
                if not is_pinned(reference):
                    report(
                        f"{resource.name} {where} uses image '{reference}': pin a version "
                        "tag or a sha256 digest.",
                        resource.urn,
                    )


# -- hub settings -----------------------------------------------------------------------
# Kubernetes' quantity suffixes: the decimal kilo is a lowercase k (the API server refuses 1K).
_QUANTITY = re.compile(r"([0-9]*\.?[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?")
_FACTORS = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
            "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30,
            "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}  # fmt: skip


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity as a number, or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.fullmatch(str(value))
    return float(match.group(1)) * _FACTORS[match.group(2) or ""] if match else None


# KubeSpawner reads memory (mem_limit, mem_guarantee) as JupyterHub's ByteSpecification: a
# number of bytes, or a number and K, M, G or T, powers of 1024. The hub refuses anything
# else at start-up (Kubernetes' Mi and Gi among it), so memory is measured this way.
_MEMORY_UNITS = {"K": 2.0**10, "M": 2.0**20, "G": 2.0**30, "T": 2.0**40}


def memory_bytes(value: Any) -> float | None:
    """A memory setting as the bytes KubeSpawner reads, or None if the hub would refuse it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    if text[-1:] not in _MEMORY_UNITS or not re.fullmatch(r"[0-9]*\.?[0-9]+", text[:-1]):
        return None
    return float(text[:-1]) * _MEMORY_UNITS[text[-1]]


def measure(resource: str, value: Any) -> float | None:
    """A cpu or memory setting as a number, as KubeSpawner reads it; None if it is not one."""
    return memory_bytes(value) if resource == "memory" else quantity(value)


_NOT_A_NUMBER = {
    "cpu": "a Kubernetes quantity",
    "memory": "a memory size KubeSpawner takes (a number and K, M, G or T, such as 2G)",
}


def shown(value: Any) -> str:
    """A value as the operator wrote it: numbers reach policies as JSON doubles (0 as 0.0)."""
    if isinstance(value, float) and value.is_integer():
        return repr(int(value))
    return repr(value)


def _singleuser_resources(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    for resource in ("cpu", "memory"):
        settings = dig(hub.values, "singleuser", resource) or {}
        if not isinstance(settings, Mapping):
            report(
                f"singleuser.{resource} is {settings!r}, not a map with a limit and a guarantee.",
                hub.release.urn,
            )
            continue
        limit, guarantee = settings.get("limit"), settings.get("guarantee")
        if limit is None or guarantee is None:
            report(
                f"singleuser.{resource} needs both a limit and a guarantee (has limit={limit}, "
                f"guarantee={guarantee}): without them one user can starve the node.",
                hub.release.urn,
            )
            continue
        low, high = measure(resource, guarantee), measure(resource, limit)
        if low is None or high is None:
            report(
                f"singleuser.{resource} limit {limit!r} / guarantee {guarantee!r}: each must "
                f"be {_NOT_A_NUMBER[resource]}.",
                hub.release.urn,
            )
        elif high <= 0:
            report(
                f"singleuser.{resource}.limit is {shown(limit)}: KubeSpawner sets no limit at all "
                "for 0, so one user can take the whole node. Set a positive limit.",
                hub.release.urn,
            )
        elif low > high:
            report(
                f"singleuser.{resource}.guarantee {guarantee} is above its limit {limit}: "
                "set guarantee <= limit.",
                hub.release.urn,
            )


def _oauth(hub: Hub) -> dict[str, Any]:
    """The authenticator's settings as the hub resolves them; sections that are not maps
    (hub.extraValues can hold anything) set nothing, as they would set nothing in the hub."""
    merged: dict[str, Any] = {}
    for section in ("Authenticator", "OAuthenticator", "GenericOAuthenticator"):
        settings = dig(hub.values, "hub", "config", section)
        if isinstance(settings, Mapping):
            merged.update(settings)
    return merged


def _callback_matches_hub_url(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    callback = _oauth(hub).get("oauth_callback_url")
    annotations = (
        dig(plain(hub.namespace.props), "metadata", "annotations") if hub.namespace else None
    )
    hub_url = (annotations or {}).get(HUB_URL_ANNOTATION)
    if not isinstance(callback, str) or not callback:
        report("hub.config.GenericOAuthenticator.oauth_callback_url is not set.", hub.release.urn)
        return
    if not callback.startswith("https://"):
        report(
            f"The OAuth callback URL {callback} is not https://: TLS ends at the site's HAProxy, "
            "and the provider redirects users to exactly this URL.",
            hub.release.urn,
        )
    if not hub_url:
        report(
            f"The hub namespace has no {HUB_URL_ANNOTATION} annotation, so the callback URL "
            "cannot be compared with the hub URL.",
            hub.release.urn,
        )
    elif callback != f"{hub_url}hub/oauth_callback":
        report(
            f"The OAuth callback URL {callback} is not the hub URL + hub/oauth_callback "
            f"({hub_url}hub/oauth_callback): login fails with a redirect mismatch. "
            "Do not override oauth_callback_url; it follows site.hubHost and hub.baseUrl.",
            hub.release.urn,
        )


def _required_scopes(hub: Hub, config: dict[str, Any], report: ReportViolation) -> None:
    required = list(config.get("requiredScopes", REQUIRED_SCOPES))
    scopes = _oauth(hub).get("scope") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        # A string would match scopes as substrings; the hub wants a list.
        report(f"The OAuth scope setting {scopes!r} is not a list of scopes.", hub.release.urn)
        return
    missing = [scope for scope in required if scope not in scopes]
    if missing:
        report(
            f"The OAuth scopes {scopes} lack {missing}, which this site requires: add them "
            "to hub.oauth.scopes.",
            hub.release.urn,
        )


def _node_port(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    service = dig(hub.values, "proxy", "service")
    if not isinstance(service, Mapping) or service.get("type") != "NodePort":
        return
    port = dig(service, "nodePorts", "http")
    low, high = NODE_PORT_RANGE
    # Numbers reach policies as JSON numbers: 31090 may arrive as 31090.0.
    whole = isinstance(port, int | float) and not isinstance(port, bool) and port == int(port)
    if not whole or not low <= port <= high:
        report(
            f"proxy.service.nodePorts.http is {port!r}: the site's HAProxy needs a fixed "
            f"NodePort in {low}-{high}.",
            hub.release.urn,
        )


def _allow_all(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    if _oauth(hub).get("allow_all") is True:
        report(
            "allow_all admits every account of the identity provider. If only some should "
            "use this hub, set hub.oauth.allowedGroups (with claimGroupsKey) instead.",
            hub.release.urn,
        )


def _allow_all_with_groups(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    oauth = _oauth(hub)
    groups = oauth.get("allowed_groups")
    if oauth.get("allow_all") is True and groups:
        report(
            f"allow_all is set together with allowed_groups {groups!r}: oauthenticator "
            "admits every account on allow_all before it looks at groups, so the groups "
            "restrict nothing. Remove allow_all (hub.oauth.allowAll) to admit only the groups.",
            hub.release.urn,
        )


def _storage_classes_defined(args: StackValidationArgs, report: ReportViolation) -> None:
    defined = {_metadata_name(r)[0] for r in args.resources if r.resource_type == STORAGE_CLASS}
    # Classes that exist outside the stack on purpose: an adopted release's database
    # volume keeps the class it was created with.
    external = set((args.get_config() or {}).get("externalClasses", []))
    for hub in hubs(args.resources):
        for where in (
            ("hub", "db", "pvc", "storageClassName"),
            ("singleuser", "storage", "dynamic", "storageClass"),
        ):
            name = dig(hub.values, *where)
            if name is not None and not isinstance(name, str):
                report(f"{'.'.join(where)} is {name!r}, not a storage class name.", hub.release.urn)
            elif name and name not in defined | external:
                report(
                    f"{'.'.join(where)} names storage class '{name}', which this stack does not "
                    f"define (it defines {sorted(n for n in defined if n)}): claims would stay "
                    "Pending. A class that exists outside the stack on purpose goes in this "
                    "policy's externalClasses.",
                    hub.release.urn,
                )


# -- what user servers may do (judged on the merged values) --------------------------------
# KubeSpawner's per-profile overrides of the site's limits, by the setting they override.
_LIMIT_OVERRIDES = {
    "cpu_limit": "cpu",
    "cpu_guarantee": "cpu",
    "mem_limit": "memory",
    "mem_guarantee": "memory",
}


def profile_overrides(values: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, kubespawner_override) for every profile and profile option choice."""
    profiles = dig(values, "singleuser", "profileList")
    if not isinstance(profiles, list):
        return
    for i, profile in enumerate(profiles):
        if not isinstance(profile, Mapping):
            continue
        here = f"singleuser.profileList[{i}]"
        if isinstance(profile.get("kubespawner_override"), Mapping):
            yield f"{here}.kubespawner_override", profile["kubespawner_override"]
        options = profile.get("profile_options")
        for name, option in options.items() if isinstance(options, Mapping) else []:
            if not isinstance(option, Mapping):
                continue
            choices = option.get("choices")
            for choice, spec in choices.items() if isinstance(choices, Mapping) else []:
                if isinstance(spec, Mapping) and isinstance(
                    spec.get("kubespawner_override"), Mapping
                ):
                    where = f"{here}.profile_options.{name}.choices.{choice}.kubespawner_override"
                    yield where, spec["kubespawner_override"]
            unlisted = option.get("unlisted_choice")
            if isinstance(unlisted, Mapping) and isinstance(
                unlisted.get("kubespawner_override"), Mapping
            ):
                where = f"{here}.profile_options.{name}.unlisted_choice.kubespawner_override"
                yield where, unlisted["kubespawner_override"]


def _ceiling(hub: Hub) -> dict[str, float]:
    """The largest limits the site configures: from the program's annotation, else (a hub
    the program did not make) the merged singleuser limits."""
    text = hub.annotation(RESOURCE_CEILING_ANNOTATION)
    source = json.loads(text) if isinstance(text, str) else {
        "cpu": dig(hub.values, "singleuser", "cpu", "limit"),
        "memory": dig(hub.values, "singleuser", "memory", "limit"),
    }  # fmt: skip
    ceiling = {}
    for resource in ("cpu", "memory"):
        number = measure(resource, source.get(resource))
        if number is not None:
            ceiling[resource] = number
    return ceiling


def _resources_within_site_limits(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    ceiling = _ceiling(hub)
    units = {"cpu": "{:g} CPUs", "memory": "{:.0f} bytes"}
    settings = [
        (f"singleuser.{resource}.{kind}", dig(hub.values, "singleuser", resource, kind), resource)
        for resource in ("cpu", "memory")
        for kind in ("limit", "guarantee")
    ]
    for where, override in profile_overrides(hub.values):
        for key, resource in _LIMIT_OVERRIDES.items():
            if key in override:
                if key.endswith("_limit") and not override[key]:
                    report(
                        f"{where}.{key} is {shown(override[key])}: it removes the site's "
                        f"{resource} limit (KubeSpawner sets none), so one user can take the "
                        "whole node.",
                        hub.release.urn,
                    )
                    continue
                settings.append((f"{where}.{key}", override[key], resource))
    for where, value, resource in settings:
        number, top = measure(resource, value), ceiling.get(resource)
        if value is None or top is None:
            continue
        if number is None:
            report(f"{where} is {shown(value)}, not {_NOT_A_NUMBER[resource]}.", hub.release.urn)
        elif number > top:
            report(
                f"{where} is {shown(value)}, above the largest {resource} limit the site "
                f"configures ({units[resource].format(top)}): set it in hub.singleuser or a "
                f"profile's {resource} instead, where it is checked.",
                hub.release.urn,
            )


# Settings that give a user pod the node, in the chart's (camelCase) and KubeSpawner's
# (snake_case) spelling, wherever they stand under singleuser (extraPodConfig,
# extraContainers, initContainers, a profile's kubespawner_override, ...).
_HOST_ACCESS = {
    "hostNetwork": "shares the node's network",
    "host_network": "shares the node's network",
    "hostPID": "sees the node's processes",
    "host_pid": "sees the node's processes",
    "hostIPC": "shares the node's IPC",
    "host_ipc": "shares the node's IPC",
    "privileged": "runs privileged",
    "allowPrivilegeEscalation": "allows privilege escalation",
    "allow_privilege_escalation": "allows privilege escalation",
}
_HOST_PATH = ("hostPath", "host_path")


def _walk(values: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(where, key, value) for every key of every map in values."""
    if isinstance(values, Mapping):
        for key, inner in values.items():
            here = f"{path}.{key}"
            yield here, str(key), inner
            yield from _walk(inner, here)
    elif isinstance(values, list):
        for i, inner in enumerate(values):
            yield from _walk(inner, f"{path}[{i}]")


def _user_pods_confined(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    for section in ("singleuser", "hub"):
        for where, key, value in _walk(hub.values.get(section), section):
            if section == "singleuser" and key in _HOST_ACCESS and value is True:
                report(
                    f"{where} is true: a user's server {_HOST_ACCESS[key]}, and so reaches "
                    "the node and every user's data on it.",
                    hub.release.urn,
                )
            elif key in _HOST_PATH and value is not None:
                report(
                    f"{where} mounts a directory of the node into a pod: the share holds "
                    "every user's home, and a hostPath reaches past its per-user volumes.",
                    hub.release.urn,
                )


def _network_policies(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    for path in (
        ("hub", "networkPolicy"),
        ("proxy", "chp", "networkPolicy"),
        ("proxy", "traefik", "networkPolicy"),
        ("singleuser", "networkPolicy"),
    ):
        if dig(hub.values, *path, "enabled") is False:
            report(
                f"{'.'.join(path)}.enabled is false: without it any pod (a user's server "
                "among them) reaches these pods directly.",
                hub.release.urn,
            )


def _cloud_metadata_blocked(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    # Either mechanism blocks it: the chart's iptables init container, or the user pods'
    # network policy (enabled, and not allowing the metadata server).
    iptables = dig(hub.values, "singleuser", "cloudMetadata", "blockWithIptables") is not False
    policy = dig(hub.values, "singleuser", "networkPolicy") or {}
    allowed = dig(policy, "egressAllowRules", "cloudMetadataServer") is True
    if not iptables and (policy.get("enabled") is False or allowed):
        report(
            "User servers reach the cloud metadata server (169.254.169.254): "
            "singleuser.cloudMetadata.blockWithIptables is false and the user pods' network "
            "policy does not block it. It hands out the instance's credentials; keep one of "
            "the two blocking it.",
            hub.release.urn,
        )


def _proxy_service(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    kind = dig(hub.values, "proxy", "service", "type")
    if kind != "NodePort":
        report(
            f"proxy.service.type is {kind!r}, not NodePort: on k3s a LoadBalancer serves the "
            "hub in plain HTTP on every node, around the site HAProxy's TLS.",
            hub.release.urn,
        )


def _user_storage(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    if dig(hub.values, "singleuser", "storage", "type") == "none":
        report(
            "singleuser.storage.type is none: users' files live in the container and are "
            "lost when their server stops. Keep dynamic (a volume on the share per user).",
            hub.release.urn,
        )
    capacity = dig(hub.values, "singleuser", "storage", "capacity")
    # KubeSpawner puts it in every user's claim as written: the API server refuses a claim
    # whose size is not a quantity, and the user's server never starts.
    size = quantity(capacity) if isinstance(capacity, str) else None
    if capacity is not None and (size is None or size <= 0):
        report(
            f"singleuser.storage.capacity {capacity!r} is not a positive Kubernetes quantity "
            "(such as 1Gi or 500M; the kilo is a lowercase k): Kubernetes refuses every "
            "user's claim of that size.",
            hub.release.urn,
        )


# Keys the program may write itself, refused when they come from hub.extraValues.
_PROGRAM_ONLY = {
    ("hub", "extraConfig"): "is Python run in the hub with its every secret and right "
    "(scopes, admins, the proxy token): the pack cannot judge it",
    ("hub", "existingSecret"): "replaces the hub Secret the chart makes, and with it the "
    "secrets the program manages",
}


def _program_only_values(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    for path, why in _PROGRAM_ONLY.items():
        if dig(hub.extra_values, *path) is not None:
            report(
                f"hub.extraValues sets {'.'.join(path)}, which {why}. If the site truly needs "
                "it, waive this policy in the policy config after reviewing the value.",
                hub.release.urn,
            )


# -- adopted resources ------------------------------------------------------------------------
# Inputs that name what is adopted (or only steer the operation): the import matches on
# these. Anything else the program sets changes the running resource on the first `up`.
IDENTITY_INPUTS = {
    SHARE: {"name", "shareProto", "shareType", "size"},
    "openstack:sharedfilesystem/shareAccess:ShareAccess": {
        "shareId", "accessType", "accessTo", "accessLevel",
    },
    NAMESPACE: {"apiVersion", "kind", "metadata.name"},
    RELEASE: {
        "name", "namespace", "chart", "version", "repositoryOpts", "createNamespace",
        "cleanupOnFail", "timeout", "compat",
    },
}  # fmt: skip


def _changed_inputs(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    identity = IDENTITY_INPUTS.get(resource_type, set())
    changed = []
    for key in props:
        if key == "metadata" and isinstance(props[key], Mapping):
            changed += [
                f"metadata.{inner}"
                for inner in props[key]
                if f"metadata.{inner}" not in identity and inner != "namespace"
            ]
        elif key not in identity:
            changed.append(key)
    return sorted(changed)


def _adopted_resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    adopted = dict((args.get_config() or {}).get("adopted", {}))
    if args.name not in adopted:
        return
    changed = _changed_inputs(args.resource_type, args.props)
    if changed:
        report(
            f"{args.name} is adopted (import {adopted[args.name]}); besides importing it, the "
            f"first `pulumi up` updates {', '.join(changed)}. Check the preview's diff of "
            "these against the running resource before `pulumi up`.",
            None,
        )


# -- resources ----------------------------------------------------------------------------
def _share_protected(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == SHARE and not args.opts.protect:
        report(
            f"The share {args.name} holds every user's home: it must be protected "
            "(ResourceOptions(protect=True)).",
            None,
        )


# What secret material looks like in a command line, most specific first, each with a
# literal that must be present (a fast scan) before its pattern is tried: a cephx key
# (base64 of a 28-byte secret: 38 characters and "==" padding, starting "AQ"), a private
# key block, a secret= mount option (not secretfile=).
_SECRET_SHAPES = (
    ("AQ", re.compile(r"AQ[A-Za-z0-9+/]{36}=="), "a cephx key"),
    ("PRIVATE KEY-----", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"), "a private key"),
    ("secret=", re.compile(r"(?<![A-Za-z0-9_])secret="), "a secret= mount option"),
)


def secret_material(text: str, known: Sequence[str] = ()) -> str | None:
    """What kind of secret `text` carries, or None."""
    for literal, pattern, kind in _SECRET_SHAPES:
        if literal in text and pattern.search(text):
            return kind
    if any(value and len(value) >= 8 and value in text for value in known):
        return "the value of one of the stack's secret config keys"
    return None


def _no_secrets_in_commands(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != COMMAND:
        return
    known = list((args.get_config() or {}).get("knownSecrets", []))
    fields = {k: args.props.get(k) for k in ("create", "update", "delete")}
    for key, value in (args.props.get("environment") or {}).items():
        fields[f"environment.{key}"] = value
    for field, value in fields.items():
        if isinstance(value, str):
            found = secret_material(value, known)
            if found:
                report(
                    f"The {field} of {args.name} carries {found}: command lines and "
                    "environments are logged and kept in state; pass secrets on stdin.",
                    None,
                )


def _host_keys_pinned(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != COMMAND:
        return
    connection = args.props.get("connection")
    if not isinstance(connection, Mapping):
        return
    # pulumi-command checks no host key at all when none is pinned (not even on first use).
    unpinned = []
    if not connection.get("hostKey"):
        unpinned.append(f"the node at {connection.get('host')}")
    proxy = connection.get("proxy")
    if isinstance(proxy, Mapping) and not proxy.get("hostKey"):
        unpinned.append(f"the bastion at {proxy.get('host')}")
    if unpinned:
        report(
            f"No SSH host key is pinned for {' or '.join(unpinned)}: whatever answers there "
            "gets the cephx key and runs the node scripts as root. Pin hostKey (ssh-keyscan, "
            "fingerprint checked out of band) and remove nodes.allowUnpinnedHostKeys.",
            None,
        )


def _reclaim_policy(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == STORAGE_CLASS and args.props.get("reclaimPolicy") == "Delete":
        report(
            f"Storage class {args.name} has reclaimPolicy Delete: deleting a claim, or an "
            "uninstall, runs the provisioner's rm -rf on that user's data. Use Retain, or "
            "waive this policy in the policy config if that is intended.",
            None,
        )


def _chart_version(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != RELEASE or args.props.get("chart") != "jupyterhub":
        return
    tested = list((args.get_config() or {}).get("testedVersions", TESTED_CHART_VERSIONS))
    version = args.props.get("version")
    if version not in tested:
        report(
            f"Chart jupyterhub {version} is not a version this pack was tested with "
            f"({', '.join(tested)}): check its values schema and the hub image's libraries.",
            None,
        )


def _capacity_enforced(args: StackValidationArgs, report: ReportViolation) -> None:
    users = sorted(
        str(r.props.get("accessTo"))
        for r in args.resources
        if r.resource_type == SHARE_ACCESS and r.props.get("accessTo")
    )
    client = f"client.{users[0]}" if len(users) == 1 else "the share's cephx user"
    for resource in args.resources:
        if resource.resource_type != STORAGE_CLASS:
            continue
        annotations = dig(plain(resource.props), "metadata", "annotations") or {}
        if annotations.get(CAPACITY_ANNOTATION) != "false":
            continue
        report(
            f"Storage class {_metadata_name(resource)[0]} does not enforce claim sizes "
            "(storage.enforceCapacity is off): local-path ignores them on a shared path, so "
            "one user can fill the share and take the hub's database down with it. Ask the "
            f"Ceph operators for the p flag in the MDS cap of {client} (mds 'allow rwp "
            "path=<the share's path>'; Manila's access rule grants only rw), then set "
            "storage.enforceCapacity: true.",
            resource.urn,
        )


def _chart_advisories(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    chart = SUPPORTED_CHARTS.get(str(hub.release.props.get("version")))
    for advisory in chart.advisories if chart else ():
        report(
            f"Chart jupyterhub {chart.version}: {advisory}. Move to chart "
            f"{max(SUPPORTED_CHARTS, key=_version_key)} "
            '(docs/upgrading.md, "The chart, 3.x to 4.4.0").',
            hub.release.urn,
        )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _scheduler_skew(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    chart = SUPPORTED_CHARTS.get(str(hub.release.props.get("version")))
    cluster = hub.site.get("kubernetesVersion")
    user_scheduler = dig(hub.values, "scheduling", "userScheduler") or {}
    if chart is None or not isinstance(cluster, str) or not isinstance(user_scheduler, Mapping):
        return
    if user_scheduler.get("enabled") is False:
        return
    # A site may set the image tag itself; otherwise it is the chart's.
    tag = dig(user_scheduler, "image", "tag")
    scheduler = str(tag).lstrip("v") if isinstance(tag, str) and tag else chart.kube_scheduler
    try:
        scheduler_minor = kubernetes_minor(scheduler)
        cluster_minor = kubernetes_minor(cluster)
    except ValueError:
        return
    # Kubernetes supports a kube-scheduler at most one minor version older than the API
    # server it talks to.
    if scheduler_minor[0] == cluster_minor[0] and cluster_minor[1] - scheduler_minor[1] > 1:
        report(
            f"Chart jupyterhub {chart.version}'s user-scheduler runs kube-scheduler "
            f"{scheduler} on Kubernetes {cluster}, outside the supported skew (one minor "
            "version): it may fail to schedule user servers. Move to a chart whose "
            "scheduler matches the cluster, or set scheduling.userScheduler.enabled: false "
            "in hub.extraValues.",
            hub.release.urn,
        )


# What moving an adopted release to another chart generation changes, for the operator to
# check in the preview (docs/upgrading.md, "The chart, 3.x to 4.4.0").
GENERATION_CHANGES = {
    4: (
        "JupyterHub 4 -> 5 and oauthenticator 16 -> 17: the hub and the proxy restart (users' "
        "running servers keep going)",
        "KubeSpawner 7 makes names safe differently: existing users' volumes and claims keep "
        "their old names, new ones get the new scheme",
        "PKCE is sent with every login (hub.oauth.pkce: false if the provider's client refuses it)",
        "with allowedGroups or adminGroups, manage_groups: the hub's groups follow the "
        "provider's claim at each login",
        "back up the hub database (hub-db-dir) first: its schema is upgraded and a rollback "
        "needs the copy",
    ),
}


def _chart_generation_change(hub: Hub, _: dict[str, Any], report: ReportViolation) -> None:
    adopted = hub.site.get("adoptedChartVersion")
    version = hub.release.props.get("version")
    if not isinstance(adopted, str) or not isinstance(version, str):
        return
    try:
        before, after = chart_major(adopted), chart_major(version)
    except ValueError:
        return
    if before == after:
        return
    changes = GENERATION_CHANGES.get(after, ())
    detail = "; ".join(changes) if changes else "read the chart's upgrade notes"
    report(
        f"The adopted release runs chart {adopted} and the program installs {version} "
        f'(a major upgrade): {detail}. Follow docs/upgrading.md, "The chart, 3.x to 4.4.0".',
        hub.release.urn,
    )


def string_list(name: str, default: list[str]) -> PolicyConfigSchema:
    """A policy setting that is a list of strings."""
    return PolicyConfigSchema(
        properties={name: {"type": "array", "items": {"type": "string"}, "default": default}}
    )


POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    StackValidationPolicy(
        name="pinned-images",
        description="Every container image the stack deploys has a pinned tag or digest.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_pinned_images,
    ),
    StackValidationPolicy(
        name="singleuser-resources",
        description="User servers have CPU and memory guarantees and limits, guarantee <= limit.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_singleuser_resources),
    ),
    StackValidationPolicy(
        name="oauth-callback-matches-hub-url",
        description="The OAuth callback URL is https:// and is the hub URL + hub/oauth_callback.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_callback_matches_hub_url),
    ),
    StackValidationPolicy(
        name="required-oauth-scopes",
        description="The OAuth scopes include every scope the site requires.",
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=string_list("requiredScopes", REQUIRED_SCOPES),
        validate=stack_rule(_required_scopes),
    ),
    StackValidationPolicy(
        name="storage-classes-defined",
        description="Every storage class the Helm values name is defined in the same stack.",
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=string_list("externalClasses", []),
        validate=_storage_classes_defined,
    ),
    ResourceValidationPolicy(
        name="share-protected",
        description="The CephFS share that holds users' homes is protected.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_share_protected,
    ),
    StackValidationPolicy(
        name="node-port-in-range",
        description="The hub's NodePort is fixed and within 30000-32767.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_node_port),
    ),
    ResourceValidationPolicy(
        name="no-secrets-in-commands",
        description="No remote command carries secret material in its command line or environment.",
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=string_list("knownSecrets", []),
        validate=_no_secrets_in_commands,
    ),
    ResourceValidationPolicy(
        name="storage-reclaim-retain",
        description="Storage classes keep users' data when a claim is deleted (not Delete).",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_reclaim_policy,
    ),
    StackValidationPolicy(
        name="resources-within-site-limits",
        description="No user server's limits (singleuser, profile overrides) are removed or "
        "above the largest the site configures.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_resources_within_site_limits),
    ),
    StackValidationPolicy(
        name="user-pods-confined",
        description="User pods get no host network, PID or IPC, privilege or escalation; "
        "no pod mounts a hostPath.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_user_pods_confined),
    ),
    StackValidationPolicy(
        name="network-policies-enabled",
        description="The chart's network policies for hub, proxy and user pods stay on.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_network_policies),
    ),
    StackValidationPolicy(
        name="cloud-metadata-blocked",
        description="User servers cannot reach the cloud metadata server.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_cloud_metadata_blocked),
    ),
    StackValidationPolicy(
        name="proxy-service-node-port",
        description="The hub's proxy is a NodePort Service behind the site HAProxy.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_proxy_service),
    ),
    StackValidationPolicy(
        name="user-storage-persistent",
        description="Users' files are on persistent volumes (storage type not none, a claim "
        "size Kubernetes takes).",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_user_storage),
    ),
    StackValidationPolicy(
        name="no-hub-code-from-extra-values",
        description="hub.extraConfig and hub.existingSecret come only from the program.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_program_only_values),
    ),
    StackValidationPolicy(
        name="allow-all-with-groups",
        description="allow_all is not combined with allowed_groups, which it would override.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=stack_rule(_allow_all_with_groups),
    ),
    ResourceValidationPolicy(
        name="ssh-host-keys-pinned",
        description="Every node (and the bastion) is reached with a pinned SSH host key.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_host_keys_pinned,
    ),
    StackValidationPolicy(
        name="allow-all-admits-everyone",
        description="allow_all admits every account of the identity provider.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=stack_rule(_allow_all),
    ),
    ResourceValidationPolicy(
        name="adopted-resources-changed",
        description="Adopted resources whose inputs the program would change on import.",
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=PolicyConfigSchema(
            properties={
                "adopted": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "default": {},
                }
            }
        ),
        validate=_adopted_resources,
    ),
    StackValidationPolicy(
        name="chart-version-vulnerable",
        description="The chart's hub runs a version with a published vulnerability.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=stack_rule(_chart_advisories),
    ),
    StackValidationPolicy(
        name="user-scheduler-skew",
        description="The chart's kube-scheduler is within Kubernetes' skew of the cluster.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=stack_rule(_scheduler_skew),
    ),
    StackValidationPolicy(
        name="chart-major-upgrade",
        description="An adopted release moves to another chart generation.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=stack_rule(_chart_generation_change),
    ),
    ResourceValidationPolicy(
        name="chart-version-tested",
        description="The jupyterhub chart version is one this pack was tested against.",
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=string_list("testedVersions", TESTED_CHART_VERSIONS),
        validate=_chart_version,
    ),
    StackValidationPolicy(
        name="capacity-enforced",
        description="Each volume's size is enforced as a CephFS quota (storage.enforceCapacity).",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_capacity_enforced,
    ),
]
