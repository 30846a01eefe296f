"""Load generated chart values the way the chart's hub does, into one version's hub libraries.

Runs as a script inside `.venv-hub/<chart version>` (the hub image's jupyterhub,
oauthenticator, kubespawner, tornado and traitlets, pinned in tests/hub_libraries/), never
in the project's own environment: each chart generation has its own libraries, and one
process cannot import two versions of them. `tests/hubenv.py` starts it.

Input on stdin: {"cases": {name: {"values": chart values, "env": {...}}}}. Output on
stdout: {name: report}, where a report holds what the hub built (the authenticator's
settings, the spawner's profiles, the environment the auth-state hook gives a server) and
every warning the libraries logged or raised while building it. The chart's
`jupyterhub_config.py` copies each `hub.config` section into the traitlets config
(`c[section].update(values)`), builds KubeSpawner's settings from `singleuser`, then runs
`hub.extraConfig` entries in name order; this does the same.

Standard library and the hub's libraries only: this file must not import the project.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
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


_RESOURCE_TRAITS = (
    ("cpu_limit", "cpu", "limit"),
    ("cpu_guarantee", "cpu", "guarantee"),
    ("mem_limit", "memory", "limit"),
    ("mem_guarantee", "memory", "guarantee"),
)


def _resources(spawner: Any) -> list[Any]:
    return [getattr(spawner, trait) for trait, _, _ in _RESOURCE_TRAITS]


def traitlets_config(values: dict[str, Any]) -> Any:
    from traitlets.config import Config

    c = Config()
    hub = values.get("hub", {})
    for section, settings in hub.get("config", {}).items():
        c[section].update(settings)
    singleuser = values.get("singleuser", {})
    image = singleuser.get("image")
    if image:
        c.KubeSpawner.image = f"{image['name']}:{image['tag']}"
    # The chart's own mapping of singleuser.cpu and .memory onto KubeSpawner's traits.
    for trait, resource, kind in _RESOURCE_TRAITS:
        setting = singleuser.get(resource) or {}
        if setting.get(kind) is not None:
            c.KubeSpawner[trait] = setting[kind]
    if "profileList" in singleuser:
        c.KubeSpawner.profile_list = singleuser["profileList"]
    if "defaultUrl" in singleuser:
        c.KubeSpawner.default_url = singleuser["defaultUrl"]
    if singleuser.get("extraEnv"):
        c.KubeSpawner.environment = dict(singleuser["extraEnv"])
    # hub.extraConfig: Python run with `c` in scope, in key order, after everything else.
    for name in sorted(hub.get("extraConfig") or {}):
        code = compile(hub["extraConfig"][name], f"<hub.extraConfig.{name}>", "exec")
        exec(code, {"c": c, "get_config": lambda: c})  # noqa: S102 - the chart does this
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


def load_authenticator(values: dict[str, Any]) -> dict[str, Any]:
    from jupyterhub.app import JupyterHub

    with collected_warnings() as logged:
        c = traitlets_config(values)
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
        "warnings": logged,
    }


def _admitted(values: dict[str, Any], groups: list[str]) -> bool:
    """Would the hub's own authenticator admit user bob with these groups in userinfo?"""
    from jupyterhub.app import JupyterHub

    c = traitlets_config(values)
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


def _spawner(values: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Any:
    from kubespawner import KubeSpawner

    c = traitlets_config(values)

    async def build() -> Any:
        # KubeSpawner makes its API client in __init__, which needs a running loop.
        return KubeSpawner(config=c, _mock=True)

    return loop.run_until_complete(build())


def load_spawner(values: dict[str, Any]) -> dict[str, Any]:
    """KubeSpawner from these values (it reads a kubeconfig, never calls the cluster)."""
    loop = asyncio.new_event_loop()
    try:
        with collected_warnings() as logged:
            spawner = _spawner(values, loop)
            profiles = loop.run_until_complete(
                _maybe(spawner._get_initialized_profile_list(spawner.profile_list))
            )
            form = spawner._render_options_form(profiles) if profiles else ""
            images = {}
            resources = {}
            for profile in profiles:
                fresh = _spawner(values, loop)
                loop.run_until_complete(_maybe(fresh._load_profile(profile["slug"], profiles)))
                images[profile["display_name"]] = fresh.image
                resources[profile["display_name"]] = _resources(fresh)
            # The auth-state hook (hub.extraConfig), called as the hub calls it at spawn.
            hooked = _spawner(values, loop)
            loop.run_until_complete(hooked.run_auth_state_hook({"access_token": PROBE_TOKEN}))
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    return {
        "profiles": [p["display_name"] for p in profiles],
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
        "warnings": logged,
    }


async def _maybe(value: Any) -> Any:
    """Await a coroutine; pass a plain value through (the API differs between versions)."""
    if asyncio.iscoroutine(value):
        return await value
    return value


def check(case: dict[str, Any]) -> dict[str, Any]:
    """A case's report; a library that refuses the values gives {"error": its message}."""
    saved = dict(os.environ)
    os.environ.update(case.get("env") or {})
    try:
        report: dict[str, Any] = {
            "authenticator": load_authenticator(case["values"]),
            "spawner": load_spawner(case["values"]),
        }
        if "admit" in case:
            report["admitted"] = [_admitted(case["values"], groups) for groups in case["admit"]]
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
        out = {name: check(case) for name, case in request["cases"].items()}
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
