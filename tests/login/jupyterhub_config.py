"""JupyterHub config for the login tests: loads `hub.config` the way chart 3.1.0 does.

The hub runs as `python -m jupyterhub -f <this file>` with LOGIN_TEST_SITE naming a
JSON file the test wrote: `values` (the chart values that matter here: `hub.baseUrl`
and `hub.config`) and `runtime` (what the chart's Kubernetes objects would provide:
ports, database, proxy, secrets, the test CA).

Order follows z2jh's `jupyterhub_config.py`:
1. settings the chart itself makes (here: local stand-ins for the Kubernetes ones),
   then `hub.baseUrl` into `JupyterHub.base_url`;
2. every `hub.config` section copied into `c` with `c[section].update(...)`, after
   dropping the keys the chart takes from its Secret instead;
3. then, like `hub.extraConfig`, what only the test needs.
"""

import json
import os
from pathlib import Path

# get_config is put into this file's namespace by JupyterHub's config loader.
c = get_config()  # type: ignore[name-defined]  # noqa: F821

site = json.loads(Path(os.environ["LOGIN_TEST_SITE"]).read_text())
values = site["values"]
runtime = site["runtime"]

# --- 1. What the chart sets before hub.config, with local stand-ins ----------------------
# No Kubernetes: a local spawner class. The tests never start a user server.
c.JupyterHub.spawner_class = "jupyterhub.spawner.SimpleLocalProcessSpawner"
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

# --- 3. Test-only additions (the place of hub.extraConfig) -----------------------------------
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

# Land on the hub home page after login: the default would start a user server,
# which needs Kubernetes and is not what these tests prove.
c.JupyterHub.redirect_to_server = False

# A service token that can read users and their auth state through the REST API.
c.JupyterHub.services = [{"name": "login-test", "api_token": runtime["service_token"]}]
c.JupyterHub.load_roles = [
    {
        "name": "login-test-reader",
        "scopes": ["list:users", "read:users", "admin:auth_state"],
        "services": ["login-test"],
    }
]
c.JupyterHub.log_level = "DEBUG"
