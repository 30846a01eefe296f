"""Bad site config: one line naming the key, the value and what is expected; nothing registered."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.config import ConfigError, load_site_config
from sitectl.mockrun import Secret, run_program
from tests.sites import DELETE, SECRETS, as_config, espsrc, run, site

DNS_LABEL = (
    "is not a DNS label (lowercase letters, digits and '-', 1-63 characters, "
    "starting and ending with a letter or digit)"
)
EVIL = "203.0.113.9"
SCOPED = (
    "is an IPv6 address with a scope id (%...): HAProxy cannot use a scoped address; give the "
    "node's global or unique-local address"
)
AMBIGUOUS = (
    "is an IPv4 address with leading zeros, in hex or in fewer than four parts, which tools "
    "read differently; write four decimal numbers, such as 192.0.2.10"
)
NOT_PUBLIC = (
    "is not a public host name with a domain, such as notebook.example.org (users' browsers, "
    "the TLS certificate and the provider's callback all name it)"
)
NO_ONE_HOST = (
    "is an unspecified, multicast or broadcast address, which names no one host; give the "
    "host's own address"
)
ALLOW_ALL_WITH_GROUPS = (
    "admits every account of the provider, whatever allowedGroups says (oauthenticator checks "
    "allow_all first): remove allowAll to admit only allowedGroups, or remove allowedGroups to "
    "admit everyone"
)
NOT_MEMORY = (
    "is not a memory size KubeSpawner takes: a number and K, M, G or T (powers of 1024), "
    "such as 512M or 2G"
)
HUB_SETS = (
    "is set by the hub itself for every server (Spawner.get_env); a value here would replace "
    "the hub's own; choose another name"
)
LONE_BRACE = (
    "has a '{' or '}' that opens or closes no field, which stops KubeSpawner when it starts a "
    "server; write a literal brace as '{{' or '}}'"
)
KNOWN_FIELDS = (
    "the fields it fills are {userid}, {username}, {unescaped_username}, {servername}, "
    "{unescaped_servername}, {hubnamespace} (a literal brace is '{{')"
)
MARKUP = "contains '<', '>' or '&', which the spawn page would read as HTML; use plain text"
UNPINNED = (
    "is missing; pin the SSH host key (`ssh-keyscan -t ed25519 {host}`, its fingerprint checked "
    "out of band), or accept the risk with nodes.allowUnpinnedHostKeys: true"
)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlZC1ub3QtYS1yZWFsLWtleS0wMDAwMDAw"
HTTPS = "is not an https:// URL with a host name and no spaces or credentials"
SYSTEM_DIR = (
    "is a system directory or one that holds others: mounting the share there would hide what "
    "the node keeps in it; use a directory of its own such as /mnt/k8s-shared"
)
PATH = (
    "is not an absolute path such as /mnt/k8s-shared (parts of letters, digits, '.', '_' and "
    "'-', each starting with a letter, digit or '_'; no trailing '/')"
)

# (key as written in Pulumi.<site>.yaml, bad value, the whole expected message)
BAD: list[tuple[str, Any, str]] = [
    # KubeSpawner formats the values at spawn: fields it fills are taken (test_hub.py); the
    # messages never show the value, which may be a credential.
    (
        "hub.singleuser.extraEnv",
        {"DB_PASSWORD": "hun}ter2"},
        f"hub.singleuser.extraEnv.DB_PASSWORD: {LONE_BRACE}",
    ),
    (
        "hub.singleuser.extraEnv",
        {"SITE_HOME": "/home/{user}"},
        "hub.singleuser.extraEnv.SITE_HOME: uses the template field {user}, which KubeSpawner "
        f"cannot fill when it starts a server; {KNOWN_FIELDS}",
    ),
    (
        "hub.singleuser.extraEnv",
        {"SITE_JSON": '{"a": 1}'},
        'hub.singleuser.extraEnv.SITE_JSON: uses the template field {"a": 1}, which KubeSpawner '
        f"cannot fill when it starts a server; {KNOWN_FIELDS}",
    ),
    (
        "hub.singleuser.extraEnv",
        {"SITE_HOME": "/home/{username!r}"},
        "hub.singleuser.extraEnv.SITE_HOME: uses the template field {username!r}, which "
        f"KubeSpawner cannot fill when it starts a server; {KNOWN_FIELDS}",
    ),
    (
        "hub.singleuser.extraEnv",
        {"JUPYTERHUB_API_TOKEN": "x"},
        f'hub.singleuser.extraEnv: key "JUPYTERHUB_API_TOKEN" {HUB_SETS}',
    ),
    (
        "hub.singleuser.extraEnv",
        {"MEM_LIMIT": "2G"},
        f'hub.singleuser.extraEnv: key "MEM_LIMIT" {HUB_SETS}',
    ),
    (
        "hub.singleuser.storage.capacity",
        "500K",
        'hub.singleuser.storage.capacity: "500K" is not a Kubernetes quantity: its kilo is a '
        "lowercase k (1k = 1000; 1Ki = 1024), and the API server refuses K",
    ),
    (
        "hub.extraValues",
        {"singleuser": {"extraEnv": [{"name": "SITE_NOTE", "value": "x"}]}},
        'hub.extraValues.singleuser.extraEnv: [{"name": "SITE_NOTE", "value": "x"}] is a list, '
        "which KubeSpawner's environment refuses (a map of name to value) and which would "
        "replace hub.singleuser.extraEnv whole; set the variables as a map, in "
        "hub.singleuser.extraEnv",
    ),
    (
        "hub.extraValues",
        {"singleuser": {"extraEnv": {"CPU_LIMIT": "8"}}},
        f'hub.extraValues.singleuser.extraEnv.CPU_LIMIT: "8" {HUB_SETS}',
    ),
    (
        "hub.extraValues",
        {"singleuser": {"extraEnv": {"SITE_NOTE": "a}b"}}},
        f"hub.extraValues.singleuser.extraEnv.SITE_NOTE: {LONE_BRACE}",
    ),
    (
        "hub.extraValues",
        {"hub": {"config": {"kubeSpawner": {"cpu_limit": 2}}}},
        "hub.extraValues.hub.config.kubeSpawner: is not a traitlets section: hub.config sections "
        "are class names, which start with a capital (KubeSpawner, GenericOAuthenticator); "
        "chart 4.x stops the hub on it, 3.x ignores it",
    ),
    # A key of the operator's that holds a dot is named as one key, not as a path: the
    # `c.` of jupyterhub_config.py carried into hub.config.
    (
        "hub.extraValues",
        {"hub": {"config": {"c.KubeSpawner": {"cpu_limit": 2}}}},
        'hub.extraValues.hub.config["c.KubeSpawner"]: is not a traitlets section: hub.config '
        "sections are class names, which start with a capital (KubeSpawner, "
        "GenericOAuthenticator); chart 4.x stops the hub on it, 3.x ignores it",
    ),
    (
        "hub.extraValues",
        {"singleuser": {"extraEnv": {"site.note": "a}b"}}},
        f'hub.extraValues.singleuser.extraEnv["site.note"]: {LONE_BRACE}',
    ),
    (
        "hub.extraValues",
        {"hub": {"config": {"c.GenericOAuthenticator": {"client_secret": "s3"}}}},
        'hub.extraValues.hub.config["c.GenericOAuthenticator"].client_secret: carries a secret; '
        "secrets come only from secret config or are generated, never from hub.extraValues",
    ),
    (
        "hub.profiles[1].displayName",
        "Minimal-Environment",
        'hub.profiles[1].displayName: "Minimal-Environment" gives the same KubeSpawner slug '
        '("minimal-environment") as profiles[0].displayName "Minimal environment", so choosing '
        "it starts profiles[0]; make the titles differ in their letters or digits",
    ),
    (
        "hub.profiles[0].displayName",
        "* * *",
        'hub.profiles[0].displayName: "* * *" has no letter or digit, so KubeSpawner gives the '
        "profile an empty slug and choosing it starts the default profile; put letters or "
        "digits in the title",
    ),
    (
        "hub.oauth.extraAuthorizeParams",
        {"prompt": "consent", "redirect_uri": "https://elsewhere.example.org/cb"},
        'hub.oauth.extraAuthorizeParams: key "redirect_uri" is set by the hub\'s login handler: '
        "it would replace the hub's callback URL, and the provider would send users somewhere "
        "other than the hub",
    ),
    (
        "hub.oauth.extraAuthorizeParams",
        {"code_challenge_method": "plain"},
        'hub.oauth.extraAuthorizeParams: key "code_challenge_method" is set by the hub\'s login '
        "handler: it is PKCE, which the hub sends itself on chart 4.x (hub.oauth.pkce); given "
        "here, the provider would expect a code verifier the hub never sends",
    ),
    (
        "hub.oauth.accessTokenEnvVar",
        "JPY_API_TOKEN",
        f'hub.oauth.accessTokenEnvVar: "JPY_API_TOKEN" {HUB_SETS}',
    ),
    ("hub.nodePort", 80, "hub.nodePort: 80 is not in 30000-32767"),
    ("hub.nodePort", "31090x", 'hub.nodePort: "31090x" is not a whole number'),
    (
        "site.hubHost",
        "Notebook.Example.org",
        'site.hubHost: "Notebook.Example.org" is not a lowercase DNS name '
        "(labels of lowercase letters, digits and '-', separated by '.')",
    ),
    # Names a browser resolves only inside one network: the TLS certificate and the
    # provider's registered callback could not name the hub for its users.
    ("site.hubHost", "localhost", f'site.hubHost: "localhost" {NOT_PUBLIC}'),
    ("site.hubHost", "192.0.2.10", f'site.hubHost: "192.0.2.10" {NOT_PUBLIC}'),
    (
        "hub.oauth.authorizeUrl",
        "http://iam.example.org/authorize",
        f'hub.oauth.authorizeUrl: "http://iam.example.org/authorize" {HTTPS}',
    ),
    (
        "hub.oauth.tokenUrl",
        "https://user:pw@iam.example.org/token",
        f'hub.oauth.tokenUrl: "https://user:pw@iam.example.org/token" {HTTPS}',
    ),
    ("hub.namespace", "JHub", f'hub.namespace: "JHub" {DNS_LABEL}'),
    ("hub.release", "rel;rm -rf /", f'hub.release: "rel;rm -rf /" {DNS_LABEL}'),
    (
        "hub.baseUrl",
        "jhub",
        'hub.baseUrl: "jhub" is not a URL path that starts and ends with '
        "'/', such as / or /jhub/",
    ),
    (
        "site.kubernetesVersion",
        1.3,
        'site.kubernetesVersion: 1.3 is not a string; quote it, e.g. "1.30" (YAML reads an '
        "unquoted 1.30 as the number 1.3)",
    ),
    (
        "site.kubernetesVersion",
        "v1.30",
        'site.kubernetesVersion: "v1.30" is not a Kubernetes version such as "1.30"',
    ),
    (
        "site.kubernetesVersion",
        "1.22",
        'site.kubernetesVersion: "1.22" is older than chart 3.1.0 supports (Kubernetes >= '
        "1.23); upgrade the cluster or choose another hub.chartVersion",
    ),
    (
        "site.kubernetesVersion",
        DELETE,
        "site.kubernetesVersion: is missing; it is required (Kubernetes version the cluster "
        'runs, quoted, e.g. "1.30" (`kubectl version` shows it))',
    ),
    (
        "hub.chartVersion",
        "latest",
        'hub.chartVersion: "latest" is not a chart version such as 3.1.0',
    ),
    (
        "hub.singleuser.image.tag",
        "latest",
        'hub.singleuser.image.tag: "latest" is not a pinned image tag '
        "(a fixed tag such as 2025-11-10; not 'latest')",
    ),
    (
        "hub.profiles[1].image",
        "quay.io/jupyter/datascience-notebook:latest",
        'hub.profiles[1].image: "quay.io/jupyter/datascience-notebook:latest" is not a pinned '
        "image reference such as quay.io/jupyter/datascience-notebook:2025-11-10 "
        "(a fixed tag or @sha256 digest; not 'latest')",
    ),
    (
        "hub.profiles[1].image",
        "jupyter/datascience-notebook",
        'hub.profiles[1].image: "jupyter/datascience-notebook" is not a pinned image reference '
        "such as quay.io/jupyter/datascience-notebook:2025-11-10 "
        "(a fixed tag or @sha256 digest; not 'latest')",
    ),
    (
        "hub.singleuser.memory.guarantee",
        "2G",
        'hub.singleuser.memory.guarantee: "2G" is above the limit 1G',
    ),
    (
        "hub.singleuser.cpu.limit",
        -1,
        "hub.singleuser.cpu.limit: -1 is not a CPU count in (0, 1024], such as 0.5 or 2",
    ),
    (
        "hub.singleuser.memory.limit",
        "lots",
        'hub.singleuser.memory.limit: "lots" ' + NOT_MEMORY,
    ),
    # Kubernetes' binary suffixes stop the hub at start-up (tests/test_hub.py shows it).
    ("hub.singleuser.memory.limit", "1Gi", 'hub.singleuser.memory.limit: "1Gi" ' + NOT_MEMORY),
    (
        "hub.singleuser.memory.guarantee",
        "512Mi",
        'hub.singleuser.memory.guarantee: "512Mi" ' + NOT_MEMORY,
    ),
    ("hub.singleuser.memory.limit", "2000", 'hub.singleuser.memory.limit: "2000" ' + NOT_MEMORY),
    (
        "hub.singleuser.memory.guarantee",
        "1025M",
        'hub.singleuser.memory.guarantee: "1025M" is above the limit 1G',
    ),
    (
        "hub.oauth.userdataTokenMethod",
        "GET",
        "hub.oauth.userdataTokenMethod: \"GET\" is not one of 'header' or 'url'",
    ),
    (
        "hub.oauth.allowAll",
        False,
        "hub.oauth.allowAll: false admits nobody: set allowAll: true or list allowedGroups "
        "(oauthenticator 16 refuses every user otherwise)",
    ),
    (
        "hub.oauth.adminGroups",
        ["admins"],
        "hub.oauth.claimGroupsKey: null is required with allowedGroups or adminGroups "
        "(the claim that lists groups)",
    ),
    (
        "hub.oauth.allowedGroups",
        ["science"],
        f"hub.oauth.allowAll: true {ALLOW_ALL_WITH_GROUPS}",
    ),
    ("hub.oauth.scopes", "openid profile", 'hub.oauth.scopes: "openid profile" is not a list'),
    ("nodes.mountPath", "/mnt/k8s shared", f'nodes.mountPath: "/mnt/k8s shared" {PATH}'),
    ("nodes.mountPath", "/mnt/../etc", f'nodes.mountPath: "/mnt/../etc" {PATH}'),
    ("nodes.mountPath", "/mnt/k8s-shared/", f'nodes.mountPath: "/mnt/k8s-shared/" {PATH}'),
    ("share.sizeGb", True, "share.sizeGb: true is not a number"),
    ("hub.singleuser.cpu.limit", True, "hub.singleuser.cpu.limit: true is not a number"),
    ("nodes.mountPath", "/etc", f'nodes.mountPath: "/etc" {SYSTEM_DIR}'),
    ("nodes.mountPath", "/var/lib/rancher", f'nodes.mountPath: "/var/lib/rancher" {SYSTEM_DIR}'),
    ("nodes.mountPath", "/usr/local/share", f'nodes.mountPath: "/usr/local/share" {SYSTEM_DIR}'),
    ("nodes.mountPath", "/mnt", f'nodes.mountPath: "/mnt" {SYSTEM_DIR}'),
    ("nodes.mountPath", "/home", f'nodes.mountPath: "/home" {SYSTEM_DIR}'),
    # The SSH user's home: the share would hide its ~/.ssh/authorized_keys, and the next
    # deploy could no longer log in to any node.
    (
        "nodes.mountPath",
        "/home/ubuntu",
        'nodes.mountPath: "/home/ubuntu" is the home of nodes.sshUser ubuntu: the share would '
        "hide its ~/.ssh, and the deploy could no longer log in; use a directory of its own "
        "such as /mnt/k8s-shared",
    ),
    (
        "nodes.hosts[1].address",
        "192.168.250.195; reboot",
        'nodes.hosts[1].address: "192.168.250.195; reboot" is not an IP address or a lowercase '
        "DNS name",
    ),
    # A scope id took anything after the '%': here a second HAProxy server line.
    (
        "nodes.hosts[1].address",
        f"fe80::1%eth0\n    server evil {EVIL}:80 check",
        f'nodes.hosts[1].address: "fe80::1%eth0\\n    server evil {EVIL}:80 check" {SCOPED}',
    ),
    ("nodes.hosts[0].address", "fe80::1%eth0", f'nodes.hosts[0].address: "fe80::1%eth0" {SCOPED}'),
    # Not an IP address to Python, so it passed as a DNS name; HAProxy and getaddrinfo read
    # it as 192.168.250.8 and 127.0.0.1, another node than the one checked for duplicates.
    (
        "nodes.hosts[1].address",
        "192.168.250.010",
        f'nodes.hosts[1].address: "192.168.250.010" {AMBIGUOUS}',
    ),
    ("nodes.hosts[1].address", "127.1", f'nodes.hosts[1].address: "127.1" {AMBIGUOUS}'),
    # 0.0.0.0 and :: connect to the deployer's own machine: the scripts would run there.
    (
        "nodes.hosts[1].address",
        "0.0.0.0",  # noqa: S104 - a refused value, never bound
        f'nodes.hosts[1].address: "0.0.0.0" {NO_ONE_HOST}',
    ),
    ("nodes.hosts[1].address", "::", f'nodes.hosts[1].address: "::" {NO_ONE_HOST}'),
    (
        "nodes.hosts[1].address",
        "::ffff:0.0.0.0",
        f'nodes.hosts[1].address: "::ffff:0.0.0.0" {NO_ONE_HOST}',
    ),
    ("nodes.bastion.host", "224.0.0.1", f'nodes.bastion.host: "224.0.0.1" {NO_ONE_HOST}'),
    (
        "nodes.hosts[0].address",
        "255.255.255.255",
        f'nodes.hosts[0].address: "255.255.255.255" {NO_ONE_HOST}',
    ),
    (
        "hub.oauth.tokenUrl",
        "https://0.0.0.0/token",
        f'hub.oauth.tokenUrl: "https://0.0.0.0/token" {NO_ONE_HOST}',
    ),
    ("nodes.hosts[1].address", "0x7f000001", f'nodes.hosts[1].address: "0x7f000001" {AMBIGUOUS}'),
    (
        "nodes.hosts[1].address",
        "a\x00b",
        'nodes.hosts[1].address: "a\\u0000b" is not an IP address or a lowercase DNS name',
    ),
    (
        "nodes.hosts",
        [{"name": "a", "address": "2001:db8::1"}, {"name": "b", "address": "2001:DB8:0::1"}],
        'nodes.hosts[1].address: "2001:DB8:0::1" is used by another node',
    ),
    (
        "nodes.hosts",
        [{"name": "a", "address": "192.0.2.1"}, {"name": "b", "address": "::ffff:192.0.2.1"}],
        'nodes.hosts[1].address: "::ffff:192.0.2.1" is used by another node',
    ),
    ("nodes.bastion.host", 'fe80::1%a "b', f'nodes.bastion.host: "fe80::1%a \\"b" {SCOPED}'),
    ("nodes.hosts[0].name", "K8S_master", f'nodes.hosts[0].name: "K8S_master" {DNS_LABEL}'),
    (
        "nodes.hosts[2].name",
        "k8s-master-0",
        'nodes.hosts[2].name: "k8s-master-0" is used by another node',
    ),
    (
        "nodes.sshUser",
        "root;id",
        "nodes.sshUser: \"root;id\" is not a Unix user name (lowercase letters, digits, '_' and "
        "'-', starting with a letter or '_', at most 32 characters)",
    ),
    ("nodes.hosts", [], "nodes.hosts: [] has too few items; expected at least 1"),
    (
        "nodes.allowUnpinnedHostKeys",
        DELETE,
        f"nodes.hosts[0].hostKey: {UNPINNED.format(host='192.168.250.83')}",
    ),
    (
        "nodes.allowUnpinnedHostKeys",
        False,
        f"nodes.hosts[0].hostKey: {UNPINNED.format(host='192.168.250.83')}",
    ),
    (
        "nodes.hosts[0].hostKey",
        "garbage",
        'nodes.hosts[0].hostKey: "garbage" is not an SSH public host key such as '
        "'ssh-ed25519 AAAAC3...' (key type and base64 only, no host name or comment)",
    ),
    (
        "share.cephUser",
        "$(id)",
        "share.cephUser: \"$(id)\" is not a cephx user id (letters, digits, '_', '.' and "
        "'-', starting with a letter or digit, at most 64 characters, not 'admin')",
    ),
    ("share.sizeGb", 0, "share.sizeGb: 0 is not in 1-1000000"),
    # YAML's .nan and 1e308: pydantic's own words ("is not valid: Input should be a finite
    # number") said nothing the operator wrote.
    ("share.sizeGb", float("nan"), "share.sizeGb: nan is not a whole number"),
    ("hub.nodePort", float("inf"), "hub.nodePort: inf is not a whole number"),
    ("nodes.sshPort", 1e308, "nodes.sshPort: 1e+308 is not a whole number of a usable size"),
    (
        "share.existingId",
        "abc",
        'share.existingId: "abc" is not an OpenStack id (a lowercase UUID)',
    ),
    (
        "storage.reclaimPolicy",
        "Recycle",
        "storage.reclaimPolicy: \"Recycle\" is not one of 'Retain' or 'Delete'",
    ),
    (
        "storage.className",
        "local-path",
        'storage.className: "local-path" is the class k3s manages and rewrites; '
        "choose another name",
    ),
    (
        "share.sizeGB",
        20480,
        "share.sizeGB: is not a known setting; did you mean sizeGb? expected one of "
        "accessRuleId, cephUser, existingId, name, shareType, sizeGb",
    ),
    (
        "hub.oauth.clientId",
        DELETE,
        "hub.oauth.clientId: is missing; it is required "
        "(the hub's client id at the identity provider)",
    ),
    (
        "hub.logo",
        "../../etc/passwd",
        'hub.logo: "../../etc/passwd" is not a file inside this repository',
    ),
    ("hub.logo", "Pulumi.yaml", 'hub.logo: "Pulumi.yaml" is not a PNG file'),
    # Paths the file system refuses outright (too long, a NUL byte): the same line.
    ("hub.logo", "a" * 300, f'hub.logo: "{"a" * 76}... is not a file inside this repository'),
    ("hub.logo", "a\x00b", 'hub.logo: "a\\u0000b" is not a file inside this repository'),
    (
        "hub.profiles[0].displayName",
        "<script>alert(1)</script>",
        'hub.profiles[0].displayName: "<script>alert(1)</script>" ' + MARKUP,
    ),
    (
        "hub.profiles[1].description",
        'R &amp; Julia <img src=x onerror="alert(1)">',
        'hub.profiles[1].description: "R &amp; Julia <img src=x onerror=\\"alert(1)\\">" ' + MARKUP,
    ),
    ("hub.profiles[1].displayName", "a > b", f'hub.profiles[1].displayName: "a > b" {MARKUP}'),
    (
        "hub.profiles[1].memory",
        {"limit": "1G", "guarantee": "2G"},
        'hub.profiles[1].memory.guarantee: "2G" is above the limit 1G',
    ),
    (
        "hub.profiles[1].cpu",
        {"limit": 0, "guarantee": 0.5},
        "hub.profiles[1].cpu.limit: 0 is not a CPU count in (0, 1024], such as 0.5 or 2",
    ),
    (
        "hub.profiles[1].default",
        True,
        "hub.profiles[1].default: true is a second default profile",
    ),
    (
        "hub.singleuser.extraEnv",
        {"BAD NAME": "x"},
        'hub.singleuser.extraEnv: key "BAD NAME" is not an environment variable name '
        "(letters, digits and '_')",
    ),
    ("nodes", "all", 'nodes: "all" is not a map of settings'),
    # Valid names that fail `pulumi up` half way, after the share and the mounts: Helm
    # refuses a release name over 53 characters; a namespace the cluster has already, or
    # one used twice, cannot be created.
    (
        "hub.release",
        "r" * 54,
        f'hub.release: "{"r" * 54}" is longer than the 53 characters Helm allows a release name',
    ),
    (
        "hub.namespace",
        "kube-system",
        'hub.namespace: "kube-system" is a namespace every cluster has; choose one of the hub\'s '
        "own (or adopt the release that runs there: hub.adoptRelease)",
    ),
    (
        "storage.namespace",
        "default",
        'storage.namespace: "default" is a namespace every cluster has; the program creates '
        "the provisioner's namespace: choose one of its own",
    ),
    (
        "storage.namespace",
        "jhub-srcnet",
        'storage.namespace: "jhub-srcnet" is hub.namespace too; the provisioner needs a '
        "namespace of its own",
    ),
    # The storage provisioner chowns every new volume to these ids (in a shell script):
    # refused with the settings, before the share and the node mounts are registered.
    (
        "hub.extraValues",
        {"singleuser": {"uid": "$(id)"}},
        'hub.extraValues.singleuser.uid: "$(id)" is not a numeric uid/gid (0 to 2147483647)',
    ),
    (
        "hub.extraValues",
        {"hub": {"podSecurityContext": {"fsGroup": True}}},
        "hub.extraValues.hub.podSecurityContext.fsGroup: true is not a numeric uid/gid "
        "(0 to 2147483647)",
    ),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_bad_config_is_one_line_and_registers_nothing(key: str, value: Any, message: str) -> None:
    result = run(site(**{key: value}))
    assert isinstance(result.error, ConfigError), f"{key}={value!r}: {result.error!r}"
    assert str(result.error) == message
    assert "\n" not in str(result.error)
    assert result.resources == [], (
        f"{key}={value!r} registered {[r.name for r in result.resources]}"
    )


def test_allow_all_cannot_be_narrowed_by_groups() -> None:
    """A new user copies espsrc (allowAll: true) and adds groups to restrict access: refused,
    with the line saying which key to remove; removing allowAll then plans."""
    groups = {"hub.oauth.allowedGroups": ["science"], "hub.oauth.claimGroupsKey": "groups"}
    refused = run(site(**groups))
    assert isinstance(refused.error, ConfigError)
    assert str(refused.error) == f"hub.oauth.allowAll: true {ALLOW_ALL_WITH_GROUPS}"
    assert refused.resources == []
    for allow_all in (DELETE, False):
        run(site(**groups, **{"hub.oauth.allowAll": allow_all})).ok()
    # Admins by group, everyone admitted: no restriction is implied, so it stays allowed.
    run(site(**{"hub.oauth.adminGroups": ["admins"], "hub.oauth.claimGroupsKey": "groups"})).ok()


def test_every_host_key_is_required_unless_the_site_accepts_the_risk() -> None:
    pinned = {f"nodes.hosts[{i}].hostKey": HOST_KEY for i in range(3)}
    strict = {**pinned, "nodes.allowUnpinnedHostKeys": DELETE}
    run(site(**strict)).ok()
    # The last node, and then a bastion, without a key: each named.
    for missing, key, host in (
        (
            {k: v for k, v in strict.items() if k != "nodes.hosts[2].hostKey"},
            "hosts[2]",
            "192.168.250.214",
        ),
        ({**strict, "nodes.bastion.host": "jump.example.org"}, "bastion", "jump.example.org"),
    ):
        result = run(site(**missing))
        assert isinstance(result.error, ConfigError)
        assert str(result.error) == f"nodes.{key}.hostKey: {UNPINNED.format(host=host)}"
        assert result.resources == []
    bastion = {"nodes.bastion.host": "jump.example.org", "nodes.bastion.hostKey": HOST_KEY}
    run(site(**strict, **bastion)).ok()


def test_unknown_top_level_key_is_named() -> None:
    settings = espsrc()
    settings["hubb"] = {"namespace": "x"}
    result = run(settings)
    assert isinstance(result.error, ConfigError)
    assert str(result.error).startswith("hubb: is not a known setting; did you mean hub?")
    assert result.resources == []


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("a b", 'hub["a b"]'),
        ("a\nb", 'hub["a\\nb"]'),
        # Invisible, or reordering the rest of the line on a terminal: shown raw, the line
        # read "hub.nodePort: is not a known setting; did you mean nodePort?".
        ("nodePort\u200b", 'hub["nodePort\\u200b"]'),
        ("node\u202etroP", 'hub["node\\u202etroP"]'),
        ("nöde", "hub.nöde"),
    ],
)
def test_an_odd_unknown_key_is_shown_so_it_can_be_told_apart(key: str, shown: str) -> None:
    settings = espsrc()
    settings["hub"][key] = 1
    result = run(settings)
    assert isinstance(result.error, ConfigError)
    assert str(result.error).startswith(f"{shown}: is not a known setting;"), str(result.error)
    assert result.resources == []


@pytest.mark.parametrize(
    ("where", "key", "line"),
    [
        # `pulumi config set hub.nodePort 31091` without --path makes one key of the whole
        # name; the line said "hub.nodePort: is not a known setting", which it is.
        (
            (),
            "hub.nodePort",
            '["hub.nodePort"]: is one key with dots in its name, not hub.nodePort; '
            "`pulumi config set --path hub.nodePort VALUE` sets hub.nodePort",
        ),
        (
            ("hub",),
            "oauth.clientId",
            'hub["oauth.clientId"]: is one key with dots in its name, not hub.oauth.clientId; '
            "`pulumi config set --path hub.oauth.clientId VALUE` sets hub.oauth.clientId",
        ),
    ],
)
def test_a_dotted_key_is_told_from_the_setting_it_spells(
    where: tuple[str, ...], key: str, line: str
) -> None:
    settings = espsrc()
    node = settings
    for part in where:
        node = node[part]
    node[key] = "x"
    result = run(settings)
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == line
    assert result.resources == []


@pytest.mark.parametrize("namespace", ["jupyterhub-plaform", "Jupyterhub-Platform"])
def test_a_misspelt_namespace_is_named(namespace: str) -> None:
    """The program reads only jupyterhub-platform:*; the line was "hub: is missing"."""
    settings = espsrc()
    hub = settings.pop("hub")
    config, secret_keys = as_config(settings)
    config[f"{namespace}:hub"] = json.dumps(hub)
    result = run_program(config, secret_keys, stack="espsrc")
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == (
        f"{namespace}:hub: is not read: its namespace is not jupyterhub-platform; "
        "did you mean jupyterhub-platform:hub?"
    )
    assert result.resources == []


@pytest.mark.parametrize("missing", ["oauthClientSecret", "sshPrivateKey"])
def test_missing_secret_says_how_to_set_it(missing: str) -> None:
    secrets = {k: v for k, v in SECRETS.items() if k != missing}
    result = run(espsrc(), secrets)
    assert isinstance(result.error, ConfigError)
    assert str(result.error).startswith(
        f"{missing}: is missing; set it with `pulumi config set --secret {missing}"
    )
    assert result.resources == []


def test_secret_in_plain_text_is_refused() -> None:
    from sitectl.mockrun import run_program
    from tests.sites import as_config

    config, secret_keys = as_config(espsrc())
    result = run_program(config, [k for k in secret_keys if not k.endswith("sshPrivateKey")])
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == (
        "sshPrivateKey: is stored in plain text; store it encrypted with "
        "`pulumi config set --secret sshPrivateKey ...`"
    )
    assert result.resources == []


def test_an_encrypted_plain_setting_is_refused() -> None:
    """`pulumi config set --secret --path hub.oauth.clientId ...` makes all of hub a secret
    setting, decrypted for the program, which would write it into plain values."""
    config, secret_keys = as_config(espsrc())
    result = run_program(config, [*secret_keys, "jupyterhub-platform:hub"])
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == (
        "hub: is encrypted (secure:), and only oauthClientSecret and sshPrivateKey are "
        "secrets: set it in plain text"
    )
    assert result.resources == []


def _ssh_keygen(tmp_path: Path, *options: str) -> str:
    path = tmp_path / "key"
    subprocess.run(
        ["ssh-keygen", "-q", *options, "-C", "", "-f", str(path)], check=True, timeout=60
    )
    return path.read_text()


SET_FROM_FILE = "set it from the key file: `pulumi config set --secret sshPrivateKey < key-file`"
PASSPHRASE = (
    "sshPrivateKey: is protected by a passphrase, which no node step can type; give the deploy "
    "a key of its own without one (`ssh-keygen -t ed25519 -N ''`)"
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-t", "ed25519", "-N", ""], None),
        (["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", ""], None),
        (["-t", "ecdsa", "-m", "PKCS8", "-N", ""], None),
        (["-t", "ed25519", "-N", "a passphrase"], PASSPHRASE),
        (["-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "a passphrase"], PASSPHRASE),
        (["-t", "ecdsa", "-m", "PKCS8", "-N", "a passphrase"], PASSPHRASE),
    ],
)
def test_the_ssh_key_is_a_private_key_without_a_passphrase(
    tmp_path: Path, options: list[str], message: str | None
) -> None:
    key = _ssh_keygen(tmp_path, *options)
    result = run(espsrc(), {**SECRETS, "sshPrivateKey": key})
    if message is None:
        result.ok()
        return
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == message
    assert result.resources == []


# How a key file often reaches the stack besides `< key-file`: saved on Windows (CRLF),
# pasted with blanks at line ends, with a note after the block or a title before it. The
# program's SSH client (Go's PEM reader) logs in with each of these.
KEY_FILE_FORMS = {
    "crlf": lambda key: key.replace("\n", "\r\n"),
    "blanks at line ends": lambda key: key.replace("\n", " \t\n"),
    "comment after": lambda key: key + "# deploy key of espsrc, 2026\n",
    "title before": lambda key: "espsrc deploy key:\n" + key,
}


@pytest.mark.parametrize("form", sorted(KEY_FILE_FORMS))
@pytest.mark.parametrize(
    "options",
    [
        ["-t", "ed25519"],
        ["-t", "rsa", "-b", "2048", "-m", "PEM"],
        ["-t", "ecdsa", "-m", "PEM"],
        ["-t", "ecdsa", "-m", "PKCS8"],
    ],
    ids=["openssh", "pem-rsa", "pem-ec", "pkcs8"],
)
def test_a_key_file_in_the_forms_ssh_clients_read_is_taken(
    tmp_path: Path, options: list[str], form: str
) -> None:
    key = KEY_FILE_FORMS[form](_ssh_keygen(tmp_path, *options, "-N", ""))
    run(espsrc(), {**SECRETS, "sshPrivateKey": key}).ok()


def test_only_the_first_block_is_read_as_the_key(tmp_path: Path) -> None:
    """Go's PEM reader takes the first block: a certificate before the key is no key, and
    an END line of another type does not close it."""
    key = _ssh_keygen(tmp_path, "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "")
    not_a_key = "is not an SSH private key (a -----BEGIN ... PRIVATE KEY----- block)"
    certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    for value in (certificate + key, key.replace("END RSA PRIVATE", "END PRIVATE")):
        result = run(espsrc(), {**SECRETS, "sshPrivateKey": value})
        assert isinstance(result.error, ConfigError)
        assert str(result.error) == f"sshPrivateKey: {not_a_key}; {SET_FROM_FILE}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # `pulumi config set --secret sshPrivateKey ~/.ssh/key`: the path, not the key.
        ("/home/op/.ssh/espsrc_ed25519", f"is a file path, not the key; {SET_FROM_FILE}"),
        ("pub", f"is a public key, not the private key; {SET_FROM_FILE}"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n",  # cut short when pasted
            f"is not an SSH private key (a -----BEGIN ... PRIVATE KEY----- block); {SET_FROM_FILE}",
        ),
    ],
)
def test_what_is_pasted_for_the_ssh_key_by_mistake_is_named(
    tmp_path: Path, value: str, message: str
) -> None:
    if value == "pub":
        _ssh_keygen(tmp_path, "-t", "ed25519", "-N", "")
        value = (tmp_path / "key.pub").read_text()
    result = run(espsrc(), {**SECRETS, "sshPrivateKey": value})
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == f"sshPrivateKey: {message}"
    assert result.resources == []


def test_every_problem_gets_its_line_in_the_order_of_the_stack_file() -> None:
    settings = espsrc()
    oauth = settings["hub"]["oauth"]
    oauth["tokenUrl"] = "http://iam.example.org/token"
    oauth["clientID"] = oauth.pop("clientId")
    # hub.namespace indented one level too deep, under hub.oauth.
    oauth["namespace"] = settings["hub"].pop("namespace")
    settings["hub"]["nodePort"] = 8080
    settings["share"]["sizeGb"] = "lots"
    result = run(settings)
    assert isinstance(result.error, ConfigError)
    assert str(result.error).splitlines() == [
        "hub.nodePort: 8080 is not in 30000-32767",
        f'hub.oauth.tokenUrl: "http://iam.example.org/token" {HTTPS}',
        "hub.oauth.clientID: is not a known setting; did you mean clientId? "
        "(clientId is required: the hub's client id at the identity provider)",
        "hub.oauth.namespace: is not a setting of hub.oauth; hub.namespace is "
        "(is it indented one level too deep?)",
        'share.sizeGb: "lots" is not a whole number',
    ]
    assert result.resources == []


def test_a_misspelt_optional_key_is_still_named_with_its_neighbours() -> None:
    settings = espsrc()
    settings["hub"]["oauth"]["scopez"] = ["openid"]
    result = run(settings)
    assert isinstance(result.error, ConfigError)
    assert str(result.error).startswith(
        "hub.oauth.scopez: is not a known setting; did you mean scopes? expected one of "
    )


def test_unknown_top_level_keys_are_listed_with_the_other_problems() -> None:
    settings = espsrc()
    settings["hubb"] = {"namespace": "x"}
    settings["share"]["sizeGb"] = 0
    result = run(settings)
    assert isinstance(result.error, ConfigError)
    lines = str(result.error).splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("share.sizeGb: 0 ")
    assert lines[1].startswith("hubb: is not a known setting; did you mean hub?")


def test_config_error_is_a_run_error_so_pulumi_prints_no_traceback() -> None:
    import pulumi

    assert issubclass(ConfigError, pulumi.RunError)


def test_espsrc_is_valid() -> None:
    result = run()
    assert result.error is None, result.error


def test_memory_is_measured_as_kubespawner_measures_it() -> None:
    """KubeSpawner's G is 1024M (powers of 1024): this guarantee equals the limit."""
    result = run(site(**{"hub.singleuser.memory": {"limit": "1G", "guarantee": "1024M"}}))
    assert result.error is None, result.error
    assert result.ok().outputs


