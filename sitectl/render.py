"""The chart render: every object the Helm release will make, as Helm 3 renders it.

`helm template` runs with the release's name, namespace and chart version, the exact
values the program passes (each secret replaced by a placeholder, always: the real ones
never reach Helm), and `--kube-version` from `site.kubernetesVersion`. What it catches
that the values schema cannot: the chart's own `fail` calls (in `NOTES.txt`, for removed
settings), template errors, and objects the values never reach.

Helm renders client-side here, so the chart's `lookup` finds nothing and it makes up a
cookie secret, crypt keys and service tokens afresh on each render. Those values are given
to Helm as a fixed marker instead (only where the program leaves them unset, as it does):
the objects, and the checksums of them in pod annotations, are then the same on every
run, and none holds a secret. In the written files every Secret's data is redacted too.

Every object is validated against the Kubernetes API schemas (kubernetes-validate's, in
their strict form: an unknown field is an error) of the site's version, or of the nearest
newer version the package has, which the plan then names.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from sitectl.helm import Helm, helm_environment

# libyaml where PyYAML has it: a render is a few thousand lines.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
# What stands in for the values the chart would make up at random (see the docstring).
MADE_UP_MARK = "offline-plan-fixed-marker-made-up-by-the-chart"
REDACTED = "[redacted]"
HELM_TIMEOUT_SECONDS = 120.0
# Kinds the API serves outside namespaces: their objects get no namespace in the plan.
CLUSTER_SCOPED = frozenset(
    {
        "APIService",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
    }
)


class RenderError(Exception):
    """Helm refused the values or the chart failed to render; the message is Helm's."""


@dataclass(frozen=True)
class ChartObject:
    """One object of the render, as Helm made it (Secrets unredacted, in memory only)."""

    body: dict[str, Any]
    source: str
    """The chart template it came from, e.g. jupyterhub/templates/hub/deployment.yaml."""
    namespace: str | None
    """Where it lands: its own namespace, the release's, or None if cluster-scoped."""

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.body.get("metadata") or {}).get("name", ""))

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    def key(self) -> tuple[str, str | None, str]:
        return (self.kind, self.namespace, self.name)


@dataclass
class Render:
    """A chart rendered for a release."""

    chart: str
    version: str
    release: str
    namespace: str
    kubernetes_version: str
    helm: Helm
    package: Path
    values: dict[str, Any]
    """The values as given to Helm: the program's, secrets as placeholders, plus markers."""
    objects: list[ChartObject]
    validated_at: str = ""
    """The Kubernetes version whose API schemas the objects were validated against."""
    invalid: list[tuple[ChartObject, str]] = field(default_factory=list)

    @property
    def validation_note(self) -> str | None:
        if self.validated_at and self.validated_at != self.kubernetes_version:
            return (
                f"kubernetes-validate has no schemas for Kubernetes {self.kubernetes_version}; "
                f"validated against {self.validated_at}, the nearest version it has"
            )
        return None

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(o.kind for o in self.objects).items()))

    def find(self, kind: str, predicate: Any = None) -> list[ChartObject]:
        return [o for o in self.objects if o.kind == kind and (predicate is None or predicate(o))]

    def effective_values(self) -> dict[str, Any] | None:
        """The values the chart's own config code reads: the hub Secret's `values.yaml`."""
        for secret in self.find("Secret"):
            data = secret.body.get("data") or {}
            if "values.yaml" in data:
                text = base64.b64decode(data["values.yaml"]).decode()
                loaded = yaml.load(text, _SAFE_LOADER)  # noqa: S506 (safe loader)
                return loaded if isinstance(loaded, dict) else None
        return None

    def files(self) -> dict[str, str]:
        """`chart/<kind>.yaml` -> the objects of that kind, Secret data redacted."""
        by_kind: dict[str, list[ChartObject]] = {}
        for obj in self.objects:
            by_kind.setdefault(obj.kind, []).append(obj)
        files = {}
        for kind, objects in sorted(by_kind.items()):
            docs = [
                f"# Source: {o.source}\n" + _dump(redacted(o.body))
                for o in sorted(objects, key=lambda o: (o.namespace or "", o.name))
            ]
            files[f"chart/{kind.lower()}.yaml"] = "---\n".join(docs)
        return files

    def entries(self) -> list[dict[str, Any]]:
        """plan.json's list of the objects."""
        return [
            {
                "kind": o.kind,
                "apiVersion": o.api_version,
                "name": o.name,
                "namespace": o.namespace,
                "source": o.source,
                "file": f"chart/{o.kind.lower()}.yaml",
            }
            for o in sorted(self.objects, key=lambda o: (o.kind, o.namespace or "", o.name))
        ]


