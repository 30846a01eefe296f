"""Shared storage under mocks: the share, the node mounts, the storage class, their graph."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from components.jupyterhub import JupyterHub
from components.node_scripts import mount_triggers
from sitectl.manifests import is_kubernetes_object, manifest
from sitectl.mockrun import ProgramRun, Secret, contains_secret, fake_cephx_key, redact, reveal
from tests.sites import SSH_KEY, run, site, with_hosts
from tools.graph import dependency_graph, depends_on, longest_chain

SHARE = "openstack:sharedfilesystem/share:Share"
ACCESS = "openstack:sharedfilesystem/shareAccess:ShareAccess"
COMMAND = "command:remote:Command"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
RELEASE = "kubernetes:helm.sh/v3:Release"
CLUSTER_SCOPED = (
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
    STORAGE_CLASS,
    "kubernetes:core/v1:Namespace",
)
K3S_NAMES = {
    "local-path",
    "local-path-provisioner-role",
    "local-path-provisioner-bind",
    "local-path-storage",
    "kube-system",
}


@pytest.fixture(scope="module")
def espsrc() -> ProgramRun:
    return run().ok()


def test_espsrc_registers_what_the_issue_lists(espsrc: ProgramRun) -> None:
    counts: dict[str, int] = {}
    for res in espsrc.resources:
        counts[res.type] = counts.get(res.type, 0) + 1
    assert counts[SHARE] == 1
    assert counts[ACCESS] == 1
    assert counts[COMMAND] == 3
    assert counts[STORAGE_CLASS] == 1
    assert counts[RELEASE] == 1
    for kind in (
        "Deployment",
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
    ):
        assert any(r.type.endswith(f":{kind}") for r in espsrc.resources), kind


def test_share_is_protected_and_retained(espsrc: ProgramRun) -> None:
    share = espsrc.one(SHARE)
    assert share.protect, share.name
    assert share.retain_on_delete, share.name
    assert share.import_id is None
    assert share.inputs == {
        "name": "k8s-shared",
        "shareProto": "CEPHFS",
        "shareType": "cephfstype",
        "size": 20480,
    }
    access = espsrc.one(ACCESS)
    assert access.inputs["accessType"] == "cephx"
    assert access.inputs["accessTo"] == "spsrc-k8-cluster00"
    assert access.inputs["accessLevel"] == "rw"
    assert share.urn in espsrc.direct_dependencies(access)


# What holds users' data, by URN. Renaming a component or a child, or moving it under
# another parent, changes its URN, and `pulumi up` would then create a new, empty share and
# mount the nodes on it (the protected old one only makes the update fail at its end).
# Give such a resource an alias (ResourceOptions(aliases=[...])) before changing this list.
_STACK = "urn:pulumi:espsrc::jupyterhub-platform::"
DATA_URNS = {
    _STACK + "jupyterhub-platform:storage:CephFSShare$openstack:sharedfilesystem/share:Share"
    "::share-share",
    _STACK + "jupyterhub-platform:hub:JupyterHub$kubernetes:core/v1:Namespace::hub-namespace",
}


def test_what_holds_users_data_keeps_its_urn(espsrc: ProgramRun) -> None:
    missing = DATA_URNS - {r.urn for r in espsrc.resources}
    assert not missing, f"renamed without an alias: {missing}"


def test_adopting_an_existing_share_imports_it() -> None:
    share_id = "0f611fdf-4c5a-400b-b45a-95be2481333b"
    result = run(site(**{"share.existingId": share_id})).ok()
    share = result.one(SHARE)
    assert share.import_id == share_id
    assert share.protect and share.retain_on_delete
    assert len(result.by_type(SHARE)) == 1, "imported, not created beside it"


def test_export_path_output_is_the_preferred_location(espsrc: ProgramRun) -> None:
    share = espsrc.one(SHARE)
    [location] = share.outputs["exportLocations"]
    assert espsrc.outputs["share_export_path"] == location["path"]
    assert "exportLocations" in share.fake_outputs


def test_preferred_export_path_picks_the_preferred_else_the_first() -> None:
    from components.share import preferred_export_path

    class Loc:
        def __init__(self, path: str, preferred: str) -> None:
            self.path, self.preferred = path, preferred

    a = "10.0.0.1:6789:/volumes/_nogroup/a/a"
    b = "10.0.0.2:6789,10.0.0.3:6789:/volumes/_nogroup/b/b"
    assert preferred_export_path([Loc(a, "false"), Loc(b, "true")]) == b
    assert preferred_export_path([Loc(a, "false"), Loc(b, "false")]) == a
    with pytest.raises(ValueError, match="no export location"):
        preferred_export_path([])
    with pytest.raises(ValueError, match="is not of the form"):
        preferred_export_path([Loc("10.0.0.1:/x;reboot", "true")])


def test_one_independent_mount_per_node(espsrc: ProgramRun) -> None:
    commands = espsrc.by_type(COMMAND)
    assert sorted(c.name for c in commands) == [
        "mounts-k8s-master-0",
        "mounts-k8s-workers-1",
        "mounts-k8s-workers-2",
    ]
    hosts = sorted(reveal(c.inputs["connection"])["host"] for c in commands)
    assert hosts == ["192.168.250.195", "192.168.250.214", "192.168.250.83"]
    graph = dependency_graph(espsrc)
    urns = {c.urn for c in commands}
    for c in commands:
        assert not graph[c.urn] & urns, f"{c.name} waits for another mount"


def test_mounts_are_replaced_by_deleting_first(espsrc: ProgramRun) -> None:
    for c in espsrc.by_type(COMMAND):
        assert c.delete_before_replace, c.name
        export = espsrc.outputs["share_export_path"]
        assert c.inputs["triggers"] == mount_triggers(
            export, "spsrc-k8-cluster00", "/mnt/k8s-shared", "kernel"
        ), c.name


def test_mount_triggers_take_the_monitors_as_a_set() -> None:
    """Manila listing the same monitors in another order must not replace (and so drain)
    every node's mount; another path, monitor, user, mount path or client must."""
    path = "/volumes/_nogroup/9f1c/6e33"
    base = mount_triggers(f"10.0.0.1:6789,10.0.0.2:6789:{path}", "u", "/mnt/s", "kernel")
    assert base == [path, "10.0.0.1:6789,10.0.0.2:6789", "u", "/mnt/s", "kernel"]
    same = mount_triggers(f"10.0.0.2:6789,10.0.0.1:6789:{path}", "u", "/mnt/s", "kernel")
    assert same == base
    for other in (
        mount_triggers(f"10.0.0.1:6789,10.0.0.3:6789:{path}", "u", "/mnt/s", "kernel"),
        mount_triggers(f"10.0.0.1:6789,10.0.0.2:6789:{path}x", "u", "/mnt/s", "kernel"),
        mount_triggers(f"10.0.0.1:6789,10.0.0.2:6789:{path}", "v", "/mnt/s", "kernel"),
        mount_triggers(f"10.0.0.1:6789,10.0.0.2:6789:{path}", "u", "/mnt/t", "kernel"),
        mount_triggers(f"10.0.0.1:6789,10.0.0.2:6789:{path}", "u", "/mnt/s", "fuse"),
    ):
        assert other != base


