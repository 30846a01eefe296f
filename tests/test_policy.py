"""The policy pack: each rule fires on what it guards against and stays quiet otherwise."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import pytest
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from policy.rules import POLICIES, is_pinned, quantity, secret_material
from sitectl.mockrun import ProgramRun, fake_cephx_key, reveal, run_program
from sitectl.policy_engine import PolicyConfigError, PolicyReport, evaluate
from tests.sites import ROOT, run, site
from tests.test_plan import plan

RUNBOOK = ROOT / "tests" / "fixtures" / "Pulumi.runbook.yaml"
ADVISORY = EnforcementLevel.ADVISORY


def check(result: ProgramRun, config: dict[str, Any] | None = None, **extra: Any) -> PolicyReport:
    return evaluate(result.ok(), POLICIES, config, extra)


def fired(report: PolicyReport, policy: str) -> list[str]:
    return [v.message for v in report.violations if v.policy == policy]


@pytest.fixture(scope="module")
def espsrc_report() -> PolicyReport:
    return check(run())


def extra_values(values: dict[str, Any], **changes: Any) -> ProgramRun:
    return run(site(**{"hub.extraValues": values, **changes}))


def custom(program: Callable[[], None]) -> ProgramRun:
    return run_program({}, [], program=program)


def test_another_charts_release_is_not_judged_as_a_hub() -> None:
    """A stack may install other charts; the hub rules read jupyterhub releases only."""

    def program() -> None:
        k8s.helm.v3.Release("certs", chart="cert-manager", namespace="certs", values={})

    report = check(custom(program))
    assert report.violations == []
    assert report.not_run == []


def test_espsrc_has_no_mandatory_violation(espsrc_report: PolicyReport) -> None:
    assert espsrc_report.mandatory == []
    assert len(espsrc_report.ran) == len(POLICIES)
    assert espsrc_report.not_run == []


# -- one test that fires each rule, one that shows it quiet ------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"singleuser": {"image": {"tag": "latest"}}}, "singleuser.image uses image"),
        ({"singleuser": {"image": {"tag": ""}}}, "'quay.io/jupyter/minimal-notebook'"),
        (
            {
                "singleuser": {
                    "profileList": [
                        {
                            "display_name": "x",
                            "kubespawner_override": {"image": "jupyter/scipy-notebook"},
                        }
                    ]
                }
            },
            "kubespawner_override.image uses image 'jupyter/scipy-notebook'",
        ),
        (
            {"hub": {"image": {"name": "quay.io/jupyterhub/k8s-hub", "tag": "latest"}}},
            "hub.image uses image",
        ),
    ],
)
def test_pinned_images_fires(values: dict[str, Any], expected: str) -> None:
    messages = fired(check(extra_values(values)), "pinned-images")
    assert any(expected in m for m in messages), messages


def test_pinned_images_covers_the_provisioner() -> None:
    def program() -> None:
        spec: Any = {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {
                    "containers": [
                        {
                            "name": "p",
                            "image": "rancher/local-path-provisioner:v0.0.37",
                            "command": ["local-path-provisioner", "--helper-image", "busybox"],
                        }
                    ]
                },
            },
        }
        k8s.apps.v1.Deployment("prov", spec=spec)
        k8s.core.v1.ConfigMap("cfg", data={"helperPod.yaml": "spec:\n  image: busybox:latest\n"})

    messages = fired(check(custom(program)), "pinned-images")
    assert any("--helper-image uses image 'busybox'" in m for m in messages), messages
    assert any("helperPod.yaml uses image 'busybox:latest'" in m for m in messages), messages
    assert not any("v0.0.37" in m for m in messages)


def test_pinned_images_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "pinned-images") == []


@pytest.mark.parametrize(
    ("reference", "pinned"),
    [
        ("quay.io/jupyter/scipy-notebook:2025-11-10", True),
        ("registry.local:5000/img:v1", True),
        ("busybox@sha256:" + "a" * 64, True),
        ("busybox", False),
        ("busybox:latest", False),
        ("registry.local:5000/img", False),
        ("busybox@sha256:abc", False),
    ],
)
def test_is_pinned(reference: str, pinned: bool) -> None:
    assert is_pinned(reference) is pinned


def test_singleuser_resources_fires() -> None:
    report = check(
        extra_values({"singleuser": {"cpu": {"guarantee": 2}, "memory": {"limit": None}}})
    )
    messages = fired(report, "singleuser-resources")
    assert any("singleuser.cpu.guarantee 2 is above its limit 0.5" in m for m in messages), messages
    assert any("singleuser.memory needs both a limit and a guarantee" in m for m in messages)


def test_singleuser_resources_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "singleuser-resources") == []
    assert quantity("1G") == 1e9 and quantity("1Gi") == 2**30 and quantity("lots") is None


@pytest.mark.parametrize(
    ("callback", "expected"),
    [
        ("http://notebook.espsrc.iaa.csic.es/hub/oauth_callback", "is not https://"),
        (
            "https://notebook.example.org/hub/oauth_callback",
            "is not the hub URL + hub/oauth_callback",
        ),
    ],
)
def test_callback_fires(callback: str, expected: str) -> None:
    values = {"hub": {"config": {"GenericOAuthenticator": {"oauth_callback_url": callback}}}}
    messages = fired(check(extra_values(values)), "oauth-callback-matches-hub-url")
    assert any(expected in m for m in messages), messages


def test_callback_without_the_hub_url_cannot_be_compared() -> None:
    """A hub the program did not make (no hub-url annotation on its namespace): the rule
    says it cannot compare, rather than passing a callback it never checked."""

    def program() -> None:
        oauth = {"oauth_callback_url": "https://notebook.example.org/hub/oauth_callback"}
        k8s.helm.v3.Release(
            "hub",
            chart="jupyterhub",
            namespace="jhub",
            values={"hub": {"config": {"GenericOAuthenticator": oauth}}},
        )

    assert fired(check(custom(program)), "oauth-callback-matches-hub-url") == [
        "The hub namespace has no jupyterhub-platform/hub-url annotation, so the callback URL "
        "cannot be compared with the hub URL."
    ]


def test_callback_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "oauth-callback-matches-hub-url") == []
    assert (
        fired(check(run(site(**{"hub.baseUrl": "/jhub/"}))), "oauth-callback-matches-hub-url") == []
    )


def test_required_scopes_fires_and_is_configurable() -> None:
    result = run(site(**{"hub.oauth.scopes": ["openid", "profile", "email"]}))
    assert any(
        "lack ['offline_access']" in m for m in fired(check(result), "required-oauth-scopes")
    )
    relaxed = {"required-oauth-scopes": {"requiredScopes": ["openid"]}}
    assert fired(check(result, relaxed), "required-oauth-scopes") == []


def test_required_scopes_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "required-oauth-scopes") == []


def test_storage_classes_fires() -> None:
    values = {"singleuser": {"storage": {"dynamic": {"storageClass": "local-path"}}}}
    messages = fired(check(extra_values(values)), "storage-classes-defined")
    assert messages == [
        "singleuser.storage.dynamic.storageClass names storage class 'local-path', which this "
        "stack does not define (it defines ['cephfs-shared']): claims would stay Pending. A "
        "class that exists outside the stack on purpose goes in this policy's externalClasses."
    ]
    external = {"storage-classes-defined": {"externalClasses": ["local-path"]}}
    assert fired(check(extra_values(values), external), "storage-classes-defined") == []


def test_storage_classes_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "storage-classes-defined") == []


def test_share_protected_fires() -> None:
    def program() -> None:
        openstack.sharedfilesystem.Share("homes", share_proto="CEPHFS", size=1)

    report = check(custom(program))
    assert fired(report, "share-protected") == [
        "The share homes holds every user's home: it must be protected "
        "(ResourceOptions(protect=True))."
    ]
    assert report.violations[0].resource == "homes"


def test_share_protected_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "share-protected") == []


@pytest.mark.parametrize("port", [80, None, 31090.5])
def test_node_port_fires(port: float | None) -> None:
    values = {"proxy": {"service": {"nodePorts": {"http": port}}}}
    messages = fired(check(extra_values(values)), "node-port-in-range")
    assert messages and f"proxy.service.nodePorts.http is {port!r}" in messages[0]


def test_node_port_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "node-port-in-range") == []
    # The engine hands numbers over as JSON doubles: 31090 may arrive as 31090.0.
    as_double = {"proxy": {"service": {"nodePorts": {"http": 31090.0}}}}
    assert fired(check(extra_values(as_double)), "node-port-in-range") == []


def test_numbers_are_shown_as_the_operator_wrote_them() -> None:
    """In a real preview a limit of 0 arrives as 0.0; the message says 0, as written."""
    from policy.rules import shown

    assert [shown(0.0), shown(64.0), shown(0.5), shown("0")] == ["0", "64", "0.5", "'0'"]


@pytest.mark.parametrize(
    ("field", "text", "kind"),
    [
        ("create", f"mount -o name=u,secret={fake_cephx_key('x')} src /mnt", "a cephx key"),
        ("create", "mount -t ceph m:/p /mnt -o name=u,secret=hunter2", "a secret= mount option"),
        ("delete", "echo '-----BEGIN OPENSSH PRIVATE KEY-----' > k", "a private key"),
        (
            "create",
            "curl -u admin:planted-known-secret https://x",
            "the value of one of the stack's secret config keys",
        ),
        # The environment is logged and kept in state as the command line is.
        ("environment.CEPH_SECRET", fake_cephx_key("env"), "a cephx key"),
    ],
)
def test_no_secrets_in_commands_fires(field: str, text: str, kind: str) -> None:
    def program() -> None:
        steps: dict[str, Any] = {field: text}
        if field.startswith("environment."):
            steps = {"create": "true", "environment": {field.split(".", 1)[1]: text}}
        command.remote.Command("leaky", connection=command.remote.ConnectionArgs(host="n"), **steps)

    report = check(
        custom(program), **{"no-secrets-in-commands": {"knownSecrets": ["planted-known-secret"]}}
    )
    messages = fired(report, "no-secrets-in-commands")
    assert messages == [
        f"The {field} of leaky carries {kind}: command lines and environments are logged and "
        "kept in state; pass secrets on stdin."
    ]


def test_no_secrets_in_commands_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "no-secrets-in-commands") == []
    assert secret_material("mount -o name=u,secretfile=/etc/ceph/x.secret") is None


def test_reclaim_policy_fires_and_can_be_waived() -> None:
    result = run(site(**{"storage.reclaimPolicy": "Delete"}))
    report = check(result)
    assert fired(report, "storage-reclaim-retain") == [
        "Storage class storage-class has reclaimPolicy Delete: deleting a claim, or an "
        "uninstall, runs the provisioner's rm -rf on that user's data. Use Retain, or waive "
        "this policy in the policy config if that is intended."
    ]
    assert report.mandatory
    waived = check(result, {"storage-reclaim-retain": {"enforcementLevel": "disabled"}})
    assert fired(waived, "storage-reclaim-retain") == [] and waived.mandatory == []
    assert waived.disabled == ["storage-reclaim-retain"]
    softened = check(result, {"storage-reclaim-retain": "advisory"})
    assert fired(softened, "storage-reclaim-retain") and softened.mandatory == []


def test_reclaim_policy_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "storage-reclaim-retain") == []


def test_capacity_advisory_while_quotas_are_off(espsrc_report: PolicyReport) -> None:
    [violation] = [v for v in espsrc_report.violations if v.policy == "capacity-enforced"]
    assert violation.level == "advisory"
    assert violation.message == (
        "Storage class cephfs-shared does not enforce claim sizes (storage.enforceCapacity "
        "is off): local-path ignores them on a shared path, so one user can fill the share "
        "and take the hub's database down with it. Ask the Ceph operators for the p flag in "
        "the MDS cap of client.spsrc-k8-cluster00 (mds 'allow rwp path=<the share's path>'; "
        "Manila's access rule grants only rw), then set storage.enforceCapacity: true."
    )
    enforced = check(run(site(**{"storage.enforceCapacity": True})))
    assert fired(enforced, "capacity-enforced") == []


def test_allow_all_is_advisory(espsrc_report: PolicyReport) -> None:
    [violation] = [v for v in espsrc_report.violations if v.policy == "allow-all-admits-everyone"]
    assert violation.level == "advisory"
    assert violation.message == (
        "allow_all admits every account of the identity provider. If only some should use "
        "this hub, set hub.oauth.allowedGroups (with claimGroupsKey) instead."
    )
    groups = run(
        site(
            **{
                "hub.oauth.allowAll": False,
                "hub.oauth.claimGroupsKey": "groups",
                "hub.oauth.allowedGroups": ["ska"],
            }
        )
    )
    assert fired(check(groups), "allow-all-admits-everyone") == []


def test_allow_all_with_groups_fires_on_the_merged_values() -> None:
    """Groups added through hub.extraValues next to allowAll restrict nothing either."""
    groups = {"allowed_groups": ["science"], "claim_groups_key": "groups"}
    report = check(extra_values({"hub": {"config": {"GenericOAuthenticator": groups}}}))
    [violation] = [v for v in report.mandatory if v.policy == "allow-all-with-groups"]
    assert violation.message == (
        "allow_all is set together with allowed_groups ['science']: oauthenticator admits every "
        "account on allow_all before it looks at groups, so the groups restrict nothing. "
        "Remove allow_all (hub.oauth.allowAll) to admit only the groups."
    )
    # allow_all from extraValues, over a site restricted to groups: the same.
    restricted = {
        "hub.oauth.allowAll": False,
        "hub.oauth.claimGroupsKey": "groups",
        "hub.oauth.allowedGroups": ["ska"],
    }
    sneaked = {"hub": {"config": {"OAuthenticator": {"allow_all": True}}}}
    assert fired(check(extra_values(sneaked, **restricted)), "allow-all-with-groups")
    assert fired(check(run(site(**restricted))), "allow-all-with-groups") == []


def test_allow_all_with_groups_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "allow-all-with-groups") == []


UNPINNED_NODE = (
    "No SSH host key is pinned for the node at {host}: whatever answers there gets the cephx "
    "key and runs the node scripts as root. Pin hostKey (ssh-keyscan, fingerprint checked out "
    "of band) and remove nodes.allowUnpinnedHostKeys."
)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlZC1ub3QtYS1yZWFsLWtleS0wMDAwMDAw"


def test_unpinned_host_keys_are_an_advisory_on_every_node(espsrc_report: PolicyReport) -> None:
    found = [v for v in espsrc_report.violations if v.policy == "ssh-host-keys-pinned"]
    assert {v.level for v in found} == {"advisory"}
    assert {v.resource: v.message for v in found} == {
        f"mounts-{node}": UNPINNED_NODE.format(host=host)
        for node, host in (
            ("k8s-master-0", "192.168.250.83"),
            ("k8s-workers-1", "192.168.250.195"),
            ("k8s-workers-2", "192.168.250.214"),
        )
    }
    # A pinned node behind an unpinned bastion: the bastion is named.
    bastion = run(
        site(**{"nodes.hosts[0].hostKey": HOST_KEY, "nodes.bastion.host": "jump.example.org"})
    )
    messages = {v.resource: v.message for v in check(bastion).violations}
    assert messages["mounts-k8s-master-0"].startswith(
        "No SSH host key is pinned for the bastion at jump.example.org: "
    )
    assert messages["mounts-k8s-workers-1"].startswith(
        "No SSH host key is pinned for the node at 192.168.250.195 or the bastion at "
        "jump.example.org: "
    )


def test_pinned_host_keys_quiet() -> None:
    pinned = {f"nodes.hosts[{i}].hostKey": HOST_KEY for i in range(3)}
    bastion = {"nodes.bastion.host": "jump.example.org", "nodes.bastion.hostKey": HOST_KEY}
    strict = {**pinned, **bastion, "nodes.allowUnpinnedHostKeys": False}
    report = check(run(site(**strict)))
    assert "ssh-host-keys-pinned" in report.ran
    assert fired(report, "ssh-host-keys-pinned") == []


# -- hub.extraValues cannot take away what the site config guarantees --------------------
def _profile(override: dict[str, Any]) -> dict[str, Any]:
    return {
        "singleuser": {"profileList": [{"display_name": "x", "kubespawner_override": override}]}
    }


# (what an operator could write in hub.extraValues, the rule, the start of its message)
BYPASSES: list[tuple[str, dict[str, Any], str, str]] = [
    ("cpu-limit-0", {"singleuser": {"cpu": {"limit": 0, "guarantee": 0}}},
     "singleuser-resources", "singleuser.cpu.limit is 0: KubeSpawner sets no limit"),
    ("memory-limit-0", {"singleuser": {"memory": {"limit": 0, "guarantee": 0}}},
     "singleuser-resources", "singleuser.memory.limit is 0: KubeSpawner sets no limit"),
    # Kubernetes' suffixes, which KubeSpawner refuses: the hub would not start.
    ("memory-binary-suffix", {"singleuser": {"memory": {"limit": "2Gi", "guarantee": "1Gi"}}},
     "singleuser-resources",
     "singleuser.memory limit '2Gi' / guarantee '1Gi': each must be a memory size KubeSpawner"),
    ("profile-memory-binary-suffix", _profile({"mem_limit": "1Gi"}),
     "resources-within-site-limits",
     "singleuser.profileList[0].kubespawner_override.mem_limit is '1Gi', not a memory size"),
    ("limit-raised", {"singleuser": {"cpu": {"limit": 64}}}, "resources-within-site-limits",
     "singleuser.cpu.limit is 64, above the largest cpu limit the site configures (0.5 CPUs)"),
    # (a null never reaches Helm: Pulumi drops None from the values it sends)
    ("profile-removes-limit", _profile({"cpu_limit": 0}), "resources-within-site-limits",
     "singleuser.profileList[0].kubespawner_override.cpu_limit is 0: it removes"),
    ("profile-limit-0", _profile({"mem_limit": 0}), "resources-within-site-limits",
     "singleuser.profileList[0].kubespawner_override.mem_limit is 0: it removes"),
    ("profile-raises-limit", _profile({"mem_limit": "64G"}), "resources-within-site-limits",
     "singleuser.profileList[0].kubespawner_override.mem_limit is '64G', above the largest "
     "memory limit the site configures (1073741824 bytes)"),
    ("profile-option-raises",
     {"singleuser": {"profileList": [{"display_name": "x", "profile_options": {"size": {
         "display_name": "Size",
         "choices": {"xl": {"display_name": "XL", "kubespawner_override": {"cpu_limit": 32}}},
     }}}]}},
     "resources-within-site-limits",
     "singleuser.profileList[0].profile_options.size.choices.xl.kubespawner_override.cpu_limit "
     "is 32, above"),
    ("unlisted-choice-raises",
     {"singleuser": {"profileList": [{"display_name": "x", "profile_options": {"image": {
         "display_name": "Image",
         "unlisted_choice": {"enabled": True, "kubespawner_override": {"mem_limit": "64G"}},
     }}}]}},
     "resources-within-site-limits",
     "singleuser.profileList[0].profile_options.image.unlisted_choice.kubespawner_override."
     "mem_limit is '64G', above"),
    ("profile-limit-not-a-quantity", _profile({"mem_limit": "lots"}),
     "resources-within-site-limits",
     "singleuser.profileList[0].kubespawner_override.mem_limit is 'lots', not a memory size "
     "KubeSpawner takes"),
    ("limit-not-a-quantity", {"singleuser": {"memory": {"limit": "lots"}}},
     "singleuser-resources",
     "singleuser.memory limit 'lots' / guarantee '1G': each must be a memory size KubeSpawner "
     "takes"),
    ("extra-config", {"hub": {"extraConfig": {"admins": "c.Authenticator.admin_users = {'eve'}"}}},
     "no-hub-code-from-extra-values", "hub.extraValues sets hub.extraConfig, which is Python"),
    ("existing-secret", {"hub": {"existingSecret": "my-hub-secret"}},
     "no-hub-code-from-extra-values", "hub.extraValues sets hub.existingSecret, which replaces"),
    ("load-balancer", {"proxy": {"service": {"type": "LoadBalancer"}}},
     "proxy-service-node-port", "proxy.service.type is 'LoadBalancer', not NodePort"),
    ("user-netpol-off", {"singleuser": {"networkPolicy": {"enabled": False}}},
     "network-policies-enabled", "singleuser.networkPolicy.enabled is false"),
    ("hub-netpol-off", {"hub": {"networkPolicy": {"enabled": False}}},
     "network-policies-enabled", "hub.networkPolicy.enabled is false"),
    ("proxy-netpol-off", {"proxy": {"chp": {"networkPolicy": {"enabled": False}}}},
     "network-policies-enabled", "proxy.chp.networkPolicy.enabled is false"),
    ("metadata-open",
     {"singleuser": {"cloudMetadata": {"blockWithIptables": False},
                     "networkPolicy": {"egressAllowRules": {"cloudMetadataServer": True}}}},
     "cloud-metadata-blocked", "User servers reach the cloud metadata server"),
    ("metadata-no-netpol",
     {"singleuser": {"cloudMetadata": {"blockWithIptables": False},
                     "networkPolicy": {"enabled": False}}},
     "cloud-metadata-blocked", "User servers reach the cloud metadata server"),
    ("host-network", {"singleuser": {"extraPodConfig": {"hostNetwork": True}}},
     "user-pods-confined", "singleuser.extraPodConfig.hostNetwork is true: a user's server "
     "shares the node's network"),
    ("host-ipc", {"singleuser": {"extraPodConfig": {"hostIPC": True}}},
     "user-pods-confined", "singleuser.extraPodConfig.hostIPC is true: a user's server "
     "shares the node's IPC"),
    ("host-pid-in-profile", _profile({"extra_pod_config": {"hostPID": True}}),
     "user-pods-confined",
     "singleuser.profileList[0].kubespawner_override.extra_pod_config.hostPID is true"),
    ("privileged",
     {"singleuser": {"extraContainers": [{"name": "x", "image": "busybox:1.36",
                                          "securityContext": {"privileged": True}}]}},
     "user-pods-confined", "singleuser.extraContainers[0].securityContext.privileged is true"),
    ("escalation", {"singleuser": {"allowPrivilegeEscalation": True}},
     "user-pods-confined", "singleuser.allowPrivilegeEscalation is true"),
    ("escalation-in-profile", _profile({"allow_privilege_escalation": True}),
     "user-pods-confined",
     "singleuser.profileList[0].kubespawner_override.allow_privilege_escalation is true"),
    ("host-path",
     {"singleuser": {"storage": {"extraVolumes": [{"name": "h", "hostPath": {"path": "/"}}]}}},
     "user-pods-confined", "singleuser.storage.extraVolumes[0].hostPath mounts a directory"),
    ("host-path-hub", {"hub": {"extraVolumes": [{"name": "h", "hostPath": {"path": "/etc"}}]}},
     "user-pods-confined", "hub.extraVolumes[0].hostPath mounts a directory"),
    ("storage-none", {"singleuser": {"storage": {"type": "none"}}},
     "user-storage-persistent", "singleuser.storage.type is none"),
    # Kubernetes' kilo is k: KubeSpawner would ask for claims the API server refuses.
    ("storage-capacity-K", {"singleuser": {"storage": {"capacity": "500K"}}},
     "user-storage-persistent", "singleuser.storage.capacity '500K' is not a positive"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("values", "policy", "message"),
    [b[1:] for b in BYPASSES],
    ids=[b[0] for b in BYPASSES],
)
def test_extra_values_cannot_bypass_a_mandatory_rule(
    values: dict[str, Any], policy: str, message: str
) -> None:
    report = check(extra_values(values))
    found = [v.message for v in report.mandatory if v.policy == policy]
    assert any(m.startswith(message) for m in found), found or report.violations


def test_what_the_site_configures_stays_allowed() -> None:
    """A profile with more than the default, metadata blocked by the network policy
    alone, network policy settings that change nothing: no violation."""
    bigger = {
        "hub.profiles[1].cpu": {"limit": 4, "guarantee": 1},
        "hub.profiles[1].memory": {"limit": "8G", "guarantee": "2G"},
        "hub.extraValues": {
            "singleuser": {
                "cloudMetadata": {"blockWithIptables": False},
                "networkPolicy": {"enabled": True},
            }
        },
    }
    result = run(site(**bigger))
    report = check(result)
    assert report.mandatory == []
    values = reveal(result.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    override = values["singleuser"]["profileList"][1]["kubespawner_override"]
    assert override["cpu_limit"] == 4 and override["mem_limit"] == "8G"
    # The default may take the larger profile's share too, not more.
    raised = dict(bigger, **{"hub.extraValues": {"singleuser": {"cpu": {"limit": 4}}}})
    assert fired(check(run(site(**raised))), "resources-within-site-limits") == []
    raised = dict(bigger, **{"hub.extraValues": {"singleuser": {"cpu": {"limit": 4.5}}}})
    assert fired(check(run(site(**raised))), "resources-within-site-limits")


def test_hub_code_the_program_writes_is_allowed() -> None:
    """extraConfig and existingSecret are refused by where they come from, not by key."""
    from policy.rules import Hub, _program_only_values

    values = {"hub": {"extraConfig": {"site": "c.X = 1"}, "existingSecret": "hub"}}
    found: list[str] = []
    release: Any = SimpleNamespace(urn="urn:hub-release")
    hub = Hub(release=release, values=values, namespace=None, site={}, extra_values={})

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    _program_only_values(hub, {}, report)
    assert found == []
    _program_only_values(Hub(hub.release, values, None, {}, values), {}, report)
    assert len(found) == 2, "the same keys from hub.extraValues"


def test_chart_version_is_advisory() -> None:
    report = check(run(site(**{"hub.chartVersion": "4.0.0", "hub.allowUntestedChart": True})))
    [violation] = [v for v in report.violations if v.policy == "chart-version-tested"]
    assert violation.level == "advisory"
    assert violation.message == (
        "Chart jupyterhub 4.0.0 is not a version this pack was tested with (3.1.0, 3.3.8, "
        "4.4.0): check its values schema and the hub image's libraries."
    )
    assert report.mandatory == []


def test_chart_version_quiet(espsrc_report: PolicyReport) -> None:
    assert fired(espsrc_report, "chart-version-tested") == []


# -- the chart's versions: vulnerabilities, scheduler skew, a major upgrade ---------------
AT_440 = {"hub.chartVersion": "4.4.0"}
ADOPTED = {
    "hub.adoptRelease": True,
    "hub.dbStorageClass": "local-path",
    "hub.adoptedChartVersion": "3.1.0",
}


@pytest.fixture(scope="module")
def report_440() -> PolicyReport:
    return check(run(site(**AT_440)))


def test_vulnerable_chart_fires(espsrc_report: PolicyReport) -> None:
    [message] = fired(espsrc_report, "chart-version-vulnerable")
    assert message.startswith("Chart jupyterhub 3.1.0: GHSA-7r3h-4ph8-w38g: JupyterHub 4.0.2 ")
    assert "fixed in JupyterHub 4.1.0" in message
    assert message.endswith('Move to chart 4.4.0 (docs/upgrading.md, "The chart, 3.x to 4.4.0").')
    assert [
        v.level for v in espsrc_report.violations if v.policy == "chart-version-vulnerable"
    ] == ["advisory"]


@pytest.mark.parametrize("version", ["3.3.8", "4.4.0"])
def test_vulnerable_chart_quiet(version: str) -> None:
    report = check(run(site(**{"hub.chartVersion": version})))
    assert fired(report, "chart-version-vulnerable") == []


@pytest.mark.parametrize(
    ("version", "kubernetes", "scheduler"),
    [("3.1.0", "1.30", "1.26.9"), ("3.3.8", "1.28", "1.26.15"), ("4.4.0", "1.32", "1.30.14")],
)
def test_scheduler_skew_fires(version: str, kubernetes: str, scheduler: str) -> None:
    report = check(run(site(**{"hub.chartVersion": version, "site.kubernetesVersion": kubernetes})))
    [message] = fired(report, "user-scheduler-skew")
    assert message.startswith(
        f"Chart jupyterhub {version}'s user-scheduler runs kube-scheduler {scheduler} on "
        f"Kubernetes {kubernetes}, outside the supported skew (one minor version)"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"site.kubernetesVersion": "1.27"},  # 3.1.0's 1.26 scheduler is one minor behind
        {"hub.chartVersion": "4.4.0", "site.kubernetesVersion": "1.31"},
        {"hub.extraValues": {"scheduling": {"userScheduler": {"enabled": False}}}},
        {"hub.extraValues": {"scheduling": {"userScheduler": {"image": {"tag": "v1.30.14"}}}}},
    ],
)
def test_scheduler_skew_quiet(changes: dict[str, Any]) -> None:
    assert fired(check(run(site(**changes))), "user-scheduler-skew") == []


def test_espsrc_at_440_has_no_chart_advisory(report_440: PolicyReport) -> None:
    assert report_440.mandatory == []
    for policy in ("chart-version-vulnerable", "user-scheduler-skew", "chart-major-upgrade"):
        assert fired(report_440, policy) == [], policy


def test_major_upgrade_of_an_adopted_release_fires() -> None:
    report = check(
        run(site(**ADOPTED, **AT_440)),
        {"storage-classes-defined": {"externalClasses": ["local-path"]}},
    )
    [message] = fired(report, "chart-major-upgrade")
    assert message.startswith(
        "The adopted release runs chart 3.1.0 and the program installs 4.4.0 (a major upgrade)"
    )
    for change in ("KubeSpawner 7", "existing users' volumes", "PKCE", "manage_groups",
                   "the hub and the proxy restart", "hub-db-dir"):  # fmt: skip
        assert change in message, change
    assert message.endswith('Follow docs/upgrading.md, "The chart, 3.x to 4.4.0".')


@pytest.mark.parametrize(
    "changes",
    [
        ADOPTED,  # adopted at 3.1.0, stays on 3.x
        {**ADOPTED, "hub.chartVersion": "3.3.8"},
        {**ADOPTED, "hub.adoptedChartVersion": "4.4.0", **AT_440},
        AT_440,  # nothing adopted
    ],
)
def test_major_upgrade_quiet(changes: dict[str, Any]) -> None:
    assert fired(check(run(site(**changes))), "chart-major-upgrade") == []


def test_chart_advisories_in_a_first_preview() -> None:
    """With the release's values unknown, the rules read the settings ConfigMap."""
    report = check(
        run(site(**ADOPTED, **AT_440, **{"site.kubernetesVersion": "1.32"}), preview=True)
    )
    assert fired(report, "chart-major-upgrade")
    assert fired(report, "user-scheduler-skew")


