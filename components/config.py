"""The site configuration: one typed model of everything a `Pulumi.<site>.yaml` sets.

`load_site_config()` reads the `jupyterhub-platform:*` keys of the current stack once,
validates them as a whole before any resource is registered, and returns a frozen
`SiteConfig` plus the secret config values as Pulumi secret Outputs. Bad input becomes a
`ConfigError` with one line per problem, all of them, in the stack file's order: the key
as written in the stack file, the bad value, and what is expected. `ConfigError` is a
`pulumi.RunError`, which the Pulumi language host prints without a traceback.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_origin

import pulumi
from pulumi.runtime.config import CONFIG as _RUNTIME_CONFIG
from pulumi.runtime.config import get_config_env, is_config_secret
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from components import validators as v
from policy.chart_versions import (
    FIRST_REFRESHING_CHART,
    SUPPORTED_CHARTS,
    chart_major,
    kubernetes_minor,
)

PROJECT = "jupyterhub-platform"
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_CHART_VERSION = "4.4.0"
DEFAULT_ACCESS_TOKEN_ENV = "ACCESS_TOKEN"
DEFAULT_AUTH_REFRESH_AGE = 300
# Every image of the Jupyter docker stacks is published under the same date tags; one date
# for all of a site's images keeps the profiles consistent (see docs/adding-a-site.md, "Images").
DEFAULT_IMAGE_DATE = "2025-11-10"
# What the new-site template (sitectl/templates/Pulumi.site.yaml) puts where a value must
# be filled in; the plan lists every key still holding it.
TEMPLATE_PLACEHOLDER = "<fill in>"
REQUIRED_SCOPES = ("openid", "profile", "email", "offline_access")
# k3s ships (and rewrites on restart) a local-path provisioner under these names.
K3S_RESERVED_CLASS_NAMES = frozenset({"local-path"})
# Namespaces every cluster has: the program cannot create them (and must not own them).
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
# Helm 3 refuses a longer release name (chartutil.ValidateReleaseName).
HELM_RELEASE_NAME_MAX = 53


class ConfigError(pulumi.RunError):
    """Invalid site configuration; the message has one line per problem."""


HIDDEN: Any = object()
"""A KeyedError value that must not be shown (it may be a secret)."""


class KeyedError(ValueError):
    """A cross-field error that names the offending key relative to the model it came from:
    dotted (hosts[0].hostKey), or as its parts when a part is the operator's own key,
    which may hold a dot or a bracket itself (a chart value's key)."""

    def __init__(self, key: str | tuple[int | str, ...], value: Any, expected: str) -> None:
        super().__init__(expected)
        self.key = key
        self.value = value
        self.expected = expected


DnsLabel = Annotated[str, AfterValidator(v.dns_label)]
DnsName = Annotated[str, AfterValidator(v.dns_name)]
HostAddress = Annotated[str, AfterValidator(v.host_address)]
HttpsUrl = Annotated[str, AfterValidator(v.https_url)]
AbsPath = Annotated[str, AfterValidator(v.abs_path)]
MountPoint = Annotated[str, AfterValidator(v.mount_point)]
UrlPath = Annotated[str, AfterValidator(v.url_path)]
AppPath = Annotated[str, AfterValidator(v.app_path)]
UnixUser = Annotated[str, AfterValidator(v.unix_user)]
CephUser = Annotated[str, AfterValidator(v.ceph_user)]
OpenStackName = Annotated[str, AfterValidator(v.openstack_name)]
OpenStackId = Annotated[str, AfterValidator(v.uuid)]
SemVer = Annotated[str, AfterValidator(v.semver)]
Quantity = Annotated[str, AfterValidator(v.quantity)]
MemorySize = Annotated[str, AfterValidator(v.memory_size)]
ImageName = Annotated[str, AfterValidator(v.image_name)]
ImageTag = Annotated[str, AfterValidator(v.image_tag)]
ImageRef = Annotated[str, AfterValidator(v.image_ref)]
EnvName = Annotated[str, AfterValidator(v.env_name)]
ClaimName = Annotated[str, AfterValidator(v.claim_name)]
Scope = Annotated[str, AfterValidator(v.scope)]
OneLine = Annotated[str, AfterValidator(v.one_line)]
ClientId = Annotated[str, AfterValidator(v.client_id)]
HostKey = Annotated[str, AfterValidator(v.ssh_host_key)]

# What the hub itself puts in every user server's environment: the names Spawner.get_env
# (JupyterHub 4.0.2, 4.1.6, 5.5.0) and KubeSpawner.get_env (6.1.0, 6.2.0, 7.0.0) set,
# the versions' union. KubeSpawner applies the configured environment after them, so a
# value given here would replace the hub's own: the server's API token, its OAuth client,
# its URLs, the limits it reports.
HUB_SET_ENV = frozenset({
    "JPY_API_TOKEN", "JUPYTERHUB_ACTIVITY_URL", "JUPYTERHUB_ADMIN_ACCESS",
    "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_BASE_URL",
    "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED",
    "JUPYTERHUB_COOKIE_OPTIONS", "JUPYTERHUB_DEBUG", "JUPYTERHUB_DEFAULT_URL",
    "JUPYTERHUB_DISABLE_USER_CONFIG", "JUPYTERHUB_HOST", "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
    "JUPYTERHUB_OAUTH_CALLBACK_URL", "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES",
    "JUPYTERHUB_OAUTH_SCOPES", "JUPYTERHUB_PUBLIC_HUB_URL", "JUPYTERHUB_PUBLIC_URL",
    "JUPYTERHUB_ROOT_DIR", "JUPYTERHUB_SERVER_NAME", "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA",
    "JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_USER", "JUPYTER_IMAGE", "JUPYTER_IMAGE_SPEC",
    "MEM_LIMIT", "MEM_GUARANTEE", "CPU_LIMIT", "CPU_GUARANTEE",
})  # fmt: skip


def _not_set_by_the_hub(value: str) -> str:
    if value in HUB_SET_ENV:
        raise ValueError(
            "is set by the hub itself for every server (Spawner.get_env); a value here would "
            "replace the hub's own; choose another name"
        )
    return value


# The fields KubeSpawner fills in environment values at every supported chart version
# (3.1.0 to 4.4.0): {username} is the escaped name (its escaping changed with 4.x's slug
# scheme), {unescaped_username} the name as the provider gave it.
TEMPLATE_FIELDS = (
    "userid",
    "username",
    "unescaped_username",
    "servername",
    "unescaped_servername",
    "hubnamespace",
)


def _kubespawner_template(value: str) -> str:
    # KubeSpawner formats every configured environment value with str.format when it
    # starts a server: a lone brace stops the spawn, an unknown field fails with KeyError.
    # The fields it fills at every chart version are a feature (HOME_DIR=/home/{username}).
    # The message never shows the value: a variable of this map may hold a credential.
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError:
        raise KeyedError(
            (),
            HIDDEN,
            "has a '{' or '}' that opens or closes no field, which stops KubeSpawner when it "
            "starts a server; write a literal brace as '{{' or '}}'",
        ) from None
    fields = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            raise KeyedError(
                (),
                HIDDEN,
                f"uses the template field {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}, which KubeSpawner cannot fill when it starts "
                f"a server; the fields it fills are {fields} (a literal brace is '{{{{')",
            )
    return value


# Parameters the login handler (oauthenticator's OAuthLoginHandler, 16.1.0 to 17.4.0) puts
# in the authorization request itself. Tornado's authorize_redirect lays
# extra_authorize_params over redirect_uri, client_id and response_type, so a value here
# replaces the hub's; the handler then sets state, scope and, with PKCE, the code
# challenge over whatever was given.
LOGIN_SETS_PARAMS = {
    "redirect_uri": "would replace the hub's callback URL, and the provider would send users "
    "somewhere other than the hub",
    "client_id": "would replace hub.oauth.clientId, and the code would be issued to another "
    "client than the one the hub redeems it as",
    "response_type": "would replace the code flow (response_type=code) the hub's callback expects",
    "scope": "is replaced by hub.oauth.scopes; list scopes there",
    "state": "is replaced by the hub's own state, which its callback checks",
    "code_challenge": "is PKCE, which the hub sends itself on chart 4.x (hub.oauth.pkce); "
    "given here, the provider would expect a code verifier the hub never sends",
    "code_challenge_method": "is PKCE, which the hub sends itself on chart 4.x (hub.oauth.pkce); "
    "given here, the provider would expect a code verifier the hub never sends",
}


def _not_set_by_the_login(value: str) -> str:
    if value in LOGIN_SETS_PARAMS:
        raise ValueError(f"is set by the hub's login handler: it {LOGIN_SETS_PARAMS[value]}")
    return value


AuthorizeParam = Annotated[str, AfterValidator(v.claim_name), AfterValidator(_not_set_by_the_login)]

# An environment variable of users' servers: its name, and its value as KubeSpawner reads it.
ServerEnvName = Annotated[str, AfterValidator(v.env_name), AfterValidator(_not_set_by_the_hub)]
ServerEnvValue = Annotated[str, AfterValidator(v.one_line), AfterValidator(_kubespawner_template)]


def _vault_key(value: str) -> str:
    if (
        re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}", value) is None
        or ".." in value.split("/")
        or "//" in value
    ):
        raise ValueError("is not a secret path such as jupyterhub/espsrc/oauth")
    return value


