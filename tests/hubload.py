"""Load the generated `hub.config` the way the chart's hub does, into the hub's own classes.

The chart's `jupyterhub_config.py` copies each section of `hub.config` into the traitlets
config (`c[section].update(values)`) and builds KubeSpawner's settings from `singleuser`.
These helpers do the same with the library versions the chart's hub image runs, and collect
every warning the libraries log or emit while doing it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from traitlets.config import Config


def traitlets_config(values: dict[str, Any]) -> Config:
    c = Config()
    for section, settings in values["hub"].get("config", {}).items():
        c[section].update(settings)
    singleuser = values.get("singleuser", {})
    image = singleuser.get("image")
    if image:
        c.KubeSpawner.image = f"{image['name']}:{image['tag']}"
    if "profileList" in singleuser:
        c.KubeSpawner.profile_list = singleuser["profileList"]
    if "defaultUrl" in singleuser:
        c.KubeSpawner.default_url = singleuser["defaultUrl"]
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
        # Garbage collection may finalize an unrelated object (an event loop another test
        # left) inside the block; that is not something the config load said.
        handler.records.extend(
            str(w.message) for w in caught if not issubclass(w.category, ResourceWarning)
        )
    finally:
        root.removeHandler(handler)


def load_authenticator(values: dict[str, Any]) -> tuple[Any, list[str]]:
    """The authenticator the hub would build from these values, and the warnings doing so."""
    from jupyterhub.app import JupyterHub

    c = traitlets_config(values)
    with collected_warnings() as logged:
        app = JupyterHub(config=c)
        app.log.propagate = True
        authenticator = app.authenticator_class(parent=app, config=c)
    return authenticator, logged


_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: test, user: {token: not-a-real-token}}]
contexts: [{name: test, context: {cluster: test, user: test}}]
current-context: test
"""


def load_spawner(values: dict[str, Any], kubeconfig_dir: Path) -> tuple[Any, list[str]]:
    """KubeSpawner configured from these values (it only reads a kubeconfig, never calls it)."""
    from kubernetes_asyncio.config import kube_config
    from kubespawner import KubeSpawner

    kubeconfig = kubeconfig_dir / "kubeconfig"
    kubeconfig.write_text(_KUBECONFIG)
    # The client reads $KUBECONFIG once, when first imported; point it at ours either way.
    os.environ["KUBECONFIG"] = str(kubeconfig)
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)
    c = traitlets_config(values)

    async def build() -> Any:
        # KubeSpawner makes its API client in __init__, which needs a running loop.
        return KubeSpawner(config=c, _mock=True)

    loop = asyncio.new_event_loop()
    try:
        with collected_warnings() as logged:
            spawner = loop.run_until_complete(build())
        # The spawner's client keeps a housekeeping task; end it before closing the loop.
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    return spawner, logged