# -- values of the wrong shape (hub.extraValues can hold anything) ------------------------
@pytest.mark.parametrize(
    ("values", "policy", "expected"),
    [
        ({"singleuser": {"cpu": "2"}}, "singleuser-resources", "singleuser.cpu is '2', not a map"),
        (
            {"singleuser": {"storage": {"dynamic": {"storageClass": ["a"]}}}},
            "storage-classes-defined",
            "singleuser.storage.dynamic.storageClass is ['a'], not a storage class name",
        ),
        (
            {"hub": {"config": {"GenericOAuthenticator": "x"}}},
            "oauth-callback-matches-hub-url",
            "oauth_callback_url is not set",
        ),
        (
            {"hub": {"config": {"GenericOAuthenticator": {"scope": "openid profile email"}}}},
            "required-oauth-scopes",
            "'openid profile email' is not a list of scopes",
        ),
        ({"proxy": {"service": "NodePort"}}, "node-port-in-range", None),
    ],
)
def test_values_of_the_wrong_shape_are_reported_not_raised(
    values: dict[str, Any], policy: str, expected: str | None
) -> None:
    report = check(extra_values(values))
    messages = fired(report, policy)
    if expected is None:
        assert messages == [], "a service that is not a map sets no NodePort to check"
    else:
        assert any(expected in m for m in messages), messages
    assert not any("could not check" in v.message for v in report.violations)