def _api_version(value: str) -> str:
    if re.fullmatch(r"external-secrets\.io/v1(beta1|alpha1)?", value) is None:
        raise ValueError("is not an External Secrets API version such as external-secrets.io/v1")
    return value


def _duration(value: str) -> str:
    if re.fullmatch(r"([0-9]+(h|m|s))+", value) is None:
        raise ValueError("is not a duration such as 1h or 15m")
    return value


VaultKey = Annotated[str, AfterValidator(_vault_key)]
ApiVersion = Annotated[str, AfterValidator(_api_version)]
Duration = Annotated[str, AfterValidator(_duration)]


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads true as 1: `sizeGb: true` would ask for a 1 GB share.
    if isinstance(value, bool):
        raise ValueError("is not a number")
    return value


NotBool = BeforeValidator(_not_bool)


def _in_range(low: int, high: int) -> AfterValidator:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"is not in {low}-{high}")
        return value

    return AfterValidator(check)


NodePort = Annotated[int, NotBool, _in_range(30000, 32767)]
TcpPort = Annotated[int, NotBool, _in_range(1, 65535)]
ShareSizeGb = Annotated[int, NotBool, _in_range(1, 1_000_000)]
TimeoutSeconds = Annotated[int, NotBool, _in_range(60, 7200)]


def _positive_cpu(value: float) -> float:
    if not 0 < value <= 1024:
        raise ValueError("is not a CPU count in (0, 1024], such as 0.5 or 2")
    return value


Cpu = Annotated[float, NotBool, AfterValidator(_positive_cpu)]


class TokenMethod(str, Enum):
    """How the hub sends the access token to the userdata endpoint (oauthenticator 16)."""

    header = "header"
    url = "url"


class MountClient(str, Enum):
    """How nodes mount CephFS: the kernel client, or ceph-fuse (quotas on old kernels)."""

    kernel = "kernel"
    fuse = "fuse"


class SecretSource(str, Enum):
    """Where the OAuth client secret comes from."""

    pulumi = "pulumi"
    vault = "vault"


class StoreKind(str, Enum):
    secret_store = "SecretStore"
    cluster_secret_store = "ClusterSecretStore"


class ReclaimPolicy(str, Enum):
    retain = "Retain"
    delete = "Delete"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=False,
    )


def _quoted_version(value: Any) -> Any:
    # YAML reads an unquoted 1.30 as the number 1.3: say so rather than "not a string".
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(
            'is not a string; quote it, e.g. "1.30" (YAML reads an unquoted 1.30 as the number 1.3)'
        )
    return value


def _kubernetes_version(value: str) -> str:
    if re.fullmatch(r"1\.(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,3}))?", value) is None:
        raise ValueError('is not a Kubernetes version such as "1.30"')
    return value


KubernetesVersion = Annotated[
    str, BeforeValidator(_quoted_version), AfterValidator(_kubernetes_version)
]


class SiteSettings(_Model):
    name: DnsLabel = Field(description="short name of the site, e.g. espsrc")
    hub_host: Annotated[str, AfterValidator(v.public_host_name)] = Field(
        description="public host name of the hub, served by the site's HAProxy"
    )
    kubernetes_version: KubernetesVersion = Field(
        description='Kubernetes version the cluster runs, quoted, e.g. "1.30" '
        "(`kubectl version` shows it)"
    )


class OAuthSettings(_Model):
    login_service: OneLine = Field(description="name on the login button: 'Sign in with ...'")
    client_id: ClientId = Field(description="the hub's client id at the identity provider")
    authorize_url: HttpsUrl = Field(description="the provider's authorization endpoint")
    token_url: HttpsUrl = Field(description="the provider's token endpoint")
    userdata_url: HttpsUrl = Field(description="the provider's userinfo endpoint")
    issuer: HttpsUrl | None = Field(
        default=None,
        description="the provider's issuer URL (its discovery document is at "
        "<issuer>/.well-known/openid-configuration); `sitectl verify` checks against it",
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: list(REQUIRED_SCOPES), min_length=1, description="scopes requested"
    )
    username_claim: ClaimName = Field(
        default="preferred_username", description="userinfo claim that becomes the user name"
    )
    userdata_token_method: TokenMethod = Field(
        default=TokenMethod.header, description="how the token reaches the userinfo endpoint"
    )
    userdata_params: dict[ClaimName, OneLine] = Field(
        default_factory=dict, description="extra query parameters for the userinfo request"
    )
    extra_authorize_params: dict[AuthorizeParam, OneLine] = Field(
        default_factory=dict,
        description="extra authorization request parameters, e.g. prompt: consent (not those "
        "the hub sets: redirect_uri, client_id, response_type, scope, state, code_challenge*)",
    )
    allow_all: bool = Field(default=False, description="admit every account of the provider")
    allowed_groups: list[OneLine] = Field(default_factory=list, description="groups admitted")
    admin_groups: list[OneLine] = Field(default_factory=list, description="groups made admins")
    claim_groups_key: ClaimName | None = Field(
        default=None, description="userinfo claim that lists a user's groups"
    )
    enable_auth_state: bool = Field(default=True, description="keep the user's tokens in the hub")
    # The keys below exist for chart 4.x (oauthenticator 17) only; None means "not set",
    # so a 3.x site that sets one, even to its default, is told the chart ignores it.
    pkce: bool | None = Field(
        default=None,
        description="send a PKCE challenge (chart 4.x; default true); false for a provider "
        "whose client refuses it",
    )
    auth_refresh_age_seconds: Annotated[int, NotBool, _in_range(5, 86400)] | None = Field(
        default=None,
        description="age after which the hub checks, and refreshes, a user's access token "
        f"(chart 4.x with enableAuthState and offline_access; default {DEFAULT_AUTH_REFRESH_AGE})",
    )
    pass_access_token_to_server: bool | None = Field(
        default=None,
        description="give each spawned server the user's access token at spawn time (chart 4.x)",
    )
    access_token_env_var: ServerEnvName | None = Field(
        default=None,
        description="environment variable of the server that holds the access token "
        f"(default {DEFAULT_ACCESS_TOKEN_ENV})",
    )

    @property
    def refreshes_tokens(self) -> bool:
        """The hub holds a refresh token it can use: auth state kept, offline_access asked."""
        return self.enable_auth_state and "offline_access" in self.scopes

    @model_validator(mode="after")
    def _someone_can_log_in(self) -> OAuthSettings:
        if self.allow_all and self.allowed_groups:
            # oauthenticator admits on allow_all before it reads any group: the groups
            # would restrict nothing.
            raise KeyedError(
                "allowAll",
                True,
                "admits every account of the provider, whatever allowedGroups says "
                "(oauthenticator checks allow_all first): remove allowAll to admit only "
                "allowedGroups, or remove allowedGroups to admit everyone",
            )
        if not self.allow_all and not self.allowed_groups:
            raise KeyedError(
                "allowAll",
                self.allow_all,
                "admits nobody: set allowAll: true or list allowedGroups "
                "(oauthenticator 16 refuses every user otherwise)",
            )
        if (self.allowed_groups or self.admin_groups) and not self.claim_groups_key:
            raise KeyedError(
                "claimGroupsKey",
                None,
                "is required with allowedGroups or adminGroups (the claim that lists groups)",
            )
        if len(set(self.scopes)) != len(self.scopes):
            raise KeyedError("scopes", self.scopes, "lists a scope twice")
        return self