def test_mount_commands_run_the_scripts_with_the_key_on_stdin(espsrc: ProgramRun) -> None:
    key = fake_cephx_key("share-access")
    for c in espsrc.by_type(COMMAND):
        create, delete = c.inputs["create"], c.inputs["delete"]
        assert create.startswith("sudo -n bash -c "), "sshUser ubuntu runs through sudo -n"
        assert "MOUNT_PATH=/mnt/k8s-shared" in create
        assert "CEPH_USER=spsrc-k8-cluster00" in create
        assert "unmount-cephfs" in delete or "cephfs-unmount" in delete
        assert key not in create + delete
        assert "environment" not in c.inputs, "values never travel as SSH environment"
        assert isinstance(c.inputs["stdin"], Secret)
        assert reveal(c.inputs["stdin"]) == key
        assert c.inputs["logging"] == "stdoutAndStderr"


def test_each_mount_step_records_an_owner_of_its_own(espsrc: ProgramRun) -> None:
    """Create and delete name the same owner, unique per stack and step (issue 17)."""
    owners = set()
    for c in espsrc.by_type(COMMAND):
        owner = f"OWNER=jupyterhub-platform/espsrc/{c.name}\n"
        assert owner in c.inputs["create"] and owner in c.inputs["delete"], c.name
        owners.add(owner)
    assert len(owners) == len(espsrc.by_type(COMMAND))


