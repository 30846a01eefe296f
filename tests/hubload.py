"""Load generated chart values the way the chart's hub does, into one version's hub libraries.

Runs as a script inside `.venv-hub/<chart version>` (the hub image's jupyterhub,
oauthenticator, kubespawner, tornado and traitlets, pinned in tests/hub_libraries/), never
in the project's own environment: each chart generation has its own libraries, and one
process cannot import two versions of them. `tests/hubenv.py` starts it.

Input on stdin: {"chart": {"version", "config"}, "cases": {name: {"values": chart values
merged over the chart's defaults (as Helm merges them; tests/hubenv.py does it), "env":
{...}}}}, where "config" is the text of the chart's own
`files/hub/jupyterhub_config.py`. Output on stdout: {name:
report}, where a report holds what the hub built (the authenticator's settings and the
provider URL its login sends users to, the spawner's profiles and their slugs, the
environment the auth-state hook gives a server and the one the server starts with) and
every warning the libraries logged or raised while building it.

The chart's `jupyterhub_config.py` itself turns the values into the hub's traitlets
config (its table of `singleuser` keys onto KubeSpawner traits, then the `hub.config`
sections over them, then `hub.extraConfig` in name order): it runs here as in the hub pod,
over the merged values, with a stand-in for the `z2jh` module
that reads those values instead of the files the pod mounts. Mapping values by hand
drifted from the chart (it applied `hub.config` first, so `singleuser` won over
`hub.config.KubeSpawner`, the reverse of the hub).

Standard library and the hub's libraries only: this file must not import the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import logging
import os
import sys
import tempfile
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

# Authenticator settings a test may ask about; those a version does not have are left out.
AUTHENTICATOR_TRAITS = (
    "allow_all",
    "allowed_groups",
    "admin_groups",
    "claim_groups_key",
    "auth_state_groups_key",
    "manage_groups",
    "enable_pkce",
    "refresh_pre_spawn",
    "auth_refresh_age",
    "enable_auth_state",
    "username_claim",
    "userdata_token_method",
    "scope",
    "client_id",
    "client_secret",
    "oauth_callback_url",
    "extra_authorize_params",
    "userdata_params",
)
# A token the auth-state hook receives in these checks: only its passage is checked.
PROBE_TOKEN = "probe-access-token"
# The token the hub makes for a server (JUPYTERHUB_API_TOKEN) in these checks.
PROBE_API_TOKEN = "probe-hub-api-token"
# The report that lists the installed versions of the hub's libraries.
VERSIONS = "__versions__"

_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-real-token}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""


# KubeSpawner's resource traits, in the order reports list them.
_RESOURCE_TRAITS = ("cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")


def _resources(spawner: Any) -> list[Any]:
    return [getattr(spawner, trait) for trait in _RESOURCE_TRAITS]


# What the chart's hub Secret holds besides the values: secrets it generates.
_GENERATED_SECRETS = {
    "hub.config.JupyterHub.cookie_secret": "00" * 32,
    "hub.config.CryptKeeper.keys": "11" * 32,
}


def _z2jh(values: dict[str, Any]) -> types.ModuleType:
    """A stand-in for the chart's z2jh module over these values, instead of the files the
    hub pod mounts from the chart's Secret and ConfigMap. Like the real one it hands out
    the one loaded copy of the values (the chart's config pops keys from it)."""
    z2jh = types.ModuleType("z2jh")

    def get_config(key: str, default: Any = None) -> Any:
        value: Any = values
        for level in key.split("."):
            if not isinstance(value, dict) or level not in value:
                return default
            value = value[level]
        return value

    def set_config_if_not_none(parent: Any, name: str, key: str) -> None:
        data = get_config(key)
        if data is not None:
            setattr(parent, name, data)

    # The chart's Secret holds these as keys of their own, written when Helm renders
    # (templates/hub/secret.yaml), so the config's pops from the values leave them be.
    secrets = dict(_GENERATED_SECRETS)
    for key in _GENERATED_SECRETS:
        if get_config(key) is not None:
            secrets[key] = get_config(key)
    if get_config("hub.db.password") is not None:
        secrets["hub.db.password"] = get_config("hub.db.password")
    for name, service in (get_config("hub.services") or {}).items():
        if isinstance(service, dict) and service.get("apiToken") is not None:
            secrets[f"hub.services.{name}.apiToken"] = service["apiToken"]

    def get_secret_value(key: str, default: Any = "never-explicitly-set") -> Any:
        if key in secrets:
            return secrets[key]
        if default != "never-explicitly-set":
            return default
        raise KeyError(f"{key} not found in either k8s Secret!")

    z2jh.get_config = get_config  # type: ignore[attr-defined]
    z2jh.set_config_if_not_none = set_config_if_not_none  # type: ignore[attr-defined]
    z2jh.get_secret_value = get_secret_value  # type: ignore[attr-defined]
    # Resource names and their Services' ports, which Kubernetes provides in the pod.
    z2jh.get_name = lambda name: name  # type: ignore[attr-defined]
    z2jh.get_name_env = lambda name, suffix="": "8081"  # type: ignore[attr-defined]
    return z2jh


class ChartRefusedError(Exception):
    """The chart's jupyterhub_config.py stopped the hub (sys.exit), with what it printed."""


def traitlets_config(values: dict[str, Any], chart: dict[str, Any]) -> Any:
    """The traitlets config the chart's own jupyterhub_config.py builds from these values.

    `chart` is {"version", "config": the text of the chart's jupyterhub_config.py}; the
    values are already merged over the chart's defaults. The file runs as in the hub pod,
    with z2jh reading those values instead of the pod's mounted files. What it prints goes
    to stderr; a sys.exit (its FATAL refusals) becomes ChartRefusedError with the lines it
    printed.
    """
    from tornado.httpclient import AsyncHTTPClient
    from traitlets.config import Config

    # A copy each time: the chart's config pops keys from the values it is handed.
    merged = copy.deepcopy(values)
    # The hub Secret's values.yaml also carries these (templates/hub/secret.yaml).
    merged["Chart"] = {"Name": "jupyterhub", "Version": chart["version"]}
    merged["Release"] = {"Name": "jupyterhub-platform", "Namespace": "hub"}
    c = Config()
    namespace = {
        "get_config": lambda: c,
        "__file__": "/usr/local/etc/jupyterhub/jupyterhub_config.py",
        "__name__": "jupyterhub_config",
    }
    printed = io.StringIO()
    saved_modules, saved_path = sys.modules.get("z2jh"), list(sys.path)
    configure = AsyncHTTPClient.__dict__["configure"]
    sys.modules["z2jh"] = _z2jh(merged)
    # The chart picks tornado's curl client, which needs pycurl: not part of what is
    # checked here (the hub makes no HTTP request while loading its config).
    AsyncHTTPClient.configure = classmethod(lambda cls, *a, **kw: None)  # type: ignore[assignment,method-assign]
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            code = compile(chart["config"], "jupyterhub_config.py", "exec")
            exec(code, namespace)  # noqa: S102 - the hub runs this file so
    except SystemExit:
        fatal = [line for line in printed.getvalue().splitlines() if "FATAL" in line]
        raise ChartRefusedError(" ".join(fatal) or printed.getvalue()[-500:]) from None
    finally:
        AsyncHTTPClient.configure = configure  # type: ignore[method-assign]
        sys.path[:] = saved_path
        if saved_modules is None:
            sys.modules.pop("z2jh", None)
        else:
            sys.modules["z2jh"] = saved_modules
    return c


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@contextmanager
def collected_warnings() -> Iterator[list[str]]:
    """Every WARNING (or worse) logged, and every Python warning raised, inside the block."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.records
        handler.records.extend(
            str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)
        )
    finally:
        root.removeHandler(handler)


def _plain(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_authenticator(values: dict[str, Any], chart: dict[str, Any]) -> dict[str, Any]:
    from jupyterhub.app import JupyterHub

    with collected_warnings() as logged:
        c = traitlets_config(values, chart)
        app = JupyterHub(config=c)
        app.log.propagate = True
        authenticator = app.authenticator_class(parent=app, config=c)
    cls = type(authenticator)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "traits": {
            name: _plain(getattr(authenticator, name))
            for name in AUTHENTICATOR_TRAITS
            if authenticator.has_trait(name)
        },
        "defines_refresh_user": _defining_class(cls, "refresh_user").__module__,
        "authorize_params": _authorize_params(authenticator),
        "warnings": logged,
    }


def _authorize_params(authenticator: Any) -> dict[str, str]:
    """The query of the provider URL the hub's login handler sends a user to: the
    handler's own code, with the request parts it reads stood in for."""
    from types import SimpleNamespace
    from urllib.parse import parse_qsl, urlsplit

    sent: list[str] = []

    class Login(authenticator.login_handler):
        def __init__(self) -> None:  # no Tornado application or request to serve
            self.application = SimpleNamespace(settings={"authenticator": authenticator})
            self.request = SimpleNamespace(protocol="https", host="hub.test", uri="/hub/")

        def set_state_cookie(self, value: str) -> None:
            pass

        def _get_next_url(self) -> str:
            return ""

        def redirect(self, url: str, *args: Any, **kwargs: Any) -> None:
            sent.append(url)

    done = Login().get()
    if asyncio.iscoroutine(done):
        asyncio.run(done)
    return dict(parse_qsl(urlsplit(sent[0]).query))


def _admitted(values: dict[str, Any], chart: dict[str, Any], groups: list[str]) -> bool:
    """Would the hub's own authenticator admit user bob with these groups in userinfo?"""
    from jupyterhub.app import JupyterHub

    c = traitlets_config(values, chart)
    app = JupyterHub(config=c)
    authenticator = app.authenticator_class(parent=app, config=c)
    auth_model = {
        "name": "bob",
        "admin": None,
        "auth_state": {"oauth_user": {"preferred_username": "bob", "groups": groups}},
    }
    return bool(asyncio.run(authenticator.check_allowed("bob", auth_model)))


def _defining_class(cls: type, attribute: str) -> type:
    return next(k for k in cls.__mro__ if attribute in vars(k))


def _spawner(values: dict[str, Any], chart: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Any:
    from kubespawner import KubeSpawner

    c = traitlets_config(values, chart)

    async def build() -> Any:
        # KubeSpawner makes its API client in __init__, which needs a running loop.
        return KubeSpawner(config=c, _mock=True)

    return loop.run_until_complete(build())


def load_spawner(values: dict[str, Any], chart: dict[str, Any]) -> dict[str, Any]:
    """KubeSpawner from these values (it reads a kubeconfig, never calls the cluster)."""
    loop = asyncio.new_event_loop()
    try:
        with collected_warnings() as logged:
            spawner = _spawner(values, chart, loop)
            profiles = loop.run_until_complete(
                _maybe(spawner._get_initialized_profile_list(spawner.profile_list))
            )
            form = spawner._render_options_form(profiles) if profiles else ""
            images = {}
            resources = {}
            for profile in profiles:
                fresh = _spawner(values, chart, loop)
                loop.run_until_complete(_maybe(fresh._load_profile(profile["slug"], profiles)))
                images[profile["display_name"]] = fresh.image
                resources[profile["display_name"]] = _resources(fresh)
            # The auth-state hook (hub.extraConfig), called as the hub calls it at spawn.
            hooked = _spawner(values, chart, loop)
            loop.run_until_complete(hooked.run_auth_state_hook({"access_token": PROBE_TOKEN}))
            # The environment the server starts with (get_env, as KubeSpawner's start
            # calls it), with the token the hub made for it.
            hooked.api_token = PROBE_API_TOKEN
            server_env = hooked.get_env()
            # The claim KubeSpawner asks Kubernetes for (singleuser.storage.capacity).
            claim = hooked.get_pvc_manifest()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    return {
        "profiles": [p["display_name"] for p in profiles],
        "slugs": [p["slug"] for p in profiles],
        "form_names_all_shown": all(p["display_name"] in form for p in profiles),
        "form": form,
        "images": images,
        "resources": resources,
        "default_resources": _resources(spawner),
        "image": spawner.image,
        "default_url": spawner.default_url,
        "environment_after_hook": {
            k: v for k, v in hooked.environment.items() if isinstance(v, str)
        },
        "server_env": {k: v for k, v in server_env.items() if isinstance(v, str)},
        "claim_request": claim.spec.resources.requests,
        "warnings": logged,
    }


async def _maybe(value: Any) -> Any:
    """Await a coroutine; pass a plain value through (the API differs between versions)."""
    if asyncio.iscoroutine(value):
        return await value
    return value


def check(case: dict[str, Any], chart: dict[str, Any]) -> dict[str, Any]:
    """A case's report; a library that refuses the values gives {"error": its message}."""
    saved = dict(os.environ)
    os.environ.update(case.get("env") or {})
    try:
        report: dict[str, Any] = {
            "authenticator": load_authenticator(case["values"], chart),
            "spawner": load_spawner(case["values"], chart),
        }
        if "admit" in case:
            report["admitted"] = [
                _admitted(case["values"], chart, groups) for groups in case["admit"]
            ]
        return report
    except Exception as exc:  # the refusal is the result a test may look for
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main() -> None:
    request = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(_KUBECONFIG)
        # The client reads $KUBECONFIG once, when first imported.
        os.environ["KUBECONFIG"] = str(kubeconfig)
        from kubernetes_asyncio.config import kube_config

        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
        # Import-time warnings of the libraries themselves (jupyterhub 4.0.2 through
        # python-json-logger, kubespawner 6.1.0's trait definitions) are not about the
        # config: import first, then collect what loading the config says.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import jupyterhub.app  # noqa: F401
            import kubespawner  # noqa: F401
            import oauthenticator.generic  # noqa: F401
        out = {name: check(case, request["chart"]) for name, case in request["cases"].items()}
    out[VERSIONS] = {
        name: metadata.version(name)
        for name in (
            "jupyterhub",
            "oauthenticator",
            "jupyterhub-kubespawner",
            "tornado",
            "traitlets",
            "jupyter-server",
        )
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
