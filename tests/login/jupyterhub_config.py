"""JupyterHub config for the login tests: loads `hub.config` the way the chart does.

The hub runs as `python -m jupyterhub -f <this file>` with LOGIN_TEST_SITE naming a
JSON file the test wrote: `values` (the chart values that matter here: `hub.baseUrl`
and `hub.config`) and `runtime` (what the chart's Kubernetes objects would provide:
ports, database, proxy, secrets, the test CA).

Order follows z2jh's `jupyterhub_config.py`:
1. settings the chart itself makes (here: local stand-ins for the Kubernetes ones),
   then `hub.baseUrl` into `JupyterHub.base_url`;
2. every `hub.config` section copied into `c` with `c[section].update(...)`, after
   dropping the keys the chart takes from its Secret instead;
3. `hub.extraConfig` entries in name order, as the chart runs them;
4. then what only the test needs.

The hub runs from the chart version's own hub libraries (`.venv-hub/<version>`).
"""

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from jupyterhub.spawner import Spawner

# get_config is put into this file's namespace by JupyterHub's config loader.
c = get_config()  # type: ignore[name-defined]  # noqa: F821

site = json.loads(Path(os.environ["LOGIN_TEST_SITE"]).read_text())
values = site["values"]
runtime = site["runtime"]

# --- 1. What the chart sets before hub.config, with local stand-ins ----------------------
# No Kubernetes: a spawner that runs the user's server as a local process, from the same
# hub libraries (jupyterhub-singleuser on jupyter-server), as root here.
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
c.Spawner.cmd = [runtime["singleuser_command"]]
c.Spawner.args = ["--allow-root"]
c.SimpleLocalProcessSpawner.home_dir_template = runtime["home_dir_template"]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.db_url = runtime["db_url"]
c.JupyterHub.cookie_secret_file = runtime["cookie_secret_file"]
# The chart keeps CryptKeeper.keys in its Secret; auth state needs at least one.
c.CryptKeeper.keys = runtime["crypt_keys"]
# The hub listens on loopback only; its proxy is the public side.
c.JupyterHub.hub_bind_url = runtime["hub_bind_url"]
# The chart runs configurable-http-proxy in its own pod behind the NodePort service;
# here the hub starts it, listening on the node port of every loopback "node".
c.JupyterHub.ip = runtime["proxy_public_ip"]
c.JupyterHub.port = runtime["node_port"]
c.ConfigurableHTTPProxy.should_start = True
c.ConfigurableHTTPProxy.command = runtime["proxy_command"]
c.ConfigurableHTTPProxy.api_url = runtime["proxy_api_url"]
c.ConfigurableHTTPProxy.pid_file = runtime["proxy_pid_file"]

base_url = values.get("hub", {}).get("baseUrl")
if base_url:
    c.JupyterHub.base_url = base_url

# --- 2. hub.config, exactly as z2jh applies it -----------------------------------------------
for section, section_config in values.get("hub", {}).get("config", {}).items():
    cfg = dict(section_config)
    if section == "JupyterHub":
        cfg.pop("proxy_auth_token", None)
        cfg.pop("cookie_secret", None)
        cfg.pop("services", None)
    elif section == "ConfigurableHTTPProxy":
        cfg.pop("auth_token", None)
    elif section == "CryptKeeper":
        cfg.pop("keys", None)
    c[section].update(cfg)

# --- 3. hub.extraConfig, in name order, with `c` in scope (z2jh runs them so) ---------------
for _name, _code in sorted(values.get("hub", {}).get("extraConfig", {}).items()):
    exec(compile(_code, f"<hub.extraConfig.{_name}>", "exec"), {"c": c})  # noqa: S102

# --- 4. Test-only additions -------------------------------------------------------------------
# Trust the test CA for the hub's own calls to the token and userinfo endpoints.
# oauthenticator passes http_request_kwargs to every tornado HTTPRequest; `ca_certs` works
# with both the simple and the curl HTTP client (the chart's hub uses curl, which ignores
# SSL_CERT_FILE). Merged, so any kwargs from hub.config are kept.
request_kwargs = {
    **c.OAuthenticator.get("http_request_kwargs", {}),
    **c.GenericOAuthenticator.get("http_request_kwargs", {}),
}
request_kwargs["ca_certs"] = runtime["ca_certs"]
c.GenericOAuthenticator.http_request_kwargs = request_kwargs

# Land on the hub home page after login: the tests that start a server ask for it.
c.JupyterHub.redirect_to_server = False

# A service token that can read users and their auth state through the REST API.
c.JupyterHub.services = [{"name": "login-test", "api_token": runtime["service_token"]}]
c.JupyterHub.load_roles = [
    {
        "name": "login-test-reader",
        "scopes": ["list:users", "read:users", "admin:auth_state", "servers"],
        "services": ["login-test"],
    }
]

# The chart's hub.services and hub.loadRoles, applied as z2jh's jupyterhub_config.py does:
# each service named by its key, its apiToken (from the chart's Secret) as api_token.
for key, service in runtime["services"].items():
    entry = {k: v for k, v in service.items() if k != "apiToken"}
    entry.setdefault("name", key)
    if service.get("apiToken"):
        entry["api_token"] = service["apiToken"]
    c.JupyterHub.services.append(entry)
for key, role in runtime["load_roles"].items():
    c.JupyterHub.load_roles.append({"name": key, **role})

# User servers, where a test starts one: a real jupyter-server as a local process of this
# machine's user, in its own home under the site's directory (KubeSpawner's pod and its
# volume, stood in for), or a spawn whose claim never binds.
if runtime["spawner"] == "local":
    c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
    c.SimpleLocalProcessSpawner.home_dir_template = runtime["homes"] + "/{username}"
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]
elif runtime["spawner"] == "pending-claim":

    class PendingClaimSpawner(Spawner):
        """Reports the scheduler's event for an unbound claim the way KubeSpawner relays a
        pod's events ("<time> [<type>] <message>"), and never gets ready."""

        async def start(self):
            self._pending = True
            await asyncio.sleep(3600)

        async def poll(self):
            return None if getattr(self, "_pending", False) else 0

        async def stop(self, now=False):
            self._pending = False

        async def progress(self):
            events = [
                "[Normal] pod/jupyter-platform-health-check created",
                "[Warning] 0/3 nodes are available: pod has unbound immediate "
                "PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 "
                "Preemption is not helpful for scheduling.",
            ]
            for i, event in enumerate(events):
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                yield {"progress": 10 * (i + 1), "message": f"{stamp} {event}"}
                await asyncio.sleep(0.2)
            while getattr(self, "_pending", False):
                await asyncio.sleep(0.5)

    c.JupyterHub.spawner_class = PendingClaimSpawner
    # The start request answers 202 at once instead of after the default 10 s.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
c.JupyterHub.log_level = "DEBUG"