def test_a_rule_that_fails_is_one_reported_line() -> None:
    def broken(args: Any, report: Any) -> None:
        raise KeyError("spec")

    from pulumi_policy import StackValidationPolicy

    rule = StackValidationPolicy(
        name="broken", description="raises", validate=broken, enforcement_level=ADVISORY
    )
    report = evaluate(run().ok(), [rule])
    # Mandatory whatever the rule's level: a pack that cannot check fails the preview.
    assert [(v.policy, v.level, v.message) for v in report.violations] == [
        ("broken", "mandatory", "the rule could not check this stack (KeyError: 'spec')")
    ]
    assert report.ran == []


def test_a_resource_rule_that_fails_names_the_resource() -> None:
    def broken(args: Any, report: Any) -> None:
        if args.resource_type == "openstack:sharedfilesystem/share:Share":
            raise TypeError("unexpected shape")

    from pulumi_policy import ResourceValidationPolicy

    rule = ResourceValidationPolicy(
        name="broken", description="raises", validate=broken, enforcement_level=ADVISORY
    )
    report = evaluate(run().ok(), [rule])
    assert [(v.policy, v.level, v.resource, v.message) for v in report.violations] == [
        (
            "broken",
            "mandatory",
            "share-share",
            "the rule could not check share-share (TypeError: unexpected shape)",
        )
    ]
    assert report.ran == []