def _dump(data: Any) -> str:
    return str(yaml.dump(data, Dumper=_SAFE_DUMPER, sort_keys=False, width=100))


def redacted(body: dict[str, Any]) -> dict[str, Any]:
    """An object as written: a Secret keeps its keys, never its data."""
    if body.get("kind") != "Secret":
        return body
    out = dict(body)
    for key in ("data", "stringData"):
        if isinstance(out.get(key), dict):
            out[key] = {k: REDACTED for k in out[key]}
    return out


def with_fixed_made_up_values(values: dict[str, Any]) -> dict[str, Any]:
    """The values plus a fixed marker for each value the chart would make up at random.

    These are the chart's `lookup` fallbacks (templates/hub/_helpers-passwords.tpl of every
    supported version): proxy token, cookie secret, CryptKeeper keys, service API tokens.
    A value the program sets is kept.
    """
    out = json.loads(json.dumps(values))
    hub = out.setdefault("hub", {})
    config = hub.setdefault("config", {}) if isinstance(hub, dict) else {}
    proxy = out.setdefault("proxy", {})
    if not _dig(config, "ConfigurableHTTPProxy", "auth_token") and not proxy.get("secretToken"):
        proxy["secretToken"] = MADE_UP_MARK
    if not _dig(config, "JupyterHub", "cookie_secret") and not hub.get("cookieSecret"):
        hub["cookieSecret"] = MADE_UP_MARK
    if not _dig(config, "CryptKeeper", "keys"):
        config.setdefault("CryptKeeper", {})["keys"] = [MADE_UP_MARK]
    services = hub.get("services")
    if isinstance(services, dict):
        for service in services.values():
            if isinstance(service, dict) and not (
                service.get("apiToken") or service.get("api_token")
            ):
                service["apiToken"] = MADE_UP_MARK
    return out


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def helm_message(stderr: str) -> str:
    """Helm's error on one line: the chart's `fail` text spans many, with banners."""
    lines = [line.strip(" #\t") for line in stderr.splitlines()]
    text = " ".join(line for line in lines if line)
    text = re.sub(r"\s+", " ", text).removeprefix("Error: ")
    # Advice for Helm's own command line, which the operator did not type.
    return text.replace("Use --debug flag to render out invalid YAML", "").strip()


def template(
    helm: Helm,
    package: Path,
    *,
    release: str,
    namespace: str,
    version: str,
    kubernetes_version: str,
    values: dict[str, Any],
) -> str:
    """`helm template` of the package with these values; its YAML, or RenderError."""
    with tempfile.TemporaryDirectory(prefix="jhp-render-") as tmp:
        values_file = Path(tmp) / "values.json"  # JSON is YAML, and needs no quoting rules
        values_file.write_text(json.dumps(values))
        # --skip-tests: the release installs no test hooks' objects either.
        args = [
            helm.path,
            "template",
            release,
            str(package),
            "--namespace",
            namespace,
            "--version",
            version,
            "--kube-version",
            kubernetes_version,
            "--values",
            str(values_file),
            "--skip-tests",
        ]
        try:
            done = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=HELM_TIMEOUT_SECONDS,
                check=False,
                # A home of its own: no repositories, plugins or registry logins of the
                # operator's take part in rendering a local package.
                env={
                    **helm_environment(),
                    "HOME": tmp,
                    "HELM_CACHE_HOME": tmp,
                    "HELM_CONFIG_HOME": tmp,
                    "HELM_DATA_HOME": tmp,
                },
                cwd=tmp,
            )
        except (OSError, subprocess.SubprocessError) as err:
            raise RenderError(f"helm template did not run: {err}") from None
    if done.returncode != 0:
        raise RenderError(helm_message(done.stderr) or f"helm exited with {done.returncode}")
    return done.stdout


_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