def test_keys_are_secrets_everywhere(espsrc: ProgramRun) -> None:
    access = espsrc.one(ACCESS)
    assert isinstance(access.outputs["accessKey"], Secret), "the cephx key is a secret output"
    key = reveal(access.outputs["accessKey"])
    for res in espsrc.resources:
        plain = json.dumps(redact(res.inputs))
        assert key not in plain, res.name
        assert SSH_KEY not in plain and SSH_KEY.splitlines()[1] not in plain, res.name
    for c in espsrc.by_type(COMMAND):
        assert isinstance(c.inputs["connection"], Secret), c.name
        assert reveal(c.inputs["connection"])["privateKey"] == SSH_KEY


def test_connection_options() -> None:
    host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ1c3RlZC1ub3QtYS1yZWFsLWtleS0wMDAwMDAw"
    bastion_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJhc3Rpb24tbm90LWEtcmVhbC1rZXktMDAw"
    result = run(
        site(
            **{
                "nodes.sshUser": "root",
                "nodes.hosts[0].port": 2222,
                "nodes.hosts[0].hostKey": host_key,
                "nodes.bastion": {
                    "host": "bastion.example.org",
                    "user": "jump",
                    "hostKey": bastion_key,
                },
            }
        )
    ).ok()
    first = result.named("mounts-k8s-master-0")
    conn = reveal(first.inputs["connection"])
    assert conn["port"] == 2222 and conn["hostKey"] == host_key and conn["user"] == "root"
    assert conn["proxy"] == {
        "host": "bastion.example.org",
        "port": 22,
        "user": "jump",
        "privateKey": SSH_KEY,
        "hostKey": bastion_key,
        "dialErrorLimit": 4,
        "perDialTimeout": 15,
    }
    assert first.inputs["create"].startswith("bash -c "), "root needs no sudo"
    second = reveal(result.named("mounts-k8s-workers-1").inputs["connection"])
    assert second["port"] == 22 and "hostKey" not in second


def test_storage_class_and_release_wait_for_every_mount(espsrc: ProgramRun) -> None:
    graph = dependency_graph(espsrc)
    sc = espsrc.one(STORAGE_CLASS)
    release = espsrc.one(RELEASE)
    deployment = espsrc.one("kubernetes:apps/v1:Deployment")
    for c in espsrc.by_type(COMMAND):
        assert c.urn in graph[sc.urn], f"{sc.name} waits directly for {c.name}"
        assert c.urn in graph[deployment.urn], f"provisioner waits for {c.name}"
        assert depends_on(graph, release.urn, c.urn), f"release waits for {c.name}"
    assert sc.urn in graph[release.urn]


def test_storage_class_is_its_own_not_k3s(espsrc: ProgramRun) -> None:
    for res in espsrc.resources:
        if res.type in CLUSTER_SCOPED:
            assert res.inputs["metadata"]["name"] not in K3S_NAMES, res.name
        if res.type == "kubernetes:core/v1:Namespace":
            assert res.inputs["metadata"]["name"] != "kube-system"
    sc = espsrc.one(STORAGE_CLASS)
    assert sc.inputs["provisioner"] != "rancher.io/local-path"
    assert sc.inputs["provisioner"] == "jupyterhub-platform/cephfs-shared"
    assert sc.inputs["reclaimPolicy"] == "Retain"
    assert sc.inputs["volumeBindingMode"] == "Immediate"
    deployment = espsrc.one("kubernetes:apps/v1:Deployment")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    assert command[command.index("--provisioner-name") + 1] == sc.inputs["provisioner"]
    assert container["image"] == "docker.io/rancher/local-path-provisioner:v0.0.37"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_provisioner_config_uses_the_shared_path(espsrc: ProgramRun) -> None:
    config_map = espsrc.named("storage-config")
    config = json.loads(config_map.inputs["data"]["config.json"])
    assert config == {"sharedFileSystemPath": "/mnt/k8s-shared", "nodePathMap": []}
    assert "SHARED_PATH=/mnt/k8s-shared" in config_map.inputs["data"]["setup"]
    assert "busybox:1.37.0" in config_map.inputs["data"]["helperPod.yaml"]