def test_known_secrets_from_file_and_plan_are_both_used() -> None:
    """evaluate() extends a setting from the file with the plan's own, never replaces it."""
    result = run()
    # Stand-ins for secrets: each node's name is in that node's two scripts only.
    config = {"no-secrets-in-commands": {"knownSecrets": ["k8s-master-0"]}}
    extra = {"no-secrets-in-commands": {"knownSecrets": ["k8s-workers-1"]}}

    def flagged(*args: Any) -> list[str]:
        report = evaluate(result.ok(), POLICIES, *args)
        return sorted(
            {str(v.resource) for v in report.violations if v.policy == "no-secrets-in-commands"}
        )

    assert flagged(config) == ["mounts-k8s-master-0"]
    assert flagged(None, extra) == ["mounts-k8s-workers-1"]
    assert flagged(config, extra) == ["mounts-k8s-master-0", "mounts-k8s-workers-1"]


# -- configuration ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"no-such-policy": "advisory"},
            "policy config no-such-policy: is not a policy of this pack",
        ),
        (
            {"pinned-images": "sometimes"},
            "policy config pinned-images.enforcementLevel: 'sometimes' is not one of",
        ),
        (
            {"required-oauth-scopes": {"requiredScopes": "openid"}},
            "policy config required-oauth-scopes.requiredScopes: 'openid' is not of type 'array'",
        ),
        (
            {"pinned-images": {"strict": True}},
            "policy config pinned-images.strict: is not a setting of this policy",
        ),
        (
            {"pinned-images": {"enforcementLevel": ["advisory"]}},
            "policy config pinned-images.enforcementLevel: ['advisory'] is not one of",
        ),
    ],
)
def test_bad_policy_config_is_one_line(config: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyConfigError) as err:
        check(run(), config)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(
    ("known", "message"),
    [
        ("PLANTED-known-3f9a", "knownSecrets: is not of type 'array'"),
        (["ok-value-1", {"v": "PLANTED-known-3f9a"}], "knownSecrets[1]: is not of type 'string'"),
        (["ok-value-1", 7, "PLANTED-known-3f9a"], "knownSecrets[1]: is not of type 'string'"),
    ],
)
def test_bad_known_secrets_are_not_shown(known: Any, message: str) -> None:
    """knownSecrets holds secrets: its one line says what is wrong and where, not the value."""
    with pytest.raises(PolicyConfigError) as err:
        check(run(), {"no-secrets-in-commands": {"knownSecrets": known}})
    assert str(err.value).startswith(f"policy config no-secrets-in-commands.{message}")
    assert "PLANTED" not in str(err.value) and "ok-value-1" not in str(err.value)
    assert "7" not in str(err.value)