class CpuSettings(_Model):
    limit: Cpu = Field(description="CPUs a user server may use")
    guarantee: Cpu = Field(description="CPUs reserved for a user server")

    @model_validator(mode="after")
    def _guarantee_within_limit(self) -> CpuSettings:
        if self.guarantee > self.limit:
            raise KeyedError("guarantee", self.guarantee, f"is above the limit {self.limit}")
        return self


class MemorySettings(_Model):
    limit: MemorySize = Field(description="memory a user server may use, e.g. 2G")
    guarantee: MemorySize = Field(description="memory reserved for a user server, e.g. 512M")

    @model_validator(mode="after")
    def _guarantee_within_limit(self) -> MemorySettings:
        if v.memory_bytes(self.guarantee) > v.memory_bytes(self.limit):
            raise KeyedError("guarantee", self.guarantee, f"is above the limit {self.limit}")
        return self


class UserStorageSettings(_Model):
    capacity: Quantity = Field(default="1Gi", description="size of each user's volume")


class ImageSettings(_Model):
    name: ImageName = Field(
        default="quay.io/jupyter/minimal-notebook", description="image without its tag"
    )
    tag: ImageTag = Field(default=DEFAULT_IMAGE_DATE, description="pinned tag, never latest")


class SingleuserSettings(_Model):
    cpu: CpuSettings = Field(description="CPU limit and guarantee")
    memory: MemorySettings = Field(description="memory limit and guarantee")
    storage: UserStorageSettings = Field(
        default_factory=UserStorageSettings, description="each user's home volume"
    )
    image: ImageSettings = Field(
        default_factory=ImageSettings, description="image of servers started without a profile"
    )
    default_url: AppPath = Field(default="/lab", description="page a user lands on")
    extra_env: dict[ServerEnvName, ServerEnvValue] = Field(
        default_factory=dict,
        description="environment of every user server; a value may use {username}, "
        "{unescaped_username}, {userid}, {servername}, {unescaped_servername} or "
        "{hubnamespace}, filled by KubeSpawner at spawn ('{{' is a literal brace); not the "
        "variables the hub sets itself, such as JUPYTERHUB_API_TOKEN or MEM_LIMIT",
    )


def _no_markup(value: str) -> str:
    # KubeSpawner's spawn form (form.html) renders these without escaping (its Jinja
    # environment has no autoescape): '<' and '&' would be markup on the page. Refused
    # rather than escaped, so the text reads the same whether or not a later KubeSpawner
    # escapes it.
    if any(ch in value for ch in "<>&"):
        raise ValueError(
            "contains '<', '>' or '&', which the spawn page would read as HTML; use plain text"
        )
    return value


ProfileText = Annotated[str, AfterValidator(v.one_line), AfterValidator(_no_markup)]


class Profile(_Model):
    display_name: ProfileText = Field(
        description="title shown in the profile list; its letters and digits tell it from the "
        "other profiles' (KubeSpawner's slug)"
    )
    description: ProfileText | None = Field(default=None, description="line under the title")
    default: bool = Field(default=False, description="preselected profile")
    image: ImageRef | None = Field(default=None, description="image instead of the default")
    cpu: CpuSettings | None = Field(
        default=None, description="CPU limit and guarantee instead of singleuser.cpu"
    )
    memory: MemorySettings | None = Field(
        default=None, description="memory limit and guarantee instead of singleuser.memory"
    )


# Chart values that carry secrets. Secrets come only from secret config (or are generated),
# never from hub.extraValues, which is plain text in the stack file (and, minus what is
# refused here, copied into the settings ConfigMap).
_SECRET_VALUE_PATHS = (
    ("proxy", "secretToken"),
    ("CryptKeeper", "keys"),
)
_SECRET_WORDS = frozenset({"password", "passwd", "token", "secret", "credential", "credentials"})
_KEY_KINDS = frozenset({"private", "api", "crypt", "access", "ssh"})
# A key that ends in one of these names or points at a secret, it does not hold one:
# token_url, secretName, existingSecret, secretSync.
_NAME_WORDS = frozenset({"url", "name", "names", "file", "path", "ref", "sync", "method",
                         "key", "claim", "existing", "env"})  # fmt: skip
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|://[^/@\s:]+:[^/@\s]+@"  # key blocks, URL passwords
)


def _key_holds_secret(key: str) -> bool:
    """Does a chart key's name say its value is a secret? (secretToken, client_secret,
    apiToken, cookieSecret, password, JUPYTERHUB_CRYPT_KEY, private_key; not token_url)"""
    words = [w.lower() for w in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", key)]
    if not words:
        return False
    if any(a in _KEY_KINDS and b == "key" for a, b in itertools.pairwise(words)):
        return True
    # SECRET_KEY, secretKey, PASSWORD_KEY: the key itself, not a name of one (secretKeyRef,
    # which ends in "ref", names one).
    if len(words) >= 2 and words[-1] == "key" and words[-2] in _SECRET_WORDS:
        return True
    last = words[-1]
    secret_words = [w for w in words if w in _SECRET_WORDS]
    if not secret_words or words[0] == "existing":
        return False
    return last in _SECRET_WORDS or last not in _NAME_WORDS


def _secret_in_values(value: Any, path: tuple[int | str, ...] = ()) -> tuple[int | str, ...] | None:
    """The path of the first secret-bearing key or value in chart values, or None."""
    if isinstance(value, dict):
        for key, inner in value.items():
            here = (*path, str(key))
            if any(here[-len(p) :] == p for p in _SECRET_VALUE_PATHS) or _key_holds_secret(
                str(key)
            ):
                return here
            found = _secret_in_values(inner, here)
            if found:
                return found
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            here = (*path, i)
            # The list form of environment variables ([{name: X_TOKEN, value: ...}]): the
            # entry's name says what its value is.
            if (
                isinstance(inner, dict)
                and "value" in inner
                and isinstance(inner.get("name"), str)
                and _key_holds_secret(inner["name"])
            ):
                return here
            found = _secret_in_values(inner, here)
            if found:
                return found
    elif isinstance(value, str):
        if _SECRET_VALUE.search(value):
            return path
        # hub.extraConfig is Python the hub runs: a secret set there as a literal.
        if "extraConfig" in path and _secret_in_code(value):
            return path
    return None


# Where code that does not parse assigns a string to a name: NAME = "..., "NAME": '...
_CODE_ASSIGNMENT = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)["']?\s*[:=]\s*[rRbBuUfF]{0,2}["']""")


def _code_name(node: ast.AST | None) -> str | None:
    """The name a target or key stands for: x, c.X.client_secret, env["API_TOKEN"], "k"."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        # CryptKeeper.keys holds the auth state keys, though "keys" says nothing.
        if node.attr == "keys" and _code_name(node.value) == "CryptKeeper":
            return "crypt_key"
        return node.attr
    if isinstance(node, ast.Subscript):
        return _code_name(node.slice)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_literal(node: ast.AST) -> bool:
    """A value written out in the code (a string, or a collection or sum of them)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str | bytes)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return any(_is_literal(e) for e in node.elts)
    if isinstance(node, ast.BinOp):
        return _is_literal(node.left) or _is_literal(node.right)
    return False