def test_mount_client_from_config_replaces_the_mounts() -> None:
    kernel = run().ok().named("mounts-k8s-master-0")
    fuse = run(site(**{"nodes.mountClient": "fuse"})).ok().named("mounts-k8s-master-0")
    assert "MOUNT_CLIENT=kernel" in kernel.inputs["create"]
    assert "MOUNT_CLIENT=fuse" in fuse.inputs["create"]
    assert "kernel" in kernel.inputs["triggers"] and "fuse" in fuse.inputs["triggers"]


def test_reclaim_policy_from_config() -> None:
    result = run(site(**{"storage.reclaimPolicy": "Delete"})).ok()
    assert result.one(STORAGE_CLASS).inputs["reclaimPolicy"] == "Delete"


def test_hub_uses_the_managed_storage_class(espsrc: ProgramRun) -> None:
    values = reveal(espsrc.one(RELEASE).inputs["values"])
    name = espsrc.one(STORAGE_CLASS).inputs["metadata"]["name"]
    assert values["hub"]["db"]["pvc"]["storageClassName"] == name
    assert values["singleuser"]["storage"]["dynamic"]["storageClass"] == name
    assert espsrc.outputs["storage_class"] == name


def test_children_are_parented_and_named_after_their_component(espsrc: ProgramRun) -> None:
    by_urn = espsrc.by_urn()
    for res in espsrc.resources:
        if not res.custom:
            continue
        parent = by_urn.get(res.parent or "")
        assert parent is not None and not parent.custom, f"{res.name} has no component parent"
        assert res.name.startswith(f"{parent.name}-"), res.name
    assert JupyterHub.__name__ in {r.type.rsplit(":", 1)[-1] for r in espsrc.resources}


def test_provisioner_objects_validate_against_kubernetes_1_30(espsrc: ProgramRun) -> None:
    objects = [r for r in espsrc.resources if is_kubernetes_object(r)]
    assert len(objects) >= 9
    for res in objects:
        kubernetes_validate.validate(manifest(res), desired_version="1.30", strict=True)


def test_kubernetes_validation_is_not_vacuous(espsrc: ProgramRun) -> None:
    deployment = manifest(espsrc.one("kubernetes:apps/v1:Deployment"))
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, desired_version="1.30", strict=True)


def test_deploy_graph_depth_does_not_grow_with_nodes() -> None:
    small = dependency_graph(run(with_hosts(3)).ok())
    large_run = run(with_hosts(100)).ok()
    large = dependency_graph(large_run)
    assert len(large_run.by_type(COMMAND)) == 100
    assert longest_chain(small) == longest_chain(large)
    assert not contains_secret(large_run.outputs["storage_class"])


def test_enforce_capacity_reaches_the_nodes_and_the_provisioner(espsrc: ProgramRun) -> None:
    def setup_script(result: ProgramRun) -> str:
        [config] = [
            r for r in result.by_type("kubernetes:core/v1:ConfigMap") if r.name == "storage-config"
        ]
        return str(config.inputs["data"]["setup"])

    assert "\nENFORCE_CAPACITY=no\n" in setup_script(espsrc)
    for c in espsrc.by_type(COMMAND):
        assert "\nENFORCE_CAPACITY=no\n" in c.inputs["create"], c.name
    on = run(site(**{"storage.enforceCapacity": True, "storage.helperImage": "busybox:1.36.1"}))
    on.ok()
    assert "\nENFORCE_CAPACITY=yes\n" in setup_script(on)
    for c in on.by_type(COMMAND):
        assert "\nENFORCE_CAPACITY=yes\n" in c.inputs["create"], c.name
    [config] = [r for r in on.by_type("kubernetes:core/v1:ConfigMap") if r.name == "storage-config"]
    assert "image: busybox:1.36.1" in config.inputs["data"]["helperPod.yaml"]
    deployment = on.one("kubernetes:apps/v1:Deployment")
    command = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[command.index("--helper-image") + 1] == "busybox:1.36.1"


def test_helper_image_must_be_pinned() -> None:
    result = run(site(**{"storage.helperImage": "busybox"}))
    assert result.error is not None
    assert str(result.error).startswith("storage.helperImage: ")
