"""The jupyterhub-platform program: read the site config, build the components, export."""

import pulumi

from components.config import load_site_config
from components.jupyterhub import JupyterHub, JupyterHubArgs

site, secrets = load_site_config()

hub = JupyterHub(
    "hub",
    JupyterHubArgs(
        hub=site.hub,
        hub_url=site.hub_url,
        storage_class=site.storage.class_name,
        oauth_client_secret=secrets.oauth_client_secret,
    ),
)

pulumi.export("hub_url", hub.hub_url)
pulumi.export("oauth_callback_url", hub.oauth_callback_url)
pulumi.export("namespace", hub.namespace)
pulumi.export("release_status", hub.release_status)