def test_all_key_sets_every_level() -> None:
    report = check(run(site(**{"storage.reclaimPolicy": "Delete"})), {"all": "advisory"})
    assert report.violations and report.mandatory == []


# -- the engine's view: preview, secrets, the runbook ----------------------------------
def test_which_rules_decide_in_a_first_preview() -> None:
    """In a first preview nothing exists yet; the rules that matter still decide."""
    result = run(preview=True).ok()
    values = result.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert "unknown" in repr(values.value), "the release's values are unknown in preview"
    report = check(result)
    for important in (
        "pinned-images",
        "singleuser-resources",
        "oauth-callback-matches-hub-url",
        "required-oauth-scopes",
        "storage-classes-defined",
        "share-protected",
        "node-port-in-range",
        "storage-reclaim-retain",
        "resources-within-site-limits",
        "user-pods-confined",
        "network-policies-enabled",
        "cloud-metadata-blocked",
        "proxy-service-node-port",
        "user-storage-persistent",
        "no-hub-code-from-extra-values",
        "allow-all-with-groups",
    ):
        assert important in report.ran, important
    # The mount commands embed the share's export path, known only once the share exists:
    # that rule is not run on them, one entry per node, and on nothing else.
    assert sorted((name, why.split(":")[0]) for name, why in report.not_run) == [
        ("no-secrets-in-commands", f"mounts-{node}")
        for node in ("k8s-master-0", "k8s-workers-1", "k8s-workers-2")
    ]
    bad = run(
        site(**{"hub.extraValues": {"singleuser": {"image": {"tag": "latest"}}}}), preview=True
    )
    assert fired(check(bad), "pinned-images"), "decided from the settings ConfigMap"
    code = {"hub": {"extraConfig": {"x": "c.X = 1"}, "networkPolicy": {"enabled": False}}}
    report = check(run(site(**{"hub.extraValues": code}), preview=True))
    assert fired(report, "no-hub-code-from-extra-values")
    assert fired(report, "network-policies-enabled")


