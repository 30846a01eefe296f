"""Formats for values that reach a shell, a URL, a Kubernetes name or a YAML file.

Each validator accepts a value or raises ``ValueError`` whose text completes the sentence
``<key>: <value> ...``, so the site config can report one line naming the key, the bad value
and what is expected. Formats are strict on purpose: node names, addresses, paths and user
names end up in commands run as root on every node.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import socket
import unicodedata
from urllib.parse import urlsplit

# RFC 1123 label, as Kubernetes uses it for namespaces, release and node names.
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/-]*")
_PATH_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_CEPH_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_OPENSTACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?")
# Kubernetes resource.Quantity, the subset people write for memory and disk. Its decimal
# kilo is a lowercase k: the API server refuses 1K (JupyterHub's memory sizes take K).
_QUANTITY = re.compile(r"([0-9]+(\.[0-9]+)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?")
_IMAGE_NAME = re.compile(
    r"[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9]+([._-][a-z0-9]+)*)*(:[0-9]{1,5})?"
    r"(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)+|[a-z0-9]+([._-]{1,2}[a-z0-9]+)*"
)
_IMAGE_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_IMAGE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_CLAIM = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
_HOST_KEY = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]{16,8192}={0,2}"
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _full(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None


def dns_label(value: str) -> str:
    if not _full(_DNS_LABEL, value):
        raise ValueError(
            "is not a DNS label (lowercase letters, digits and '-', 1-63 characters, "
            "starting and ending with a letter or digit)"
        )
    return value


def dns_name(value: str) -> str:
    """A DNS name of one or more labels (a host name or a Kubernetes subdomain name)."""
    labels = value.split(".")
    if len(value) > 253 or not all(_full(_DNS_LABEL, label) for label in labels):
        raise ValueError(
            "is not a lowercase DNS name (labels of lowercase letters, digits and '-', "
            "separated by '.')"
        )
    return value


def public_host_name(value: str) -> str:
    """The name users reach the hub by: the TLS certificate, the provider's registered
    callback and every browser name it, so a name of one label (`localhost`, `notebook`)
    or an IP address, which a browser resolves only inside one network, is refused."""
    dns_name(value)
    labels = value.split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        raise ValueError(
            "is not a public host name with a domain, such as notebook.example.org (users' "
            "browsers, the TLS certificate and the provider's callback all name it)"
        )
    return value


def host_address(value: str) -> str:
    """An IPv4 or IPv6 address, or a DNS name; no IPv6 scope (`%eth0`).

    Python's `ip_address` takes anything after a `%` as the scope id, newlines and
    quotes included, and the address is written into the HAProxy `server` lines. A scope
    is refused outright rather than narrowed: HAProxy (2.6 checked with `haproxy -c`)
    cannot resolve a scoped address, so no site can use one.
    """
    if "%" in value:
        raise ValueError(
            "is an IPv6 address with a scope id (%...): HAProxy cannot use a scoped address; "
            "give the node's global or unique-local address"
        )
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        try:
            socket.inet_aton(value)
        except (OSError, ValueError):  # ValueError: a NUL character
            pass
        else:
            # 192.168.0.010, 127.1, 0x7f000001: no IP address to Python, so a DNS name to
            # this check, but an address to getaddrinfo and HAProxy (192.168.0.8, 127.0.0.1),
            # and not the one compared with the other nodes'.
            raise ValueError(
                "is an IPv4 address with leading zeros, in hex or in fewer than four parts, "
                "which tools read differently; write four decimal numbers, such as 192.0.2.10"
            ) from None
        try:
            dns_name(value)
        except ValueError:
            raise ValueError("is not an IP address or a lowercase DNS name") from None
        return value
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # No one host answers at these: 0.0.0.0 and :: reach the deployer's own machine (Linux
    # connects them to itself), so the node scripts would run there; a multicast or the
    # broadcast address reaches no single node.
    if ip.is_unspecified or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(
            "is an unspecified, multicast or broadcast address, which names no one host; "
            "give the host's own address"
        )
    return value


def same_host(value: str) -> str:
    """The form two addresses of one host share: an IP address compressed, an IPv4-mapped
    IPv6 address as its IPv4 address; a DNS name as it is (already lowercase)."""
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return value
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.compressed


def https_url(value: str) -> str:
    bad = ValueError("is not an https:// URL with a host name and no spaces or credentials")
    if any(ch.isspace() or not ch.isprintable() for ch in value) or not value.isascii():
        raise bad
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise bad
    if parts.fragment:
        raise bad
    host_address(parts.hostname)
    return value


def abs_path(value: str) -> str:
    """An absolute path with no surprises for a shell or for fstab.

    Every part starts with a letter, digit or '_' (no '-' an option parser would take, no
    hidden or '.'/'..' parts), the rule the node scripts check again on the node.
    """
    if (
        len(value) > 255
        or _SAFE_PATH.fullmatch(value) is None
        or value.endswith("/")
        or not all(_PATH_PART.fullmatch(p) for p in value.split("/")[1:])
    ):
        raise ValueError(
            "is not an absolute path such as /mnt/k8s-shared (parts of letters, digits, "
            "'.', '_' and '-', each starting with a letter, digit or '_'; no trailing '/')"
        )
    return value


# Mounting the share over these would hide what the node runs on (its configuration, its
# programs, k3s's and the kubelet's state under /var/lib): refused, and anything under them.
_SYSTEM_TREES = frozenset({"bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32",
                           "proc", "root", "run", "sbin", "sys", "usr", "var"})  # fmt: skip
# Standard directories that hold other things: a mount point goes below them.
_SHARED_PARENTS = frozenset({"/home", "/media", "/mnt", "/opt", "/snap", "/srv", "/tmp"})  # noqa: S108


def mount_point(value: str) -> str:
    """A path of the share's own, such as /mnt/k8s-shared: not a system directory."""
    abs_path(value)
    if value.split("/")[1] in _SYSTEM_TREES or value in _SHARED_PARENTS:
        raise ValueError(
            "is a system directory or one that holds others: mounting the share there would "
            "hide what the node keeps in it; use a directory of its own such as /mnt/k8s-shared"
        )
    if value.split("/")[1] == "tmp":
        raise ValueError(
            "is under /tmp, which is cleaned at boot and writable by every user; use a "
            "directory of its own such as /mnt/k8s-shared"
        )
    return value


