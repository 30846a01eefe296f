"""The jupyterhub-platform program: read the site config, build the components, export."""

import pulumi

from components.config import load_site_config
from components.haproxy import haproxy_config
from components.jupyterhub import JupyterHub, JupyterHubArgs
from components.node_mounts import NodeMounts, NodeMountsArgs
from components.share import CephFSShare, CephFSShareArgs
from components.storage_class import SharedStorageClass, SharedStorageClassArgs, volume_owners

site, secrets = load_site_config()

share = CephFSShare("share", CephFSShareArgs(share=site.share))
mounts = NodeMounts(
    "mounts",
    NodeMountsArgs(
        nodes=site.nodes,
        export_path=share.export_path,
        ceph_user=share.ceph_user,
        access_key=share.access_key,
        ssh_private_key=secrets.ssh_private_key,
        enforce_capacity=site.storage.enforce_capacity,
    ),
)
storage = SharedStorageClass(
    "storage",
    SharedStorageClassArgs(
        storage=site.storage,
        shared_path=site.nodes.mount_path,
        volume_owners=volume_owners(site.hub),
        mounts=[mounts],
    ),
)
hub = JupyterHub(
    "hub",
    JupyterHubArgs(
        hub=site.hub,
        hub_url=site.hub_url,
        kubernetes_version=site.site.kubernetes_version,
        storage_class=storage.class_name,
        oauth_client_secret=secrets.oauth_client_secret,
        vault=site.secrets.vault,
        release_depends_on=[storage],
    ),
)

pulumi.export("hub_url", hub.hub_url)
pulumi.export("oauth_callback_url", hub.oauth_callback_url)
pulumi.export("namespace", hub.namespace)
pulumi.export("release_status", hub.release_status)
pulumi.export("share_export_path", share.export_path)
pulumi.export("storage_class", storage.class_name)
pulumi.export("haproxy_config", haproxy_config(site))
# Secret: `sitectl verify --spawn` reads it with `pulumi stack output --show-secrets`.
pulumi.export("health_check_token", hub.health_check_token)
