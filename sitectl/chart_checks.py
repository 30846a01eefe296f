"""Checks on the rendered chart: what the site relies on, read from the objects themselves.

The policy pack checks the values (in a real preview it has neither Helm nor the chart);
these check what the chart makes of them, in the plan and in the tests:

- every value the program sets arrives in the chart's effective values (the hub Secret's
  `values.yaml`, which the hub's config code reads);
- the `proxy-public` Service is a NodePort on `hub.nodePort` (HAProxy balances over it);
- the hub database claim and the users' storage class are the stack's;
- the logo file is mounted where `hub.config` points;
- every image in every pod spec is pinned (a tag other than `latest`, or a digest),
  the chart's defaults included;
- no object is both rendered by the chart and created by the program.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from components.config import SiteConfig
from components.hub_values import LOGO_MOUNT_PATH
from sitectl.render import ChartObject, Render


@dataclass(frozen=True)
class Problem:
    check: str
    """Kebab-case name, like a policy's."""
    object: str | None
    """kind/name of the object concerned, if one."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "object": self.object, "message": self.message}


CHECKS = (
    "chart-objects-valid",
    "values-reach-the-chart",
    "proxy-public-on-node-port",
    "stack-storage-classes",
    "logo-mounted",
    "images-pinned",
    "pods-confined",
    "objects-made-once",
)


def checks_for(site: SiteConfig) -> list[str]:
    """The checks that apply to a site: the logo's only where it has one."""
    return [c for c in CHECKS if c != "logo-mounted" or site.hub.logo]


def run_checks(
    render: Render,
    site: SiteConfig,
    program_values: dict[str, Any],
    storage_class: str,
    program_objects: Iterable[tuple[str, str | None, str]],
) -> list[Problem]:
    """Every check of `checks_for(site)` over a render. `program_values` are the values as
    given to Helm (before the fixed markers); `program_objects` are (kind, namespace, name)
    of what the program creates itself."""
    problems = [
        Problem("chart-objects-valid", f"{obj.kind}/{obj.name}", message)
        for obj, message in render.invalid
    ]
    effective = render.effective_values()
    problems += values_reach_the_chart(program_values, effective)
    problems += proxy_public_on_node_port(render, site.hub.node_port)
    problems += stack_storage_classes(
        render, effective, site.hub.db_storage_class or storage_class, storage_class
    )
    if site.hub.logo:
        problems += logo_mounted(render, effective, site_logo_bytes(site.hub.logo))
    problems += images_pinned(render)
    problems += pods_confined(render)
    problems += objects_made_once(render, program_objects)
    return problems


def site_logo_bytes(logo: str) -> bytes:
    from components.config import PROJECT_DIR

    return (PROJECT_DIR / logo).read_bytes()


def _label(obj: ChartObject) -> str:
    return f"{obj.kind}/{obj.name}"


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every scalar and list a map of values sets (lists count whole:
    Helm replaces them, it does not merge them)."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, (*path, str(key)))
    else:
        yield path, value


_MISSING = object()


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal as Helm sees values: every number is a float64 there."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def values_reach_the_chart(
    values: dict[str, Any], effective: dict[str, Any] | None
) -> list[Problem]:
    check = "values-reach-the-chart"
    if effective is None:
        return [Problem(check, None, "the chart rendered no hub Secret with values.yaml")]
    problems = []
    for path, value in _leaves(values):
        if value == {}:
            continue  # an empty map sets nothing: the chart's defaults stay
        got = _at(effective, path)
        if value is None:
            # null removes a chart default: arriving means being gone.
            if got is not _MISSING and got is not None:
                problems.append(
                    Problem(
                        check, None, f"{'.'.join(path)}: set to null, the chart has {_show(got)}"
                    )
                )
        elif got is _MISSING:
            problems.append(
                Problem(
                    check,
                    None,
                    f"{'.'.join(path)}: set to {_show(value)}, missing in the "
                    "chart's effective values",
                )
            )
        elif not _same(value, got):
            problems.append(
                Problem(
                    check,
                    None,
                    f"{'.'.join(path)}: set to {_show(value)}, the chart's "
                    f"effective values have {_show(got)}",
                )
            )
    return problems


def proxy_public_on_node_port(render: Render, node_port: int) -> list[Problem]:
    check = "proxy-public-on-node-port"
    services = render.find(
        "Service",
        lambda o: (
            (o.body.get("metadata") or {}).get("labels", {}).get("component") == "proxy-public"
        ),
    )
    if not services:
        return [Problem(check, None, "the chart rendered no proxy-public Service")]
    problems = []
    for service in services:
        spec = service.body.get("spec") or {}
        ports = [p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)]
        if spec.get("type") != "NodePort":
            problems.append(
                Problem(
                    check,
                    _label(service),
                    f"is of type {spec.get('type')}, not NodePort: "
                    "the site's HAProxy reaches the hub through a NodePort on every node",
                )
            )
        elif node_port not in ports:
            problems.append(
                Problem(
                    check,
                    _label(service),
                    f"has node ports {ports}, not hub.nodePort "
                    f"{node_port}, which the site's HAProxy balances over",
                )
            )
    return problems