def test_unknown_input_skips_a_resource_rule_on_that_resource_only() -> None:
    """As the engine does: a command whose text is known is still checked in a preview."""

    def program() -> None:
        share = openstack.sharedfilesystem.Share("s", share_proto="CEPHFS", size=1)
        connection = command.remote.ConnectionArgs(host="n")
        create = share.export_locations.apply(lambda locations: f"mount {locations}")
        command.remote.Command("unknown", connection=connection, create=create)
        leaky = f"mount -o secret={fake_cephx_key('y')}"
        command.remote.Command("leaky", connection=connection, create=leaky)

    report = evaluate(run_program({}, [], program=program, preview=True), POLICIES)
    assert [v.resource for v in report.violations if v.policy == "no-secrets-in-commands"] == [
        "leaky"
    ]
    assert [(name, why.split(":")[0]) for name, why in report.not_run] == [
        ("no-secrets-in-commands", "unknown")
    ]
    assert "no-secrets-in-commands" not in report.ran


def test_pinned_policy_sdk_private_api() -> None:
    """The plan relies on pulumi_policy.proxy; pinned in policy/requirements.txt."""
    assert version("pulumi-policy") == "1.21.0"
    proxied = unknown_checking_proxy({"a": {"b": UNKNOWN_STRING_VALUE}})
    with pytest.raises(UnknownValueError):
        proxied["a"]["b"]