def url_path(value: str) -> str:
    """A URL path that starts and ends with '/', as the chart's baseUrl."""
    bad = ValueError("is not a URL path that starts and ends with '/', such as / or /jhub/")
    if not value.startswith("/") or not value.endswith("/"):
        raise bad
    if value != "/":
        try:
            abs_path(value[:-1])
        except ValueError:
            raise bad from None
    return value


def app_path(value: str) -> str:
    """A path inside the user's server, such as /lab."""
    if value != "/":
        try:
            abs_path(value)
        except ValueError:
            raise ValueError("is not a URL path such as /lab or /tree") from None
    return value


def unix_user(value: str) -> str:
    if not _full(_UNIX_USER, value):
        raise ValueError(
            "is not a Unix user name (lowercase letters, digits, '_' and '-', "
            "starting with a letter or '_', at most 32 characters)"
        )
    return value


def ceph_user(value: str) -> str:
    if not _full(_CEPH_USER, value) or value == "admin":
        raise ValueError(
            "is not a cephx user id (letters, digits, '_', '.' and '-', starting with a letter "
            "or digit, at most 64 characters, not 'admin')"
        )
    return value


def openstack_name(value: str) -> str:
    if not _full(_OPENSTACK_NAME, value):
        raise ValueError(
            "is not a name of letters, digits, '_', '.' and '-' starting with a letter or digit"
        )
    return value


def uuid(value: str) -> str:
    if not _full(_UUID, value):
        raise ValueError("is not an OpenStack id (a lowercase UUID)")
    return value


def semver(value: str) -> str:
    if not _full(_SEMVER, value):
        raise ValueError("is not a chart version such as 3.1.0")
    return value


