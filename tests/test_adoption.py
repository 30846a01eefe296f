"""Adopting a site built by hand from the runbook: imports, nothing replaced or duplicated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.config import ConfigError
from sitectl.mockrun import ProgramRun, reveal
from tests.sites import ROOT, run, site
from tests.test_plan import plan, stack_file

SHARE_ID = "3f1c2a9e-5b7d-4c8e-9a0f-1b2c3d4e5f60"
RULE_ID = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d"
ADOPT = {
    "share.existingId": SHARE_ID,
    "share.accessRuleId": RULE_ID,
    "hub.adoptRelease": True,
    "hub.dbStorageClass": "local-path",
    "hub.adoptedChartVersion": "3.1.0",
}
FIXTURES = ROOT / "tests" / "fixtures"
# What the runbook created by hand, by kind and name.
RUNBOOK_OBJECTS = {
    "openstack:sharedfilesystem/share:Share": "k8s-shared",
    "kubernetes:helm.sh/v3:Release": "jhub-release-gitops",
    "kubernetes:core/v1:Namespace": "jhub-srcnet",
}
RUNBOOK_PROVISIONER_NAMES = {
    "local-path-storage",
    "local-path",
    "local-path-provisioner-role",
    "local-path-provisioner-bind",
    "local-path-provisioner-service-account",
    "local-path-config",
    "local-path-provisioner",
}


@pytest.fixture(scope="module")
def adopted() -> ProgramRun:
    return run(site(**ADOPT)).ok()


def _object_name(inputs: dict[str, Any]) -> Any:
    return inputs.get("name") or (inputs.get("metadata") or {}).get("name")


def test_adopted_resources_are_imported_with_the_runbooks_inputs(adopted: ProgramRun) -> None:
    share = adopted.one("openstack:sharedfilesystem/share:Share")
    assert share.import_id == SHARE_ID
    assert share.inputs == {
        "name": "k8s-shared",
        "shareProto": "CEPHFS",
        "shareType": "cephfstype",
        "size": 20480,
    }
    assert share.protect and share.retain_on_delete
    access = adopted.one("openstack:sharedfilesystem/shareAccess:ShareAccess")
    assert access.import_id == f"{SHARE_ID}/{RULE_ID}"
    assert {k: access.inputs[k] for k in ("accessType", "accessTo", "accessLevel")} == {
        "accessType": "cephx",
        "accessTo": "spsrc-k8-cluster00",
        "accessLevel": "rw",
    }
    release = adopted.one("kubernetes:helm.sh/v3:Release")
    assert release.import_id == "jhub-srcnet/jhub-release-gitops"
    assert {k: release.inputs[k] for k in ("chart", "version", "name", "namespace")} == {
        "chart": "jupyterhub",
        "version": "3.1.0",
        "name": "jhub-release-gitops",
        "namespace": "jhub-srcnet",
    }
    assert adopted.named("hub-namespace").import_id == "jhub-srcnet"


def test_nothing_else_is_created_under_the_runbooks_names(adopted: ProgramRun) -> None:
    for res in adopted.resources:
        if not res.custom:
            continue
        name = _object_name(res.inputs)
        if res.type in RUNBOOK_OBJECTS and RUNBOOK_OBJECTS[res.type] == name:
            assert res.import_id, f"{res.name} would create {name} again"
        assert name not in RUNBOOK_PROVISIONER_NAMES, f"{res.name} reuses {name}"
        namespace = (res.inputs.get("metadata") or {}).get("namespace")
        assert namespace != "local-path-storage", f"{res.name} lands in the old provisioner's"


def test_hub_database_keeps_its_class_new_users_get_the_managed_one(adopted: ProgramRun) -> None:
    values = reveal(adopted.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    assert values["hub"]["db"]["pvc"]["storageClassName"] == "local-path"
    assert values["singleuser"]["storage"]["dynamic"]["storageClass"] == "cephfs-shared"


def test_a_new_site_imports_nothing() -> None:
    result = run().ok()
    assert [r.name for r in result.resources if r.import_id] == []
    values = reveal(result.one("kubernetes:helm.sh/v3:Release").inputs["values"])
    assert values["hub"]["db"]["pvc"]["storageClassName"] == "cephfs-shared"


def test_access_rule_needs_its_share() -> None:
    result = run(site(**{"share.accessRuleId": RULE_ID}))
    assert isinstance(result.error, ConfigError)
    assert str(result.error) == (
        f'share.accessRuleId: "{RULE_ID}" adopts a rule of an existing share: '
        "set share.existingId too"
    )


def test_plan_of_the_adoption_lists_imports_and_replaces_nothing(tmp_path: Path) -> None:
    # Pulumi.espsrc.yaml itself with the adoption keys set, as docs/adopting.md's steps have it.
    result = plan(
        "espsrc",
        "--stack-file",
        str(stack_file(tmp_path, site(**ADOPT))),
        "--policy-config",
        str(FIXTURES / "policy-adopt.json"),
        "--out",
        str(tmp_path / "plan"),
        "--json",
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    document = json.loads(result.stdout)
    imports = {r["name"]: r["import"] for r in document["resources"] if r["import"]}
    assert imports == {
        "share-share": SHARE_ID,
        "share-access": f"{SHARE_ID}/{RULE_ID}",
        "hub-namespace": "jhub-srcnet",
        "hub-release": "jhub-srcnet/jhub-release-gitops",
    }
    for res in document["resources"]:
        name = _object_name(res["inputs"])
        if res["type"] in RUNBOOK_OBJECTS and RUNBOOK_OBJECTS[res["type"]] == name:
            assert res["import"], f"{res['name']} would replace the running {name}"
        assert name not in RUNBOOK_PROVISIONER_NAMES
    advisories = [v for v in document["violations"] if v["policy"] == "adopted-resources-changed"]
    assert {v["resource"] for v in advisories} == {"hub-namespace", "hub-release"}
    assert all(v["level"] == "advisory" for v in advisories)
    assert [v for v in document["violations"] if v["level"] == "mandatory"] == []
    # The config for the real preview: the given file plus what is adopted, since
    # policies cannot see import ids.
    preview_config = json.loads((tmp_path / "plan" / "policy-config.json").read_text())
    assert preview_config == {
        **json.loads((FIXTURES / "policy-adopt.json").read_text()),
        "adopted-resources-changed": {"adopted": imports},
    }


def test_a_new_site_gets_no_adoption_policy_config(tmp_path: Path) -> None:
    assert plan("espsrc", "--out", str(tmp_path)).returncode == 0
    assert not (tmp_path / "policy-config.json").exists()


def test_adopting_the_release_needs_the_database_class() -> None:
    changes = {k: v for k, v in ADOPT.items() if k != "hub.dbStorageClass"}
    result = run(site(**changes))
    assert isinstance(result.error, ConfigError)
    assert str(result.error).startswith(
        "hub.dbStorageClass: null is required with adoptRelease: the hub database volume's "
        "class cannot change"
    )
    assert result.resources == []