def test_policies_see_secrets_unwrapped() -> None:
    def program() -> None:
        command.remote.Command(
            "c",
            connection=command.remote.ConnectionArgs(host="n"),
            create=pulumi.Output.secret(f"mount -o secret={fake_cephx_key('y')}"),
        )

    report = check(custom(program))
    assert fired(report, "no-secrets-in-commands"), "a secret Output in a command is still caught"


def test_runbook_values_fail_the_plan(tmp_path: Path) -> None:
    result = plan("runbook", "--stack-file", str(RUNBOOK), "--out", str(tmp_path), "--json")
    assert result.returncode == 1, result.stderr
    violations = json.loads(result.stdout)["violations"]
    found = {(v["policy"], v["level"]) for v in violations}
    assert {
        ("pinned-images", "mandatory"),
        ("oauth-callback-matches-hub-url", "mandatory"),
        ("required-oauth-scopes", "mandatory"),
        ("storage-classes-defined", "mandatory"),
    } <= found
    messages = " ".join(v["message"] for v in violations)
    for expected in (
        "'jupyter/minimal-notebook:latest'",
        "'jupyter/datascience-notebook:latest'",
        "is not https://",
        "is not the hub URL + hub/oauth_callback",
        "lack ['offline_access']",
        "hub.db.pvc.storageClassName names storage class 'local-path'",
        "singleuser.storage.dynamic.storageClass names storage class 'local-path'",
    ):
        assert expected in messages, expected


def test_espsrc_plan_exits_0_with_a_policy_summary(tmp_path: Path) -> None:
    result = plan("espsrc", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    # espsrc keeps chart 3.1.0 until it is adopted: the vulnerable JupyterHub and the old
    # user-scheduler on its Kubernetes 1.30 are advised, besides allow_all and unenforced
    # claim sizes and its unpinned host keys (one advisory per node).
    assert "Policies: 25 run, 0 mandatory violations, 7 advisory" in result.stdout
    for policy in ("allow-all-admits-everyone", "chart-version-vulnerable", "user-scheduler-skew"):
        assert f"[advisory] {policy} (hub-release)" in result.stdout, policy
    assert "[advisory] capacity-enforced (" in result.stdout
    assert result.stdout.count("[advisory] ssh-host-keys-pinned (") == 3


def test_plan_policy_config_file(tmp_path: Path) -> None:
    config = tmp_path / "policy.json"
    config.write_text(
        json.dumps(
            {
                "pinned-images": "advisory",
                "required-oauth-scopes": "advisory",
                "oauth-callback-matches-hub-url": "disabled",
                "storage-classes-defined": "advisory",
            }
        )
    )
    # The chart checks are not policies and no policy config waives them: the runbook's
    # values fail them too (unpinned images, k3s's storage class), so they are left out.
    ok = plan(
        "runbook",
        "--stack-file",
        str(RUNBOOK),
        "--out",
        str(tmp_path / "o"),
        "--policy-config",
        str(config),
        "--no-render",
    )
    assert ok.returncode == 0, ok.stdout
    assert "disabled: oauth-callback-matches-hub-url" in ok.stdout
    config.write_text("{not json")
    bad = plan("espsrc", "--out", str(tmp_path / "p"), "--policy-config", str(config))
    assert bad.returncode == 2 and "is not valid JSON" in bad.stderr


def test_known_secrets_from_the_policy_config_are_kept(tmp_path: Path) -> None:
    """The file's knownSecrets and the plan's own (from --secret) are both looked for."""
    config = tmp_path / "policy.json"
    # Stands for a secret the site knows leaks into command lines; here, the mount path.
    config.write_text(json.dumps({"no-secrets-in-commands": {"knownSecrets": ["/mnt/k8s-shared"]}}))
    args = ("--out", str(tmp_path / "p"), "--policy-config", str(config), "--json")
    result = plan("espsrc", *args, "--secret", "oauthClientSecret=client-secret-1")
    assert result.returncode == 1, result.stderr
    found = [v for v in json.loads(result.stdout)["violations"]]
    assert {v["policy"] for v in found} >= {"no-secrets-in-commands"}
    assert sum(v["policy"] == "no-secrets-in-commands" for v in found) == 6, "create, delete"


def test_extra_values_cannot_carry_secrets() -> None:
    from components.config import ConfigError

    result = run(site(**{"hub.extraValues": {"proxy": {"secretToken": "abc"}}}))
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == (
        "hub.extraValues.proxy.secretToken: carries a secret; secrets come only from secret "
        "config or are generated, never from hub.extraValues"
    )
    assert "abc" not in str(result.error)


def test_adopted_resources_changed_fires_and_stays_quiet() -> None:
    adopted = run(site(**ADOPTED))
    report = check(
        adopted,
        **{"adopted-resources-changed": {"adopted": {"hub-release": "jhub-srcnet/jhub"}}},
    )
    [message] = fired(report, "adopted-resources-changed")
    assert message.startswith("hub-release is adopted (import jhub-srcnet/jhub); besides")
    assert "updates values" in message
    share_only = check(
        run(site(**{"share.existingId": "3f1c2a9e-5b7d-4c8e-9a0f-1b2c3d4e5f60"})),
        **{"adopted-resources-changed": {"adopted": {"share-share": "3f1c2a9e"}}},
    )
    assert fired(share_only, "adopted-resources-changed") == [], "the share is imported as is"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"hub": {"services": {"x": {"apiToken": "t"}}}}, "hub.services.x.apiToken"),
        ({"imagePullSecret": {"password": "p"}}, "imagePullSecret"),
        ({"hub": {"extraEnv": {"JUPYTERHUB_CRYPT_KEY": "k"}}}, "hub.extraEnv.JUPYTERHUB_CRYPT_KEY"),
        ({"hub": {"db": {"url": "postgresql://u:pw@db/x"}}}, "hub.db.url"),
        ({"hub": {"cookieSecret": "c"}}, "hub.cookieSecret"),
        ({"hub": {"extraEnv": {"SECRET_KEY": "k"}}}, "hub.extraEnv.SECRET_KEY"),
        ({"hub": {"extraEnv": {"DJANGO_SECRET_KEY": "k"}}}, "hub.extraEnv.DJANGO_SECRET_KEY"),
        ({"hub": {"services": {"x": {"secretKey": "k"}}}}, "hub.services.x.secretKey"),
        ({"singleuser": {"extraEnv": {"PASSWORD_KEY": "k"}}}, "singleuser.extraEnv.PASSWORD_KEY"),
        ({"hub": {"config": {"CryptKeeper": {"keys": ["k"]}}}}, "hub.config.CryptKeeper.keys"),
        (
            {"hub": {"config": {"GenericOAuthenticator": {"client_secret": "c"}}}},
            "hub.config.GenericOAuthenticator.client_secret",
        ),
        # The list form of environment variables: an entry is judged by its name.
        ({"hub": {"extraEnv": [{"name": "OAUTH_CLIENT_SECRET", "value": "s"}]}}, "hub.extraEnv[0]"),
        (
            {
                "singleuser": {
                    "extraEnv": [
                        {"name": "TZ", "value": "UTC"},
                        {"name": "API_TOKEN", "value": "t"},
                    ]
                }
            },
            "singleuser.extraEnv[1]",
        ),
        # Secrets written into hub.extraConfig's code.
        (
            {"hub": {"extraConfig": {"oauth": 'c.GenericOAuthenticator.client_secret = "s"'}}},
            "hub.extraConfig.oauth",
        ),
        (
            {"hub": {"extraConfig": {"env": 'import os\nos.environ["GITLAB_TOKEN"] = "t"\n'}}},
            "hub.extraConfig.env",
        ),
        ({"hub": {"extraConfig": {"k": 'c.CryptKeeper.keys = ["k1"]'}}}, "hub.extraConfig.k"),
        (
            {"hub": {"extraConfig": {"u": 'c.JupyterHub.services = [{"api_token": "t"}]'}}},
            "hub.extraConfig.u",
        ),
        (
            {"hub": {"extraConfig": {"x": 'os.environ.setdefault("DB_PASSWORD", "p")'}}},
            "hub.extraConfig.x",
        ),
        # Code the hub could not even parse is judged by its text.
        ({"hub": {"extraConfig": {"bad": 'password = "p" +'}}}, "hub.extraConfig.bad"),
    ],
)
def test_extra_values_refuse_every_kind_of_secret(values: dict[str, Any], key: str) -> None:
    from components.config import ConfigError

    result = run(site(**{"hub.extraValues": values}))
    assert isinstance(result.error, ConfigError)
    assert str(result.error).startswith(f"hub.extraValues.{key}: carries a secret")
    assert result.resources == []