@pytest.mark.parametrize("path", ["/mnt/k8s-shared", "/cephfs", "/data/shared", "/home/shared"])
def test_mount_paths_of_their_own_are_accepted(path: str) -> None:
    result = run(site(**{"nodes.mountPath": path}))
    assert result.error is None, result.error


def test_secret_keys_are_read_as_secrets() -> None:
    """The SiteSecrets Outputs are secret from the start, not only where they are used."""

    def program() -> None:
        _, secrets = load_site_config()
        pulumi.export("client", secrets.oauth_client_secret)
        pulumi.export("key", secrets.ssh_private_key)

    config, keys = as_config(espsrc())
    result = run_program(config, keys, program=program).ok()
    assert result.outputs == {
        "client": Secret(SECRETS["oauthClientSecret"]),
        "key": Secret(SECRETS["sshPrivateKey"]),
    }


def test_the_private_sdk_config_api_the_program_reads_is_there() -> None:
    """load_site_config reads raw keys through pulumi.runtime.config (not public API):
    a Pulumi SDK release that moves it fails here, not in a site's preview."""
    from pulumi.runtime import config as runtime_config

    assert callable(runtime_config.get_config_env)
    assert callable(runtime_config.is_config_secret)
    assert isinstance(runtime_config.CONFIG.get(), dict)


def test_the_access_token_variable_is_not_also_in_extra_env() -> None:
    """The spawn hook replaces that variable (tests/test_hub.py shows it at 4.4.0)."""
    changes = {
        "hub.chartVersion": "4.4.0",
        "hub.oauth.passAccessTokenToServer": True,
        "hub.singleuser.extraEnv.ACCESS_TOKEN": "site-value",
    }
    result = run(site(**changes))
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == (
        'hub.oauth.accessTokenEnvVar: "ACCESS_TOKEN" is also set in hub.singleuser.extraEnv; '
        "the access token replaces that value at each spawn: choose another name for one of them"
    )
    assert result.resources == []