_QUANTITY_FACTORS = {"": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                     "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30,
                     "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}  # fmt: skip


def quantity_bytes(value: str) -> float:
    """The number a Kubernetes quantity stands for (1G = 1e9, 1Gi = 2**30)."""
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise ValueError("is not a Kubernetes quantity")
    return float(match.group(1)) * _QUANTITY_FACTORS[match.group(3) or ""]


def quantity(value: str) -> str:
    if value.endswith("K") and _full(_QUANTITY, value[:-1] + "k"):
        raise ValueError(
            "is not a Kubernetes quantity: its kilo is a lowercase k (1k = 1000; 1Ki = 1024), "
            "and the API server refuses K"
        )
    if not _full(_QUANTITY, value) or quantity_bytes(value) <= 0:
        raise ValueError("is not a positive Kubernetes quantity such as 1G, 512Mi or 1Gi")
    return value


# Memory goes to KubeSpawner's mem_limit and mem_guarantee (JupyterHub's ByteSpecification):
# a number followed by K, M, G or T, each a power of 1024. Kubernetes' own suffixes (Mi, Gi)
# would stop the hub at start-up ("not a valid memory specification"), so they are refused.
_MEMORY = re.compile(r"([0-9]+(\.[0-9]+)?|\.[0-9]+)([KMGT])")
_MEMORY_FACTORS = {"K": 2.0**10, "M": 2.0**20, "G": 2.0**30, "T": 2.0**40}


def memory_bytes(value: str) -> float:
    """The bytes KubeSpawner reads in a memory size (1G = 2**30)."""
    match = _MEMORY.fullmatch(value)
    if match is None:
        raise ValueError("is not a memory size")
    return float(match.group(1)) * _MEMORY_FACTORS[match.group(3)]


def memory_size(value: str) -> str:
    if not _full(_MEMORY, value) or memory_bytes(value) <= 0:
        raise ValueError(
            "is not a memory size KubeSpawner takes: a number and K, M, G or T (powers of "
            "1024), such as 512M or 2G"
        )
    return value


def image_name(value: str) -> str:
    if len(value) > 255 or not _full(_IMAGE_NAME, value):
        raise ValueError(
            "is not an image name such as quay.io/jupyter/minimal-notebook (no tag here)"
        )
    return value


def image_tag(value: str) -> str:
    # The chart joins name and tag with ':', so a digest belongs in a profile's image instead.
    if value == "latest" or not _full(_IMAGE_TAG, value):
        raise ValueError("is not a pinned image tag (a fixed tag such as 2025-11-10; not 'latest')")
    return value


def image_ref(value: str) -> str:
    """A full image reference with a pinned tag or digest: name:tag or name@sha256:..."""
    expected = (
        "is not a pinned image reference such as "
        "quay.io/jupyter/datascience-notebook:2025-11-10 (a fixed tag or @sha256 digest; "
        "not 'latest')"
    )
    if "@" in value:
        name, _, digest = value.partition("@")
        ok = _full(_IMAGE_DIGEST, digest)
    else:
        name, sep, tag = value.rpartition(":")
        ok = bool(sep) and "/" not in tag and tag != "latest" and _full(_IMAGE_TAG, tag)
    if not ok or len(name) > 255 or not _full(_IMAGE_NAME, name):
        raise ValueError(expected)
    return value


def env_name(value: str) -> str:
    if not _full(_ENV_NAME, value):
        raise ValueError("is not an environment variable name (letters, digits and '_')")
    return value


def claim_name(value: str) -> str:
    if not _full(_CLAIM, value):
        raise ValueError("is not a claim name such as preferred_username or groups")
    return value


def scope(value: str) -> str:
    if not _full(_SCOPE, value):
        raise ValueError("is not an OAuth scope (printable characters, no spaces or quotes)")
    return value


def one_line(value: str) -> str:
    """Free text shown to users: printable, one line, bounded."""
    if not value or len(value) > 200 or not value.isprintable():
        raise ValueError("is not one line of printable text (1-200 characters)")
    return value


def client_id(value: str) -> str:
    if not value or len(value) > 255 or not all("\x21" <= ch <= "\x7e" for ch in value):
        raise ValueError("is not an OAuth client id (printable ASCII, no spaces)")
    return value


def ssh_host_key(value: str) -> str:
    if not _full(_HOST_KEY, value):
        raise ValueError(
            "is not an SSH public host key such as 'ssh-ed25519 AAAAC3...' "
            "(key type and base64 only, no host name or comment)"
        )
    return value


# A private key's block as Go's encoding/pem (the program's SSH client) finds it: from the
# first BEGIN line to the END line of the same type, whatever text comes before or after.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9]+ |)PRIVATE KEY-----\n(.+?)\n-----END \1PRIVATE KEY-----$", re.S | re.M
)
_OPENSSH_MAGIC = b"openssh-key-v1\0"