def _secret_in_code(code: str) -> bool:
    """Does Python code set a secret-named thing to a literal? (c.X.client_secret = "...",
    os.environ["API_TOKEN"] = "...", {"password": "..."}, f(api_token="..."),
    os.environ.setdefault("X_SECRET", "..."))"""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return any(_key_holds_secret(m.group(1)) for m in _CODE_ASSIGNMENT.finditer(code))
    for node in ast.walk(tree):
        pairs: list[tuple[str | None, ast.AST]] = []
        if isinstance(node, ast.Assign):
            pairs += [(_code_name(target), node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.AugAssign | ast.NamedExpr):
            if node.value is not None:
                pairs.append((_code_name(node.target), node.value))
        elif isinstance(node, ast.Dict):
            pairs += [(_code_name(k), v) for k, v in zip(node.keys, node.values, strict=True)]
        elif isinstance(node, ast.Call):
            pairs += [(kw.arg, kw.value) for kw in node.keywords]
            pairs += [(_code_name(a), b) for a, b in itertools.pairwise(node.args)]
        if any(name and _key_holds_secret(name) and _is_literal(v) for name, v in pairs):
            return True
    return False


# The jupyterhub chart's defaults for the ids its pods run as (values.yaml of 3.x and 4.x:
# singleuser.uid, singleuser.fsGid, hub.containerSecurityContext.runAsUser,
# hub.podSecurityContext.fsGroup); a site may change them through hub.extraValues. The
# storage provisioner's setup script chowns every new volume to them.
CHART_POD_IDS = {
    ("singleuser", "uid"): 1000,
    ("singleuser", "fsGid"): 100,
    ("hub", "containerSecurityContext", "runAsUser"): 1000,
    ("hub", "podSecurityContext", "fsGroup"): 1000,
}


def pod_id(extra_values: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The id hub.extraValues sets at `path`, or the chart's default."""
    value: Any = extra_values
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return CHART_POD_IDS[path] if value is None else value


def is_pod_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


class HubSettings(_Model):
    namespace: DnsLabel = Field(description="Kubernetes namespace of the hub")
    release: DnsLabel = Field(description="Helm release name (at most 53 characters)")
    chart_version: SemVer = Field(
        default=DEFAULT_CHART_VERSION,
        description="jupyterhub chart: " + ", ".join(SUPPORTED_CHARTS),
    )
    allow_untested_chart: bool = Field(
        default=False,
        description="accept a chart version this project was not tested with",
    )
    adopted_chart_version: SemVer | None = Field(
        default=None,
        description="chart version the adopted release runs (`helm list -n <namespace>`)",
    )
    node_port: NodePort = Field(description="NodePort the site's HAProxy balances over")
    base_url: UrlPath = Field(default="/", description="URL prefix of the hub")
    timeout_seconds: TimeoutSeconds = Field(
        default=1800,
        description="how long an install or upgrade may take (the image pre-puller waits "
        "until every node has pulled every profile's image)",
    )
    oauth: OAuthSettings = Field(description="login through the site's identity provider")
    singleuser: SingleuserSettings = Field(description="every user's server: limits, image")
    profiles: list[Profile] = Field(default_factory=list, description="server options")
    logo: str | None = Field(default=None, description="PNG file in this repository")
    adopt_release: bool = Field(
        default=False,
        description="import the existing release namespace/release (and its namespace)",
    )
    db_storage_class: DnsName | None = Field(
        default=None,
        description="storage class of the hub database volume; an adopted release keeps the "
        "class its volume already has (immutable); default: storage.className",
    )
    extra_values: dict[str, Any] = Field(
        default_factory=dict,
        description="chart values merged over the generated ones (maps merge, lists replace)",
    )

    @field_validator("extra_values")
    @classmethod
    def _no_secrets_in_extra_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        found = _secret_in_values(value)
        if found:
            raise KeyedError(
                found,
                HIDDEN,
                "carries a secret; secrets come only from secret config or are generated, "
                "never from hub.extraValues",
            )
        return value

    @field_validator("extra_values")
    @classmethod
    def _extra_values_the_hub_can_read(cls, value: dict[str, Any]) -> dict[str, Any]:
        env = (
            value.get("singleuser", {}).get("extraEnv")
            if isinstance(value.get("singleuser"), dict)
            else None
        )
        if isinstance(env, list):
            # The chart schema takes a list, but the chart's jupyterhub_config.py hands it as
            # it is to KubeSpawner's environment, a map: every spawn fails. And Helm's merge
            # would put it in place of hub.singleuser.extraEnv.
            raise KeyedError(
                "singleuser.extraEnv",
                env,
                "is a list, which KubeSpawner's environment refuses (a map of name to value) "
                "and which would replace hub.singleuser.extraEnv whole; set the variables as "
                "a map, in hub.singleuser.extraEnv",
            )
        for name, setting in (env if isinstance(env, dict) else {}).items():
            # Merged into hub.singleuser.extraEnv: the same rules.
            # (A valueFrom map is the site's own Kubernetes reference, left as written.)
            try:
                _not_set_by_the_hub(name)
                if isinstance(setting, str):
                    _kubespawner_template(setting)
            except KeyedError as err:
                raise KeyedError(("singleuser", "extraEnv", name), HIDDEN, err.expected) from None
            except ValueError as err:
                raise KeyedError(("singleuser", "extraEnv", name), setting, str(err)) from None
        config = value.get("hub", {}).get("config") if isinstance(value.get("hub"), dict) else None
        for section in config if isinstance(config, dict) else {}:
            if not str(section)[:1].isupper():
                raise KeyedError(
                    ("hub", "config", str(section)),
                    HIDDEN,
                    "is not a traitlets section: hub.config sections are class names, which "
                    "start with a capital (KubeSpawner, GenericOAuthenticator); chart 4.x stops "
                    "the hub on it, 3.x ignores it",
                )
        return value

    @model_validator(mode="after")
    def _pod_ids_are_numeric(self) -> HubSettings:
        # Checked with the settings, not when the storage class is built: by then the
        # share and the node mounts are registered.
        for path in CHART_POD_IDS:
            value = pod_id(self.extra_values, path)
            if not is_pod_id(value):
                raise KeyedError(
                    "extraValues." + ".".join(path),
                    value,
                    "is not a numeric uid/gid (0 to 2147483647)",
                )
        return self

    @field_validator("release")
    @classmethod
    def _helm_release_name(cls, value: str) -> str:
        if len(value) > HELM_RELEASE_NAME_MAX:
            raise ValueError(
                f"is longer than the {HELM_RELEASE_NAME_MAX} characters Helm allows a release name"
            )
        return value

    @model_validator(mode="after")
    def _namespace_of_its_own(self) -> HubSettings:
        # An adopted release keeps the namespace it runs in, whichever; a new one gets
        # a namespace the program creates.
        if self.namespace in SYSTEM_NAMESPACES and not self.adopt_release:
            raise KeyedError(
                "namespace",
                self.namespace,
                "is a namespace every cluster has; choose one of the hub's own (or adopt the "
                "release that runs there: hub.adoptRelease)",
            )
        return self

    @field_validator("logo")
    @classmethod
    def _logo_in_repository(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        root = (info.context or {}).get("project_dir", PROJECT_DIR)
        try:
            path = (root / value).resolve()
            inside = path.is_relative_to(root) and path.is_file()
        except (OSError, ValueError):
            # A name too long or with a NUL byte: the OS's own words would name no key
            # (and a bare OSError is no validation error: it would end the program).
            inside = False
        if not inside:
            raise ValueError("is not a file inside this repository")
        try:
            head, size = path.read_bytes()[:8], path.stat().st_size
        except OSError as err:
            raise ValueError(f"cannot be read ({err.strerror})") from None
        if head != b"\x89PNG\r\n\x1a\n":
            raise ValueError("is not a PNG file")
        if size > 256 * 1024:
            raise ValueError("is larger than 256 KiB (it travels in a Kubernetes Secret)")
        return value

    @model_validator(mode="after")
    def _adopted_database_keeps_its_class(self) -> HubSettings:
        if self.adopt_release and not self.db_storage_class:
            raise KeyedError(
                "dbStorageClass",
                None,
                "is required with adoptRelease: the hub database volume's class cannot change "
                "(kubectl get pvc -n <namespace> hub-db-dir shows it)",
            )
        return self

    @property
    def chart_generation(self) -> int:
        """The chart's major version: 3 (JupyterHub 4, oauthenticator 16) or 4 (JupyterHub 5,
        oauthenticator 17). An untested version is built for the generation it belongs to."""
        return chart_major(self.chart_version)

    @model_validator(mode="after")
    def _a_tested_chart(self) -> HubSettings:
        if self.chart_version not in SUPPORTED_CHARTS and not self.allow_untested_chart:
            raise KeyedError(
                "chartVersion",
                self.chart_version,
                f"is not a tested chart version ({', '.join(SUPPORTED_CHARTS)}); choose one, "
                "or set hub.allowUntestedChart: true",
            )
        if self.chart_generation < 3:
            raise KeyedError(
                "chartVersion",
                self.chart_version,
                "is older than the oldest chart generation this program builds values for (3.x)",
            )
        if self.adopt_release and not self.adopted_chart_version:
            raise KeyedError(
                "adoptedChartVersion",
                None,
                "is required with adoptRelease: the chart version the running release has "
                "(`helm list -n <namespace>` shows it, e.g. jupyterhub-3.1.0)",
            )
        return self

    @model_validator(mode="after")
    def _oauth_keys_of_the_chart(self) -> HubSettings:
        oauth = self.oauth
        newer = {
            "pkce": oauth.pkce,
            "authRefreshAgeSeconds": oauth.auth_refresh_age_seconds,
            "passAccessTokenToServer": oauth.pass_access_token_to_server,
            "accessTokenEnvVar": oauth.access_token_env_var,
        }
        if self.chart_generation < 4:
            for key, value in newer.items():
                if value is not None:
                    raise KeyedError(
                        f"oauth.{key}",
                        value,
                        f"needs chart {FIRST_REFRESHING_CHART} or newer (oauthenticator 17); "
                        f"hub.chartVersion is {self.chart_version}",
                    )
            return self
        if oauth.auth_refresh_age_seconds is not None and not oauth.refreshes_tokens:
            raise KeyedError(
                "oauth.authRefreshAgeSeconds",
                oauth.auth_refresh_age_seconds,
                "has no effect: refreshing needs enableAuthState: true and offline_access in "
                "scopes",
            )
        if oauth.pass_access_token_to_server and not oauth.enable_auth_state:
            raise KeyedError(
                "oauth.passAccessTokenToServer",
                True,
                "needs enableAuthState: true (the token is read from the user's auth state)",
            )
        if oauth.access_token_env_var is not None and not oauth.pass_access_token_to_server:
            raise KeyedError(
                "oauth.accessTokenEnvVar",
                oauth.access_token_env_var,
                "has no effect without passAccessTokenToServer: true",
            )
        token_env = oauth.access_token_env_var or DEFAULT_ACCESS_TOKEN_ENV
        if oauth.pass_access_token_to_server and token_env in self.singleuser.extra_env:
            # The spawn hook replaces the variable with the token, or drops it when the
            # user's auth state has none: the configured value never reaches a server.
            raise KeyedError(
                "oauth.accessTokenEnvVar",
                token_env,
                "is also set in hub.singleuser.extraEnv; the access token replaces that value "
                "at each spawn: choose another name for one of them",
            )
        return self

    def resource_ceiling(self) -> dict[str, Any]:
        """The largest CPU and memory limits the site configures (default or a profile's):
        what no user server may exceed."""
        cpus = [self.singleuser.cpu.limit] + [p.cpu.limit for p in self.profiles if p.cpu]
        memories = [self.singleuser.memory.limit]
        memories += [p.memory.limit for p in self.profiles if p.memory]
        return {"cpu": max(cpus), "memory": max(memories, key=v.memory_bytes)}

    @model_validator(mode="after")
    def _one_default_profile(self) -> HubSettings:
        defaults = [i for i, p in enumerate(self.profiles) if p.default]
        if len(defaults) > 1:
            raise KeyedError(
                f"profiles[{defaults[1]}].default", True, "is a second default profile"
            )
        names = [p.display_name for p in self.profiles]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise KeyedError(f"profiles[{i}].displayName", name, "is used twice")
        # The spawn form sends the chosen profile's slug, which KubeSpawner derives from the
        # title (profile_list gives none): an empty slug picks the default profile, and of
        # two equal slugs the first profile always wins.
        slugs = [v.profile_slug(name) for name in names]
        for i, (name, slug) in enumerate(zip(names, slugs, strict=True)):
            if not slug:
                raise KeyedError(
                    f"profiles[{i}].displayName",
                    name,
                    "has no letter or digit, so KubeSpawner gives the profile an empty slug and "
                    "choosing it starts the default profile; put letters or digits in the title",
                )
            if slug in slugs[:i]:
                first = slugs.index(slug)
                raise KeyedError(
                    f"profiles[{i}].displayName",
                    name,
                    f'gives the same KubeSpawner slug ("{slug}") as profiles[{first}].displayName '
                    f'"{names[first]}", so choosing it starts profiles[{first}]; make the titles '
                    "differ in their letters or digits",
                )
        return self


class Bastion(_Model):
    host: HostAddress = Field(description="jump host on a network the deployer reaches")
    port: TcpPort = Field(default=22, description="SSH port of the jump host")
    user: UnixUser | None = Field(default=None, description="defaults to nodes.sshUser")
    host_key: HostKey | None = Field(default=None, description="pinned SSH host key")


class NodeHost(_Model):
    name: DnsLabel = Field(description="node name, as in `kubectl get nodes`")
    address: HostAddress = Field(description="address the deployer (or bastion) reaches")
    port: TcpPort | None = Field(default=None, description="SSH port, default nodes.sshPort")
    host_key: HostKey | None = Field(default=None, description="pinned SSH host key")


class NodesSettings(_Model):
    mount_path: MountPoint = Field(description="where every node mounts the share")
    ssh_user: UnixUser = Field(description="SSH user; not root means scripts run via sudo -n")
    ssh_port: TcpPort = Field(default=22, description="SSH port of the nodes")
    bastion: Bastion | None = Field(
        default=None, description="jump host, where the nodes are reachable only through one"
    )
    mount_client: MountClient = Field(
        default=MountClient.kernel,
        description="kernel (mount -t ceph) or fuse (ceph-fuse, which enforces quotas "
        "where kernels are older than 4.17)",
    )
    install_packages: bool = Field(
        default=True, description="install the Ceph client with apt or dnf when missing"
    )
    allow_unpinned_host_keys: bool = Field(
        default=False,
        description="accept nodes and a bastion without hostKey: the node step then trusts "
        "whatever answers at their addresses (reported as an advisory on every node)",
    )
    hosts: list[NodeHost] = Field(min_length=1, description="every node of the cluster")

    @model_validator(mode="after")
    def _host_keys_pinned(self) -> NodesSettings:
        # pulumi-command checks no host key at all when none is given (no trust on first
        # use either): whatever answers at the address would get the cephx key on stdin
        # and run the scripts as root. A site that accepts that says so.
        if self.allow_unpinned_host_keys:
            return self
        how = (
            "is missing; pin the SSH host key (`ssh-keyscan -t ed25519 {host}`, its "
            "fingerprint checked out of band), or accept the risk with "
            "nodes.allowUnpinnedHostKeys: true"
        )
        for i, host in enumerate(self.hosts):
            if host.host_key is None:
                raise KeyedError(f"hosts[{i}].hostKey", HIDDEN, how.format(host=host.address))
        if self.bastion is not None and self.bastion.host_key is None:
            raise KeyedError("bastion.hostKey", HIDDEN, how.format(host=self.bastion.host))
        return self

    @model_validator(mode="after")
    def _mount_keeps_the_login(self) -> NodesSettings:
        # Mounted over the SSH user's home, the share hides its ~/.ssh/authorized_keys: the
        # next run of the node step could not log in. (/home itself is refused as a
        # directory that holds others.)
        if self.mount_path == f"/home/{self.ssh_user}":
            raise KeyedError(
                "mountPath",
                self.mount_path,
                f"is the home of nodes.sshUser {self.ssh_user}: the share would hide its "
                "~/.ssh, and the deploy could no longer log in; use a directory of its own "
                "such as /mnt/k8s-shared",
            )
        return self

    @model_validator(mode="after")
    def _unique_hosts(self) -> NodesSettings:
        for attr, key in (("name", "name"), ("address", "address")):
            seen: set[str] = set()
            for i, host in enumerate(self.hosts):
                value = getattr(host, attr)
                # 2001:db8::1 and 2001:DB8:0::1 are one node written twice.
                same = v.same_host(value) if attr == "address" else value
                if same in seen:
                    raise KeyedError(f"hosts[{i}].{key}", value, "is used by another node")
                seen.add(same)
        return self


class ShareSettings(_Model):
    name: OpenStackName = Field(description="Manila share name")
    share_type: OpenStackName = Field(description="Manila share type offering CephFS")
    size_gb: ShareSizeGb = Field(description="share size in GB")
    ceph_user: CephUser = Field(description="cephx user of the access rule")
    existing_id: OpenStackId | None = Field(
        default=None, description="id of an existing share to adopt instead of creating one"
    )
    access_rule_id: OpenStackId | None = Field(
        default=None, description="id of the existing cephx access rule to adopt"
    )

    @model_validator(mode="after")
    def _rule_of_an_adopted_share(self) -> ShareSettings:
        if self.access_rule_id and not self.existing_id:
            raise KeyedError(
                "accessRuleId",
                self.access_rule_id,
                "adopts a rule of an existing share: set share.existingId too",
            )
        return self


class StorageSettings(_Model):
    class_name: DnsName = Field(default="cephfs-shared", description="StorageClass name")
    reclaim_policy: ReclaimPolicy = Field(
        default=ReclaimPolicy.retain, description="what happens to a volume when its claim goes"
    )
    namespace: DnsLabel = Field(
        default="cephfs-shared-storage", description="namespace of the provisioner"
    )
    enforce_capacity: bool = Field(
        default=False,
        description="give each volume a CephFS quota of its claim's size; needs the p flag "
        "in the cephx user's MDS cap, which Manila's access rule does not grant",
    )
    helper_image: ImageRef = Field(
        default="docker.io/library/busybox:1.37.0",
        description="image of the provisioner's helper pod: sh, chown, chmod, mkdir, rm, and "
        "setfattr when enforceCapacity is on",
    )

    @field_validator("namespace")
    @classmethod
    def _not_a_system_namespace(cls, value: str) -> str:
        if value in SYSTEM_NAMESPACES:
            raise ValueError(
                "is a namespace every cluster has; the program creates the provisioner's "
                "namespace: choose one of its own"
            )
        return value

    @field_validator("class_name")
    @classmethod
    def _not_k3s_name(cls, value: str) -> str:
        if value in K3S_RESERVED_CLASS_NAMES:
            raise ValueError("is the class k3s manages and rewrites; choose another name")
        return value


class VaultSettings(_Model):
    store_name: DnsName = Field(description="the External Secrets store that reads Vault")
    store_kind: StoreKind = Field(
        default=StoreKind.cluster_secret_store, description="SecretStore or ClusterSecretStore"
    )
    remote_key: VaultKey = Field(description="the secret's path in Vault")
    property: ClaimName = Field(
        default="client_secret", description="the field of that secret holding the value"
    )
    api_version: ApiVersion = Field(
        default="external-secrets.io/v1", description="External Secrets API version"
    )
    refresh_interval: Duration = Field(default="1h", description="how often to re-read Vault")


class SecretsSettings(_Model):
    source: SecretSource = Field(
        default=SecretSource.pulumi,
        description="pulumi (oauthClientSecret config secret) or vault (External Secrets)",
    )
    vault: VaultSettings | None = Field(default=None, description="required with source vault")

    @model_validator(mode="after")
    def _vault_settings_when_vault(self) -> SecretsSettings:
        if self.source is SecretSource.vault and self.vault is None:
            raise KeyedError("vault", None, "is required with source: vault")
        if self.source is SecretSource.pulumi and self.vault is not None:
            raise KeyedError(
                "source", "pulumi", "is set, but vault settings are given: set source: vault"
            )
        return self


class SiteConfig(_Model):
    """Everything a site sets, except secrets (see `SiteSecrets`)."""

    site: SiteSettings = Field(description="the site's name and where it is served")
    hub: HubSettings = Field(description="the JupyterHub release")
    nodes: NodesSettings = Field(description="the cluster's nodes, which mount the share")
    share: ShareSettings = Field(description="the Manila CephFS share")
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="the storage class on the shared mount"
    )
    secrets: SecretsSettings = Field(
        default_factory=SecretsSettings, description="where the OAuth client secret comes from"
    )

    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("oauthClientSecret", "sshPrivateKey")

    @property
    def hub_url(self) -> str:
        return f"https://{self.site.hub_host}{self.hub.base_url}"

    @model_validator(mode="after")
    def _namespaces_apart(self) -> SiteConfig:
        # Both components create their namespace: the second create would fail.
        if self.storage.namespace == self.hub.namespace:
            raise KeyedError(
                "storage.namespace",
                self.storage.namespace,
                "is hub.namespace too; the provisioner needs a namespace of its own",
            )
        return self

    @model_validator(mode="after")
    def _chart_runs_on_the_cluster(self) -> SiteConfig:
        chart = SUPPORTED_CHARTS.get(self.hub.chart_version)
        version = self.site.kubernetes_version
        if chart is not None and kubernetes_minor(version) < chart.min_kubernetes:
            needed = ".".join(map(str, chart.min_kubernetes))
            raise KeyedError(
                "site.kubernetesVersion",
                version,
                f"is older than chart {chart.version} supports (Kubernetes >= {needed}); "
                "upgrade the cluster or choose another hub.chartVersion",
            )
        return self


@dataclass(frozen=True)
class SiteSecrets:
    """Secret config values; each is a Pulumi secret Output, never a plain string."""

    oauth_client_secret: pulumi.Output[str] | None
    """None when the hub reads the client secret from Vault instead."""
    ssh_private_key: pulumi.Output[str]


def _show(value: Any) -> str:
    """The bad value as the operator would recognise it, on one line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, int | float):
        text = repr(value)
    else:
        text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _key(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.search(r"[\s.\[\]]", str(part)) or not str(part).isprintable():
            # A key that is not a plain name (a space, a control character, an invisible or
            # a direction-changing one, a dot or bracket that would read as a path) is shown
            # quoted, so the line stays one line and says where the odd key is.
            out += f"[{json.dumps(str(part), ensure_ascii=True)}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _lookup(raw: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _field(model: type[BaseModel] | None, name: int | str) -> FieldInfo | None:
    """The model's field as the stack file spells it (its alias), if it has one."""
    if model is None:
        return None
    return next((f for n, f in model.model_fields.items() if (f.alias or n) == name), None)


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: Any = SiteConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = _field(model, str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return None
    return model


_TYPE_WORDS = {
    "string_type": "is not a string",
    "int_type": "is not a whole number",
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "finite_number": "is not a whole number",  # .nan or .inf where an integer goes
    "int_parsing_size": "is not a whole number of a usable size",
    "float_type": "is not a number",
    "float_parsing": "is not a number",
    "bool_type": "is not true or false",
    "bool_parsing": "is not true or false",
    "dict_type": "is not a map",
    "model_type": "is not a map of settings",
    "model_attributes_type": "is not a map of settings",
    "list_type": "is not a list",
}


def _is_key_error(loc: tuple[int | str, ...], raw: dict[str, Any], kind: str) -> bool:
    """Whether pydantic's `[key]` marker ends `loc`: a map's key, not its value, is bad.

    An operator may write a key that is itself spelt `[key]` (`site: {"[key]": 1}`), so the
    marker counts only where a map setting of the model holds the key named before it.
    """
    if len(loc) < 3 or loc[-1] != "[key]" or kind == "extra_forbidden":
        return False
    field = _field(_model_at(loc[:-3]), str(loc[-3]))
    owner = _lookup(raw, loc[:-2])
    return (
        field is not None
        and get_origin(field.annotation) is dict
        and isinstance(owner, dict)
        and loc[-2] in owner
    )


def _describe(error: Any, raw: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "value_error" and isinstance(ctx.get("error"), KeyedError):
        keyed: KeyedError = ctx["error"]
        shown = "" if keyed.value is HIDDEN else f"{_show(keyed.value)} "
        return f"{_key((*loc, *_key_parts(keyed.key)))}: {shown}{keyed.expected}"
    if _is_key_error(loc, raw, kind):
        # A bad key of a map: name the map, and show the key as the bad value.
        return f"{_key(loc[:-2])}: key {_show(loc[-2])} {ctx.get('error', error['msg'])}"
    key = _key(loc)
    value = _lookup(raw, loc)
    if kind == "missing":
        what = _description(loc)
        return f"{key}: is missing; it is required{f' ({what})' if what else ''}"
    if kind == "extra_forbidden" and "." in str(loc[-1]):
        # `pulumi config set hub.nodePort 1` (no --path) makes one key of the whole name.
        spelt = (*loc[:-1], *str(loc[-1]).split("."))
        if str(spelt[-1]) in _field_names(_model_at(spelt[:-1])):
            dotted = ".".join(str(part) for part in spelt)
            return (
                f"{key}: is one key with dots in its name, not {dotted}; "
                f"`pulumi config set --path {dotted} VALUE` sets {dotted}"
            )
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = sorted(_field_names(parent))
        if len(loc) == 1:
            # At the top level a secret key is a known setting too, set with --secret.
            known = sorted([*known, *SiteConfig.SECRET_KEYS])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        return f"{key}: is not a known setting; {hint}expected one of {', '.join(known)}"
    if kind == "value_error":
        return f"{key}: {_show(value)} {ctx.get('error')}"
    if kind == "enum":
        return f"{key}: {_show(value)} is not one of {ctx.get('expected')}"
    if kind == "too_short":
        return f"{key}: {_show(value)} has too few items; expected at least {ctx.get('min_length')}"
    if kind in _TYPE_WORDS:
        return f"{key}: {_show(value)} {_TYPE_WORDS[kind]}"
    return f"{key}: {_show(value)} is not valid: {error['msg']}"


def _description(loc: tuple[int | str, ...]) -> str:
    """The description of the setting at `loc`, as the model documents it."""
    if loc and isinstance(loc[-1], int):
        loc = loc[:-1]  # an item of a list: the list's description
    field = _field(_model_at(loc[:-1]), str(loc[-1]))
    return (field.description or "") if field is not None else ""


def _field_names(model: type[BaseModel] | None) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()] if model is not None else []


def _config_order(loc: tuple[int | str, ...], raw: Any) -> tuple[tuple[int, int], ...]:
    """Where a problem sits in the stack file: keys as the operator wrote them, then the
    model's keys (a missing key has no place in the file) in the model's order."""
    order: list[tuple[int, int]] = []
    model: type[BaseModel] | None = SiteConfig
    for depth, part in enumerate(loc):
        if isinstance(raw, dict) and part in raw:
            order.append((0, list(raw).index(part)))
        elif isinstance(part, int):
            order.append((0, part))
        else:
            names = _field_names(model)
            order.append((1, names.index(str(part)) if str(part) in names else len(names)))
        raw = _lookup(raw, (part,))
        model = _model_at(loc[: depth + 1])
    return tuple(order)


def _merge_misplaced(
    errors: list[dict[str, Any]], raw: dict[str, Any]
) -> list[tuple[tuple[int | str, ...], str]]:
    """Lines for unknown keys that are a known key misspelt or indented too deep.

    A typo of a required key gives pydantic two errors (the unknown key, the missing one);
    the operator made one mistake, so it gets one line. Drops the errors it explains."""
    lines: list[tuple[tuple[int | str, ...], str]] = []
    missing = {tuple(e["loc"]): e for e in errors if e["type"] == "missing"}
    for error in [e for e in errors if e["type"] == "extra_forbidden"]:
        loc = tuple(error["loc"])
        parent, name = loc[:-1], str(loc[-1])
        # Indented one level too deep: the key belongs to an enclosing section.
        home = next(
            (
                (*parent[:depth], name)
                for depth in range(len(parent) - 1, -1, -1)
                if name in _field_names(_model_at(parent[:depth]))
            ),
            None,
        )
        if home is not None:
            missing.pop(home, None)
            line = (
                f"{_key(loc)}: is not a setting of {_key(parent)}; {_key(home)} is "
                "(is it indented one level too deep?)"
            )
        else:
            siblings = [str(m[-1]) for m in missing if m[:-1] == parent]
            close = difflib.get_close_matches(name, siblings, n=1)
            if not close:
                continue
            meant = (*parent, close[0])
            missing.pop(meant)
            what = _description(meant)
            line = (
                f"{_key(loc)}: is not a known setting; did you mean {close[0]}? "
                f"({close[0]} is required{f': {what}' if what else ''})"
            )
        lines.append((loc, line))
        errors.remove(error)
    errors[:] = [e for e in errors if e["type"] != "missing" or tuple(e["loc"]) in missing]
    return lines


def describe_errors(errors: list[Any], raw: dict[str, Any]) -> list[str]:
    """One line per problem (pydantic's error dicts), in the stack file's order."""
    errors = list(errors)
    lines = _merge_misplaced(errors, raw)
    lines += [(tuple(e["loc"]), _describe(e, raw)) for e in errors]
    lines.sort(key=lambda item: _config_order(item[0], raw))
    return [line for _, line in lines]


def _unfilled(raw: Any, loc: tuple[int | str, ...] = ()) -> list[tuple[int | str, ...]]:
    """Where the new-site template's placeholder is still the value, in file order."""
    if isinstance(raw, dict):
        return [found for key, inner in raw.items() for found in _unfilled(inner, (*loc, key))]
    if isinstance(raw, list):
        return [found for i, inner in enumerate(raw) for found in _unfilled(inner, (*loc, i))]
    return [loc] if raw == TEMPLATE_PLACEHOLDER else []


def _without(raw: Any, drop: set[tuple[int | str, ...]], loc: tuple[int | str, ...] = ()) -> Any:
    """`raw` without the map keys at `drop` (list items stay, keeping indices stable)."""
    if isinstance(raw, dict):
        return {k: _without(v, drop, (*loc, k)) for k, v in raw.items() if (*loc, k) not in drop}
    if isinstance(raw, list):
        return [_without(v, drop, (*loc, i)) for i, v in enumerate(raw)]
    return raw


def parse_site_config(raw: dict[str, Any], project_dir: Path = PROJECT_DIR) -> SiteConfig:
    """Validate the plain (non-secret) settings of a site, or raise ConfigError."""
    unfilled = _unfilled(raw)
    # Values still the template's placeholder are listed first, as one block: they are
    # what a new site has left to do; the other problems follow.
    lines = [
        f"{_key(loc)}: is still {TEMPLATE_PLACEHOLDER!r}, to be filled in"
        + (f" ({what})" if (what := _description(loc)) else "")
        for loc in unfilled
    ]
    checked = _without(raw, set(unfilled))
    try:
        site = SiteConfig.model_validate(checked, context={"project_dir": project_dir})
    except ValidationError as err:
        # A placeholder left in a list (allowedGroups) is reported once, as unfilled.
        errors = [e for e in err.errors(include_url=False) if not _under(_loc(e), unfilled)]
        lines += describe_errors(errors, checked)
    else:
        if not lines:
            return site
    raise ConfigError("\n".join(lines))


def _loc(error: Any) -> tuple[int | str, ...]:
    """Where an error is, down to the key a cross-field check names (a hostKey left to
    fill in is then one problem, not also a missing key)."""
    loc = tuple(error["loc"])
    keyed = (error.get("ctx") or {}).get("error")
    if isinstance(keyed, KeyedError):
        loc += _key_parts(keyed.key)
    return loc


def _key_parts(key: str | tuple[int | str, ...]) -> tuple[int | str, ...]:
    """A KeyedError's dotted key (hosts[0].hostKey) as the parts of a location."""
    if isinstance(key, tuple):
        return key
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", key)
    return tuple(int(p[1:-1]) if p.startswith("[") else p for p in parts)


def _under(loc: tuple[int | str, ...], unfilled: list[tuple[int | str, ...]]) -> bool:
    return any(tuple(loc[: len(mark)]) == mark for mark in unfilled)


def _stack_keys() -> dict[str, Any]:
    """Every `jupyterhub-platform:` key the stack sets, without the prefix."""
    prefix = f"{PROJECT}:"
    merged = {**get_config_env(), **_RUNTIME_CONFIG.get()}
    misspelt = misspelt_namespaces(merged)
    if misspelt:
        raise ConfigError("\n".join(misspelt))
    return {k[len(prefix) :]: val for k, val in merged.items() if k.startswith(prefix)}


def misspelt_namespaces(keys: Iterable[str]) -> list[str]:
    """A line for each config key whose namespace is this project's misspelt.

    The program reads only `jupyterhub-platform:` keys: `jupyterhub-plaform:hub` would be
    ignored without a word, and the site told that hub is missing."""
    lines = []
    for key in keys:
        namespace, colon, name = key.rpartition(":")
        if not colon or namespace == PROJECT:
            continue
        if namespace.lower() == PROJECT or difflib.get_close_matches(
            namespace, [PROJECT], cutoff=0.8
        ):
            lines.append(
                f"{key}: is not read: its namespace is not {PROJECT}; "
                f"did you mean {PROJECT}:{name}?"
            )
    return lines


def decode_config_value(value: Any) -> Any:
    """A config value as the program reads it: JSON text decoded, other text kept as is."""
    # Pulumi hands structured config to the program as JSON text; scalars stay text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def required_secret_keys(raw: dict[str, Any]) -> list[str]:
    """The secret config keys a site with these (unvalidated) settings must set."""
    secrets = raw.get("secrets")
    if isinstance(secrets, dict) and secrets.get("source") == SecretSource.vault.value:
        return ["sshPrivateKey"]
    return list(SiteConfig.SECRET_KEYS)


def load_site_config(project_dir: Path = PROJECT_DIR) -> tuple[SiteConfig, SiteSecrets]:
    """Read and validate the current stack's config, once, before anything is registered."""
    keys = _stack_keys()
    secret_names = set(SiteConfig.SECRET_KEYS)
    raw = {k: decode_config_value(val) for k, val in keys.items() if k not in secret_names}
    # A setting holding a `secure:` value (`pulumi config set --secret --path hub.x ...`) is
    # decrypted for the program, which would then write it into plain resource inputs and
    # values: not a secret any more. The offline plan cannot decrypt it either.
    encrypted = [k for k in raw if is_config_secret(f"{PROJECT}:{k}")]
    if encrypted:
        raise ConfigError(
            "\n".join(
                f"{k}: is encrypted (secure:), and only "
                f"{' and '.join(SiteConfig.SECRET_KEYS)} are secrets: set it in plain text"
                for k in encrypted
            )
        )
    site = parse_site_config(raw, project_dir)

    config = pulumi.Config(PROJECT)
    secrets: dict[str, pulumi.Output[str]] = {}
    needed = required_secret_keys(raw)
    if "oauthClientSecret" not in needed and keys.get("oauthClientSecret") is not None:
        raise ConfigError(
            "oauthClientSecret: is set, but secrets.source is vault and the hub reads the "
            "secret from Vault; remove it with `pulumi config rm oauthClientSecret`"
        )
    for name in needed:
        if keys.get(name) in (None, ""):
            how = "< key-file" if name == "sshPrivateKey" else "..."
            raise ConfigError(
                f"{name}: is missing; set it with `pulumi config set --secret {name} {how}`"
            )
        if not is_config_secret(f"{PROJECT}:{name}"):
            raise ConfigError(
                f"{name}: is stored in plain text; store it encrypted with "
                f"`pulumi config set --secret {name} ...`"
            )
        if name == "sshPrivateKey":
            try:
                v.private_key_block(str(keys[name]))
            except v.NotAPrivateKeyError as err:
                raise ConfigError(
                    f"{name}: {err}; set it from the key file: "
                    "`pulumi config set --secret sshPrivateKey < key-file`"
                ) from None
            except ValueError as err:
                raise ConfigError(f"{name}: {err}") from None
        secrets[name] = config.require_secret(name)
    return site, SiteSecrets(
        oauth_client_secret=secrets.get("oauthClientSecret"),
        ssh_private_key=secrets["sshPrivateKey"],
    )