def stack_storage_classes(
    render: Render, effective: dict[str, Any] | None, db_class: str, user_class: str
) -> list[Problem]:
    check = "stack-storage-classes"
    problems = []
    db_type = _at(effective or {}, ("hub", "db", "type"))
    claims = render.find("PersistentVolumeClaim", lambda o: o.name.endswith("hub-db-dir"))
    if db_type == "sqlite-pvc" and not claims:
        problems.append(Problem(check, None, "the chart rendered no hub database claim"))
    for claim in claims:
        found = (claim.body.get("spec") or {}).get("storageClassName")
        if found != db_class:
            problems.append(
                Problem(
                    check,
                    _label(claim),
                    f"has storage class {_show(found)}, not the stack's {db_class!r}",
                )
            )
    storage = _at(effective or {}, ("singleuser", "storage"))
    storage = storage if isinstance(storage, dict) else {}
    if storage.get("type") != "dynamic":
        problems.append(
            Problem(
                check,
                None,
                f"singleuser.storage.type is {_show(storage.get('type'))}: "
                "users' volumes would not come from the stack's storage class",
            )
        )
    elif (storage.get("dynamic") or {}).get("storageClass") != user_class:
        found = (storage.get("dynamic") or {}).get("storageClass")
        problems.append(
            Problem(
                check,
                None,
                f"users' volumes get storage class {_show(found)}, not the stack's {user_class!r}",
            )
        )
    return problems


def _pod_specs(obj: ChartObject) -> list[dict[str, Any]]:
    body = obj.body
    spec = body.get("spec") or {}
    if obj.kind == "Pod":
        return [spec]
    if obj.kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = (spec.get("template") or {}).get("spec")
    return [template] if isinstance(template, dict) else []


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in pod.get(key) or []
        if isinstance(c, dict)
    ]


def logo_mounted(render: Render, effective: dict[str, Any] | None, logo: bytes) -> list[Problem]:
    check = "logo-mounted"
    problems = []
    logo_file = _at(effective or {}, ("hub", "config", "JupyterHub", "logo_file"))
    if logo_file != LOGO_MOUNT_PATH:
        problems.append(
            Problem(
                check,
                None,
                f"hub.config.JupyterHub.logo_file is {_show(logo_file)}, not {LOGO_MOUNT_PATH}",
            )
        )
    hubs = render.find(
        "Deployment",
        lambda o: (o.body.get("metadata") or {}).get("labels", {}).get("component") == "hub",
    )
    mounted = False
    for hub in hubs:
        for pod in _pod_specs(hub):
            volumes = {v.get("name"): v for v in pod.get("volumes") or []}
            for container in _containers(pod):
                for mount in container.get("volumeMounts") or []:
                    if mount.get("mountPath") != LOGO_MOUNT_PATH:
                        continue
                    volume = volumes.get(mount.get("name")) or {}
                    secret = (volume.get("secret") or {}).get("secretName")
                    key = mount.get("subPath")
                    mounted = mounted or _secret_holds(render, secret, key, logo)
    if not mounted:
        problems.append(
            Problem(check, None, f"no hub container mounts the site's logo at {LOGO_MOUNT_PATH}")
        )
    return problems


def _secret_holds(render: Render, name: Any, key: Any, content: bytes) -> bool:
    for secret in render.find("Secret", lambda o: o.name == name):
        data = secret.body.get("data") or {}
        if key in data and base64.b64decode(data[key]) == content:
            return True
    return False


def image_pinned(image: str) -> bool:
    """A digest, or a tag other than latest (the tag follows the last path segment)."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    name, sep, tag = last.partition(":")
    return bool(sep and tag and tag != "latest" and name)


def images_pinned(render: Render) -> list[Problem]:
    problems = []
    for obj in render.objects:
        for pod in _pod_specs(obj):
            for container in _containers(pod):
                image = str(container.get("image", ""))
                if not image_pinned(image):
                    problems.append(
                        Problem(
                            "images-pinned",
                            _label(obj),
                            f"container "
                            f"{container.get('name')} runs {image or 'no image'!r}, which is not "
                            "pinned to a tag (other than latest) or a digest",
                        )
                    )
    return problems


# A pod that shares the node's namespaces, mounts its disk or runs privileged can reach
# every user's data and the node itself: the chart's own pods need none of it, so only
# values (hub.extraValues: extraPodSpec, extraVolumes, containerSecurityContext) add it.
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


def pods_confined(render: Render) -> list[Problem]:
    problems = []
    for obj in render.objects:
        for pod in _pod_specs(obj):
            found = [f"{key}: true" for key in _HOST_NAMESPACES if pod.get(key) is True]
            found += [
                f"volume {v.get('name')} is a hostPath ({(v.get('hostPath') or {}).get('path')})"
                for v in pod.get("volumes") or []
                if isinstance(v, dict) and "hostPath" in v
            ]
            for container in _containers(pod):
                context = container.get("securityContext") or {}
                if context.get("privileged") is True:
                    found.append(f"container {container.get('name')} is privileged")
                if context.get("allowPrivilegeEscalation") is True:
                    found.append(f"container {container.get('name')} allows privilege escalation")
            problems += [Problem("pods-confined", _label(obj), what) for what in found]
    return problems


def objects_made_once(
    render: Render, program_objects: Iterable[tuple[str, str | None, str]]
) -> list[Problem]:
    ours = set(program_objects)
    return [
        Problem(
            "objects-made-once",
            _label(obj),
            f"is rendered by the chart and created by the program too"
            f"{' in namespace ' + obj.namespace if obj.namespace else ''}: one would overwrite "
            "the other",
        )
        for obj in render.objects
        if obj.key() in ours
    ]