@pytest.mark.parametrize(
    "values",
    [
        {"imagePullSecrets": ["regcred"]},
        {"hub": {"existingSecret": "hub-extra"}},
        {"proxy": {"secretSync": {"image": {"name": "x/y", "tag": "1.0"}}}},
        {"hub": {"config": {"GenericOAuthenticator": {"token_url": "https://iam/token"}}}},
        {"hub": {"db": {"url": "sqlite:///jupyterhub.sqlite"}}},
        {"singleuser": {"extraEnv": {"JUPYTER_ENABLE_LAB": "yes"}}},
        # (The list form, as the hub's own environment: singleuser.extraEnv as a list is
        # refused, KubeSpawner takes a map.)
        {"hub": {"extraEnv": [{"name": "TZ", "value": "UTC"}]}},
        {
            "hub": {
                "extraEnv": [
                    {
                        "name": "OAUTH_CLIENT_SECRET",
                        "valueFrom": {"secretKeyRef": {"name": "oauth", "key": "secret"}},
                    }
                ]
            }
        },
        {
            "hub": {
                "extraConfig": {
                    "env": 'import os\nc.GenericOAuthenticator.client_secret = os.environ["S"]',
                    "url": 'c.GenericOAuthenticator.token_url = "https://iam.example.org/token"',
                }
            }
        },
        {
            "singleuser": {
                "extraEnv": {
                    "API": {"valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}
                }
            }
        },
    ],
)
def test_extra_values_accept_names_that_only_mention_secrets(values: dict[str, Any]) -> None:
    run(site(**{"hub.extraValues": values})).ok()


def test_policy_pack_agrees_with_the_program() -> None:
    """The pack runs in its own virtualenv and keeps copies; they must not drift."""
    from components import jupyterhub, validators
    from policy import rules

    assert rules.HUB_URL_ANNOTATION == jupyterhub.HUB_URL_ANNOTATION
    assert rules.RESOURCE_CEILING_ANNOTATION == jupyterhub.RESOURCE_CEILING_ANNOTATION
    assert rules.EXTRA_VALUES_KEY == jupyterhub.EXTRA_VALUES_KEY
    assert rules.SETTINGS_CONFIG_MAP == jupyterhub.SETTINGS_CONFIG_MAP
    assert rules.SETTINGS_KEY == jupyterhub.SETTINGS_KEY
    for value in ("1G", "1Gi", "512Mi", "0.5", "100m", "2T", "500k"):
        assert rules.quantity(value) == validators.quantity_bytes(value), value
    # Not a Kubernetes quantity (its kilo is k), to either of them.
    assert rules.quantity("500K") is None
    with pytest.raises(ValueError):
        validators.quantity_bytes("500K")
    for value in ("1G", "512M", "0.5G", "2T", "64K", ".5G"):
        assert rules.memory_bytes(value) == validators.memory_bytes(value), value


def test_violations_do_not_depend_on_the_order_resources_registered_in() -> None:
    """The nodes' commands register in no fixed order; the report lists the same way."""
    import dataclasses

    result = run().ok()
    flipped = dataclasses.replace(result, resources=list(reversed(result.resources)))
    first, second = check(result), check(flipped)
    assert [v.as_dict() for v in first.violations] == [v.as_dict() for v in second.violations]
    assert [v.resource for v in first.violations if v.policy == "ssh-host-keys-pinned"] == [
        "mounts-k8s-master-0",
        "mounts-k8s-workers-1",
        "mounts-k8s-workers-2",
    ]
