"""The chart rendered by a real Helm 3 in the plan, and the checks on its objects.

These need a Helm 3 and the chart package; without either they skip, with the reason the
plan gives (CI, with JHP_REQUIRE_ALL_TESTS=1, has both and refuses skips).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sitectl.chart_checks import (
    image_pinned,
    images_pinned,
    objects_made_once,
    pods_confined,
    proxy_public_on_node_port,
    stack_storage_classes,
    values_reach_the_chart,
)
from sitectl.mockrun import reveal
from sitectl.plan import Plan, PlanError, build_plan, render_chart, write
from sitectl.render import MADE_UP_MARK, REDACTED, ChartObject, Render, schema_version_for
from tests.sites import (
    PROJECT,
    chart_defaults,
    chart_schema,
    deep_merge,
    run,
    site,
    stack_settings,
)

S1 = "planted-oauth-render-7c1e2a"


def stack_file(tmp_path: Path, settings: dict[str, Any], name: str = "test") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in settings.items()}}))
    return path


def plan_of(
    tmp_path: Path, settings: dict[str, Any], secrets: dict[str, str] | None = None
) -> Plan:
    """The plan of a site, its chart rendered; skips where Helm or the chart is missing."""
    plan = build_plan("test", stack_file(tmp_path, settings), secrets or {})
    render_chart(plan, require=False)
    assert plan.chart is not None
    if plan.chart.render is None:
        pytest.skip(f"chart render skipped: {plan.chart.skipped}")
    return plan


def render_error(tmp_path: Path, settings: dict[str, Any]) -> str:
    """The plan error of a site whose chart refuses its values."""
    plan = build_plan("test", stack_file(tmp_path, settings), {})
    try:
        render_chart(plan, require=False)
    except PlanError as err:
        return str(err)
    assert plan.chart is not None
    if plan.chart.render is None:
        pytest.skip(f"chart render skipped: {plan.chart.skipped}")
    raise AssertionError(f"the chart rendered: {plan.chart.problems}")


@pytest.fixture(scope="module", params=["espsrc", "example-vault"])
def stack_plan(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Plan:
    return plan_of(tmp_path_factory.mktemp("render"), stack_settings(request.param))


def test_the_stacks_render_with_no_problem_at_kubernetes_1_30(stack_plan: Plan) -> None:
    assert stack_plan.chart is not None and stack_plan.chart.render is not None
    render = stack_plan.chart.render
    assert (render.kubernetes_version, render.validated_at) == ("1.30", "1.30")
    assert render.validation_note is None
    assert render.invalid == []
    assert stack_plan.chart.problems == []
    logo = ["logo-mounted"] if stack_plan.site and stack_plan.site.hub.logo else []
    assert stack_plan.chart.checks == [
        "chart-objects-valid",
        "values-reach-the-chart",
        "proxy-public-on-node-port",
        "stack-storage-classes",
        *logo,
        "images-pinned",
        "pods-confined",
        "objects-made-once",
    ]
    kinds = render.counts()
    for kind in ("Deployment", "Service", "Secret", "PersistentVolumeClaim", "ConfigMap"):
        assert kinds.get(kind), f"the render of {stack_plan.stack} has no {kind}: {kinds}"


def test_every_value_reaches_the_effective_values(stack_plan: Plan) -> None:
    assert stack_plan.chart is not None and stack_plan.chart.render is not None
    effective = stack_plan.chart.render.effective_values()
    assert effective is not None
    assert effective["proxy"]["service"]["nodePorts"]["http"] == stack_plan.site.hub.node_port  # type: ignore[union-attr]
    # Not vacuous: the same check reports a value the chart did not receive.
    broken = copy.deepcopy(effective)
    broken["singleuser"]["storage"]["capacity"] = "5Gi"
    del broken["hub"]["config"]["GenericOAuthenticator"]["scope"]
    values = stack_plan.chart.render.values
    problems = values_reach_the_chart(values, broken)
    assert [p.message.split(":")[0] for p in problems] == [
        "hub.config.GenericOAuthenticator.scope",
        "singleuser.storage.capacity",
    ]
    # A null removes a chart default: a default still there did not arrive either.
    removing = copy.deepcopy(values)
    removing["singleuser"]["storage"]["capacity"] = None
    (problem,) = values_reach_the_chart(removing, effective)
    capacity = json.dumps(effective["singleuser"]["storage"]["capacity"])
    assert problem.message == f"singleuser.storage.capacity: set to null, the chart has {capacity}"


def _chart_file(tmp_path: Path, plan: Plan, kind: str) -> list[dict[str, Any]]:
    out = tmp_path / "out"
    write(plan, out)
    return [d for d in yaml.safe_load_all((out / "chart" / f"{kind}.yaml").read_text()) if d]


def test_written_objects_are_stable_and_hold_no_secret(tmp_path: Path) -> None:
    secrets = {f"{PROJECT}:oauthClientSecret": S1}
    first = plan_of(tmp_path / "a", site(), secrets)
    second = plan_of(tmp_path / "b", site(), secrets)
    assert first.known_secrets == [S1]
    assert first.chart is not None and first.chart.render is not None
    assert second.chart is not None and second.chart.render is not None
    files = first.chart.render.files()
    assert files == second.chart.render.files(), "two renders of one config differ"
    assert set(files) >= {"chart/deployment.yaml", "chart/secret.yaml", "chart/service.yaml"}
    text = "".join(files.values())
    for form in (S1, base64.b64encode(S1.encode()).decode()):
        assert form not in text
    # The values Helm gets hold placeholders, even though the real secret was given.
    given = json.dumps(first.chart.render.values)
    assert S1 not in given and '"client_secret": "[secret]"' in given
    # What the chart makes up at random is the fixed marker, and Secrets are redacted.
    hub_secret = next(o for o in first.chart.render.objects if o.kind == "Secret")
    data = hub_secret.body["data"]
    for key in ("hub.config.JupyterHub.cookie_secret", "hub.config.CryptKeeper.keys"):
        assert base64.b64decode(data[key]).decode() == MADE_UP_MARK, key
    written = _chart_file(tmp_path, first, "secret")
    assert written and all(set(d["data"].values()) == {REDACTED} for d in written)


def test_a_short_secret_given_to_the_plan_never_reaches_helm(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, site(), {f"{PROJECT}:oauthClientSecret": "s3krt"})
    assert plan.chart is not None and plan.chart.render is not None
    oauth = plan.chart.render.values["hub"]["config"]["GenericOAuthenticator"]
    assert oauth["client_secret"] == "[secret]"
    assert "s3krt" not in json.dumps(plan.chart.render.values)
    write(plan, tmp_path / "out")
    written = yaml.safe_load((tmp_path / "out" / "values.yaml").read_text())
    assert written["hub"]["config"]["GenericOAuthenticator"]["client_secret"] == "[secret]"


def test_plan_json_lists_every_object(stack_plan: Plan) -> None:
    document = stack_plan.document()["chart"]
    assert document["rendered"] is True and document["skipped"] is None
    objects = document["objects"]
    assert len(objects) == sum(document["counts"].values())
    service = next(o for o in objects if o["kind"] == "Service" and o["name"] == "proxy-public")
    assert service["namespace"] == stack_plan.site.hub.namespace  # type: ignore[union-attr]
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    assert role["namespace"] is None and role["file"] == "chart/clusterrole.yaml"


# Values that pass the config, the program and the chart's own schema, which the chart
# itself refuses when it renders: the plan fails with the chart's message (exit 2).
RENDER_ONLY_FAILURES = {
    "cloud-metadata-server": (
        {"singleuser": {"networkPolicy": {"egressAllowRules": {"cloudMetadataServer": True}}}},
        "singleuser.cloudMetadata.blockWithIptables must as of version 3.0.0 not be configured "
        "together with singleuser.networkPolicy.egressAllowRules.cloudMetadataServer",
    ),
    "letsencrypt-without-contact": (
        {"proxy": {"https": {"enabled": True, "hosts": ["notebook.espsrc.iaa.csic.es"]}}},
        "proxy.https.letsencrypt.contactEmail is a required field",
    ),
    "extra-file-without-extension": (
        {
            "hub": {
                "extraFiles": {"extra": {"mountPath": "/etc/jupyterhub/extra", "data": {"a": 1}}}
            }
        },
        "extraFiles entries with 'data' (extra > /etc/jupyterhub/extra) needs to have a "
        "filename extension of .yaml, .yml, .json, or .toml!",
    ),
    "manual-tls-without-cert": (
        {"proxy": {"https": {"enabled": True, "type": "manual"}}},
        "Required configuration missing: proxy.https.manual.cert",
    ),
}


@pytest.mark.parametrize("case", sorted(RENDER_ONLY_FAILURES))
def test_values_only_the_render_catches_fail_the_plan(tmp_path: Path, case: str) -> None:
    extra, message = RENDER_ONLY_FAILURES[case]
    settings = site(**{"hub.extraValues": extra})
    # The chart's schema passes them: only the render can tell.
    values = run(settings).ok().one("kubernetes:helm.sh/v3:Release").inputs["values"]
    merged = deep_merge(chart_defaults(), reveal(values))
    assert not list(jsonschema.Draft7Validator(chart_schema()).iter_errors(merged))
    error = render_error(tmp_path, settings)
    assert error.startswith("chart jupyterhub 3.1.0 refuses the values: execution error at")
    assert message in error
    assert "\n" not in error and "--debug" not in error


# Each check on the rendered objects, made to fire by a value the program passes on.
CHECK_FAILURES = {
    "extra-pod-spec-field": (
        {"hub": {"extraPodSpec": {"bogusField": True}}},
        "chart-objects-valid",
        "Deployment/hub",
        "spec.template.spec: Additional properties are not allowed ('bogusField' was unexpected)",
    ),
    "load-balancer": (
        {"proxy": {"service": {"type": "LoadBalancer"}}},
        "proxy-public-on-node-port",
        "Service/proxy-public",
        "is of type LoadBalancer, not NodePort",
    ),
    "other-node-port": (
        {"proxy": {"service": {"nodePorts": {"http": 31999}}}},
        "proxy-public-on-node-port",
        "Service/proxy-public",
        "has node ports [31999], not hub.nodePort 31090",
    ),
    "db-class": (
        {"hub": {"db": {"pvc": {"storageClassName": "other"}}}},
        "stack-storage-classes",
        "PersistentVolumeClaim/hub-db-dir",
        "has storage class \"other\", not the stack's 'cephfs-shared'",
    ),
    "user-class": (
        {"singleuser": {"storage": {"dynamic": {"storageClass": "other"}}}},
        "stack-storage-classes",
        None,
        "users' volumes get storage class \"other\", not the stack's 'cephfs-shared'",
    ),
    "logo-elsewhere": (
        {"hub": {"extraFiles": {"site-logo": {"mountPath": "/srv/elsewhere.png"}}}},
        "logo-mounted",
        None,
        "no hub container mounts the site's logo at /usr/local/etc/jupyterhub/site-logo.png",
    ),
    "user-storage-none": (
        {"singleuser": {"storage": {"type": "none"}}},
        "stack-storage-classes",
        None,
        "singleuser.storage.type is \"none\": users' volumes would not come from the stack's",
    ),
    "logo-file-elsewhere": (
        {"hub": {"config": {"JupyterHub": {"logo_file": "/srv/other.png"}}}},
        "logo-mounted",
        None,
        'hub.config.JupyterHub.logo_file is "/srv/other.png", not '
        "/usr/local/etc/jupyterhub/site-logo.png",
    ),
    "latest-image": (
        {"proxy": {"chp": {"image": {"tag": "latest"}}}},
        "images-pinned",
        "Deployment/proxy",
        "container chp runs 'jupyterhub/configurable-http-proxy:latest', which is not pinned",
    ),
    "host-network": (
        {"hub": {"extraPodSpec": {"hostNetwork": True}}},
        "pods-confined",
        "Deployment/hub",
        "hostNetwork: true",
    ),
    "host-path": (
        {
            "proxy": {
                "chp": {"extraPodSpec": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}
            }
        },
        "pods-confined",
        "Deployment/proxy",
        "volume root is a hostPath (/)",
    ),
    "privilege-escalation": (
        {"proxy": {"chp": {"containerSecurityContext": {"allowPrivilegeEscalation": True}}}},
        "pods-confined",
        "Deployment/proxy",
        "container chp allows privilege escalation",
    ),
    "privileged": (
        {"hub": {"containerSecurityContext": {"privileged": True}}},
        "pods-confined",
        "Deployment/hub",
        "container hub is privileged",
    ),
}


@pytest.mark.parametrize("case", sorted(CHECK_FAILURES))
def test_each_check_fires(tmp_path: Path, case: str) -> None:
    extra, check, obj, message = CHECK_FAILURES[case]
    plan = plan_of(tmp_path, site(**{"hub.extraValues": extra}))
    assert plan.chart is not None
    problems = [(p.check, p.object) for p in plan.chart.problems if message in p.message]
    assert problems == [(check, obj)], plan.chart.problems


def test_an_object_both_rendered_and_created_is_reported(stack_plan: Plan) -> None:
    assert stack_plan.chart is not None and stack_plan.chart.render is not None
    render = stack_plan.chart.render
    ours = [("Namespace", None, render.namespace), ("ConfigMap", render.namespace, "other")]
    assert objects_made_once(render, ours) == []
    ours.append(("ConfigMap", render.namespace, "hub"))
    (problem,) = objects_made_once(render, ours)
    assert (problem.check, problem.object) == ("objects-made-once", "ConfigMap/hub")


def _bare_render(*bodies: dict[str, Any]) -> Render:
    """A render of these objects alone, made without Helm: for what the chart's own
    templates never produce."""
    objects = [ChartObject(body, "test", "jhub") for body in bodies]
    return Render("jupyterhub", "3.1.0", "r", "jhub", "1.30", None, Path("none"), {}, objects)  # type: ignore[arg-type]


def test_checks_name_what_the_chart_did_not_render() -> None:
    render = _bare_render()
    assert [p.message for p in values_reach_the_chart({"a": 1}, render.effective_values())] == [
        "the chart rendered no hub Secret with values.yaml"
    ]
    assert [p.message for p in proxy_public_on_node_port(render, 31090)] == [
        "the chart rendered no proxy-public Service"
    ]
    effective = {
        "hub": {"db": {"type": "sqlite-pvc"}},
        "singleuser": {"storage": {"type": "dynamic", "dynamic": {"storageClass": "c"}}},
    }
    assert [p.message for p in stack_storage_classes(render, effective, "c", "c")] == [
        "the chart rendered no hub database claim"
    ]


@pytest.mark.parametrize("kind", ["Pod", "CronJob"])
def test_pod_checks_read_bare_pods_and_cron_jobs(kind: str) -> None:
    """The chart renders neither today; values (or a later chart) can add them."""
    pod = {"hostPID": True, "containers": [{"name": "c", "image": "busybox"}]}
    spec = pod if kind == "Pod" else {"jobTemplate": {"spec": {"template": {"spec": pod}}}}
    render = _bare_render({"kind": kind, "metadata": {"name": "x"}, "spec": spec})
    assert [(p.object, p.message) for p in pods_confined(render)] == [
        (f"{kind}/x", "hostPID: true")
    ]
    assert [p.object for p in images_pinned(render)] == [f"{kind}/x"]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("quay.io/jupyter/minimal-notebook:2025-11-10", True),
        ("registry.k8s.io/pause:3.9", True),
        ("localhost:5000/hub@sha256:" + "a" * 64, True),
        ("localhost:5000/hub", False),
        ("jupyterhub/k8s-hub", False),
        ("jupyterhub/k8s-hub:latest", False),
        ("", False),
    ],
)
def test_image_pinned(image: str, pinned: bool) -> None:
    assert image_pinned(image) is pinned


def test_an_older_site_is_validated_at_the_nearest_newer_schemas(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, site(**{"site.kubernetesVersion": "1.24"}))
    assert plan.chart is not None and plan.chart.render is not None
    render = plan.chart.render
    assert (render.kubernetes_version, render.validated_at) == ("1.24", "1.25")
    assert render.validation_note == (
        "kubernetes-validate has no schemas for Kubernetes 1.24; validated against 1.25, "
        "the nearest version it has"
    )
    assert plan.chart.problems == []


def test_schema_versions_beyond_the_package() -> None:
    assert schema_version_for("1.30.6")[0] == "1.30"
    newest = schema_version_for("1.99")[0]
    assert newest.startswith("1.") and int(newest.split(".")[1]) >= 30
