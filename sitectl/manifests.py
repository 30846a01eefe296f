"""Kubernetes objects as manifests, from the inputs the program registered.

A pulumi-kubernetes resource's inputs are the object itself (apiVersion, kind, metadata,
spec, ...), in the API's own camelCase, so a manifest is those inputs in YAML.
"""

from __future__ import annotations

from typing import Any

from sitectl.mockrun import Registered, redact

KUBERNETES_PREFIX = "kubernetes:"
# Release is a Helm operation, not an object of the Kubernetes API.
NOT_OBJECTS = frozenset({"kubernetes:helm.sh/v3:Release"})


def is_kubernetes_object(res: Registered) -> bool:
    return res.custom and res.type.startswith(KUBERNETES_PREFIX) and res.type not in NOT_OBJECTS


def manifest(res: Registered) -> dict[str, Any]:
    """The object as `kubectl apply` would take it; secrets shown as [secret]."""
    body = _sorted(redact(res.inputs))
    ordered = {k: body[k] for k in ("apiVersion", "kind", "metadata") if k in body}
    ordered.update({k: v for k, v in body.items() if k not in ordered})
    return ordered


def _sorted(value: Any) -> Any:
    """Keys in a stable order: the engine hands inputs over in no particular one."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value