def _openssh_cipher(body: str) -> str | None:
    """The cipher an OpenSSH-format key is encrypted with ('none' if it is not), or None
    when the body is not one the parser can read (nothing more is checked then)."""
    try:
        data = base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        return None
    if not data.startswith(_OPENSSH_MAGIC) or len(data) < len(_OPENSSH_MAGIC) + 4:
        return None
    start = len(_OPENSSH_MAGIC) + 4
    size = int.from_bytes(data[start - 4 : start], "big")
    return data[start : start + size].decode("ascii", "replace")


class NotAPrivateKeyError(ValueError):
    """The value is no private key at all (a path, a public key, something else), as
    opposed to a key that cannot be used; callers add how to set it in their context."""


def private_key_block(value: str) -> str:
    """The SSH key the node steps log in with, as OpenSSH reads it from a file: the block
    alone, with LF line ends and no blanks at line ends. ValueError for a key with a
    passphrase (every node step would ask for it, with no one to type it), and
    NotAPrivateKeyError for what an operator pastes by mistake: `pulumi config set
    --secret sshPrivateKey ~/.ssh/key` stores the path, `< key.pub` the public key. The
    messages never quote the value.

    Go's PEM reader, which the program's node steps log in with, takes CRLF line ends,
    blanks at line ends and text around the block (a comment line after it); OpenSSH takes
    none of these in its own key format, so verify writes the key out like this.
    """
    lines = value.replace("\r\n", "\n").split("\n")
    text = "\n".join(line.rstrip(" \t") for line in lines).strip()
    # Only the first block counts, as for Go: a certificate before the key is no key.
    begin = re.search(r"^-----BEGIN ", text, re.M)
    found = _PRIVATE_KEY.match(text, begin.start()) if begin else None
    if found is None:
        if "\n" not in text and text.startswith(("/", "~", "./")):
            raise NotAPrivateKeyError("is a file path, not the key")
        if text.startswith(("ssh-", "ecdsa-", "sk-")):
            raise NotAPrivateKeyError("is a public key, not the private key")
        raise NotAPrivateKeyError(
            "is not an SSH private key (a -----BEGIN ... PRIVATE KEY----- block)"
        )
    body = found.group(2)
    cipher = _openssh_cipher(body) if found.group(1) == "OPENSSH " else None
    # PEM marks it in the headers (Proc-Type: 4,ENCRYPTED), PKCS#8 in the label, OpenSSH
    # by the cipher name inside the body.
    if found.group(1) == "ENCRYPTED " or "ENCRYPTED" in body or cipher not in (None, "none"):
        raise ValueError(
            "is protected by a passphrase, which no node step can type; give the deploy a key "
            "of its own without one (`ssh-keygen -t ed25519 -N ''`)"
        )
    return found.group(0) + "\n"


def profile_slug(title: str) -> str:
    """The slug KubeSpawner gives a profile without one: python-slugify's default
    (KubeSpawner 6.1.0 to 7.0.0 call `slugify(display_name)`), for the text this model
    can judge without a transliteration table.

    python-slugify decomposes the title (NFKD), transliterates what is not ASCII
    (text-unidecode), lowercases, drops commas between digits and turns every run of
    other characters into one '-'. For an ASCII title (after decomposition) this is that
    slug exactly. A character that stays outside ASCII is kept as itself: the hub turns it
    into letters or nothing, which this cannot tell, so such titles are only ever found to
    clash or to be empty where the hub would find so too.
    """
    text = unicodedata.normalize("NFKD", title.replace("'", "-"))
    # Combining marks (the accent of a decomposed é) transliterate to nothing.
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = re.sub(r"(?<=[0-9]),(?=[0-9])", "", text)
    text = re.sub(r"[\x00-\x2c\x2e-\x2f\x3a-\x60\x7b-\x7f]+", "-", text)
    return re.sub(r"-{2,}", "-", text).strip("-")