def parse_objects(text: str, namespace: str) -> list[ChartObject]:
    """The objects of `helm template` output, each with the template it came from."""
    objects = []
    for document in re.split(r"^---\s*$", text, flags=re.MULTILINE):
        source = _SOURCE.search(document)
        body = yaml.load(document, _SAFE_LOADER)  # noqa: S506 (safe loader)
        if not isinstance(body, dict):
            continue
        kind = str(body.get("kind", ""))
        own = (body.get("metadata") or {}).get("namespace")
        where = None if kind in CLUSTER_SCOPED else str(own or namespace)
        objects.append(ChartObject(body, source.group(1) if source else "", where))
    return objects


def render(
    helm: Helm,
    package: Path,
    *,
    chart: str,
    release: str,
    namespace: str,
    version: str,
    kubernetes_version: str,
    values: dict[str, Any],
) -> Render:
    given = with_fixed_made_up_values(values)
    text = template(
        helm,
        package,
        release=release,
        namespace=namespace,
        version=version,
        kubernetes_version=kubernetes_version,
        values=given,
    )
    result = Render(
        chart=chart,
        version=version,
        release=release,
        namespace=namespace,
        kubernetes_version=kubernetes_version,
        helm=helm,
        package=package,
        values=given,
        objects=parse_objects(text, namespace),
    )
    validate(result)
    return result


# -- validation against the Kubernetes API ----------------------------------------------
def schema_versions() -> list[tuple[int, int]]:
    """The Kubernetes versions kubernetes-validate has strict schemas for."""
    return [version for version, _ in _schema_dirs()]


@cache
def _schema_root() -> Path:
    """kubernetes-validate's schema folder, found without importing the package (its
    import costs a tenth of a second the plan does not need: only its data is used)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("kubernetes-validate is not installed (requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


@cache
def _schema_dirs() -> list[tuple[tuple[int, int], str]]:
    base = _schema_root()
    found = []
    for entry in base.iterdir():
        match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+-local-strict", entry.name)
        if match:
            found.append(((int(match.group(1)), int(match.group(2))), entry.name))
    return sorted(found)


def schema_version_for(kubernetes_version: str) -> tuple[str, str]:
    """(version validated at, schema folder): the site's own, else the nearest newer one
    (or the newest there is, for a version newer than all)."""
    major, minor = (int(p) for p in kubernetes_version.split(".")[:2])
    dirs = _schema_dirs()
    for (found_major, found_minor), name in dirs:
        if (found_major, found_minor) >= (major, minor):
            return f"{found_major}.{found_minor}", name
    (found_major, found_minor), name = dirs[-1]
    return f"{found_major}.{found_minor}", name


class _Validators:
    """One schema registry per Kubernetes version, one validator per kind: the shared
    definitions file is over a megabyte, read once rather than once per object."""

    def __init__(self, folder: str) -> None:
        from referencing import Registry, Resource

        self.base = _schema_root() / folder
        definitions = json.loads((self.base / "_definitions.json").read_text())
        self.registry: Any = Resource.from_contents(definitions) @ Registry()
        self.by_kind: dict[tuple[str, str], Any] = {}

    def for_object(self, api_version: str, kind: str) -> Any:
        import jsonschema
        from referencing import Resource

        key = (api_version, kind)
        if key not in self.by_kind:
            # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1.
            group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
            path = self.base / f"{kind.lower()}-{group}.json"
            if not path.is_file():
                self.by_kind[key] = None
            else:
                schema = json.loads(path.read_text())
                self.by_kind[key] = jsonschema.Draft202012Validator(
                    schema, registry=Resource.from_contents(schema) @ self.registry
                )
        return self.by_kind[key]


@cache
def _validators(folder: str) -> _Validators:
    return _Validators(folder)


def validate(result: Render) -> None:
    """Every object against the API schema of its kind at the site's version."""
    result.validated_at, folder = schema_version_for(result.kubernetes_version)
    validators = _validators(folder)
    for obj in result.objects:
        validator = validators.for_object(obj.api_version, obj.kind)
        if validator is None:
            result.invalid.append(
                (
                    obj,
                    f"Kubernetes {result.validated_at} serves no {obj.kind} in {obj.api_version}",
                )
            )
            continue
        for error in sorted(validator.iter_errors(obj.body), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.absolute_path) or "(object)"
            result.invalid.append((obj, f"{where}: {error.message}"))


def release_of(resources_: list[Any]) -> Any | None:
    """The program's one Helm release, if it has one."""
    found = [r for r in resources_ if r.type == RELEASE_TYPE]
    return found[0] if found else None
