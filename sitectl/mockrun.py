"""Run the Pulumi program in-process under the SDK's mocks and record what it registers.

The offline plan and the tests both use this. `run_program()` runs `__main__.py` with a
given stack config, the way the Python language host would, but against a recording mock
monitor instead of the Pulumi engine. Every resource is recorded with its type, name,
parent, dependencies, inputs (secrets kept wrapped, so a caller can tell them apart) and the
options the engine would see (`protect`, `retainOnDelete`, `import`, ...).

Cloud resources whose outputs only exist after creation get well-formed fake outputs that
are recorded as fake, so nobody mistakes them for real values.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import runpy
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import ROOT
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET_SIG_KEY = rpc._special_sig_key
SECRET_SIG = rpc._special_secret_sig


class Unknown:
    """A value the engine would only know after an earlier resource is created."""

    def __repr__(self) -> str:
        return "[unknown]"


UNKNOWN = Unknown()


@dataclass(frozen=True)
class Secret:
    """A value the Pulumi engine treats as secret (encrypted in state, masked in diffs)."""

    value: Any

    def __repr__(self) -> str:
        return "[secret]"


def _wrapped_secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def _from_wire(value: Any) -> Any:
    """Turn the mock monitor's deserialized form into plain data with Secret/Unknown markers."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return Secret(_from_wire(value.get("value")))
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if value == rpc.UNKNOWN or isinstance(value, pulumi.output.Unknown):
        return UNKNOWN
    # Numbers cross the engine's wire as doubles; a provider hands a whole one on as an
    # integer (a port, a size, a timeout), so the plan shows it as one: 31090, not 31090.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def reveal(value: Any) -> Any:
    """The same data with every Secret replaced by its value (for checks that need it)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def redact(value: Any, mark: str = "[secret]") -> Any:
    """The same data with every Secret replaced by `mark`."""
    if isinstance(value, Secret):
        return mark
    if isinstance(value, Unknown):
        return "[unknown]"
    if isinstance(value, dict):
        return {k: redact(v, mark) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, mark) for v in value]
    return value


def contains_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


@dataclass
class Registered:
    """One resource as the engine would have received it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    inputs: dict[str, Any]
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    import_id: str | None
    ignore_changes: list[str]
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    outputs: dict[str, Any] = field(default_factory=dict)
    fake_outputs: list[str] = field(default_factory=list)


def _fake_uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "jupyterhub-platform-plan:" + ":".join(parts)))


# Documentation address ranges (RFC 5737): obviously not a real site's monitors.
FAKE_MONITORS = "198.51.100.11:6789,198.51.100.12:6789,198.51.100.13:6789"


def fake_cephx_key(seed: str) -> str:
    """A well-formed cephx secret (28 bytes: type, creation time, length, 16-byte key)."""
    key = hashlib.sha256(seed.encode()).digest()[:16]
    blob = b"\x01\x00" + b"\x00" * 8 + b"\x10\x00" + key
    return base64.b64encode(blob).decode("ascii")


def _fake_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a real provider would only know after creating the resource."""
    if typ == "openstack:sharedfilesystem/share:Share":
        path = f"/volumes/_nogroup/{_fake_uuid(name, 'a')}/{_fake_uuid(name, 'b')}"
        return {
            "exportLocations": [
                {"path": f"{FAKE_MONITORS}:{path}", "preferred": "true"},
            ],
        }
    if typ == "openstack:sharedfilesystem/shareAccess:ShareAccess":
        return {"accessKey": fake_cephx_key(name), "state": "active"}
    if typ == "random:index/randomBytes:RandomBytes":
        raw = hashlib.sha256(f"plan:{name}".encode()).digest()[: int(inputs.get("length", 32))]
        return {"hex": raw.hex(), "base64": base64.b64encode(raw).decode("ascii")}
    if typ == "kubernetes:helm.sh/v3:Release":
        return {
            "status": {
                "status": "deployed",
                "name": inputs.get("name", name),
                "namespace": inputs.get("namespace"),
                "chart": inputs.get("chart"),
                "version": inputs.get("version"),
                "revision": 1,
            }
        }
    if typ == "command:remote:Command":
        return {"stdout": "", "stderr": ""}
    return {}


class PlanMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs and add the fakes above; record which ones are fake.

    In a preview, as in the engine's first preview of a new stack, nothing has been
    created yet: no fakes, so what only creation would tell stays unknown.
    """

    def __init__(self, preview: bool = False) -> None:
        self.fakes: dict[tuple[str, str], list[str]] = {}
        self.preview = preview

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        fakes = {} if self.preview else _fake_outputs(args.typ, args.name, args.inputs)
        self.fakes[(args.typ, args.name)] = sorted(fakes)
        resource_id = args.resource_id or f"{args.name}-id"
        return resource_id, {**args.inputs, **fakes}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], None]:
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, plus: a record of each registration, and secret outputs.

    The stock monitor ignores `additionalSecretOutputs`; the engine marks those outputs
    secret, so this one does too (the cephx access key depends on it).
    """

    def __init__(self, mocks: PlanMocks) -> None:
        super().__init__(mocks)
        self.plan_mocks = mocks
        self.registered: list[Registered] = []

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        pulumi_mocks._ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
        urn = self.make_urn(request.parent, request.type, request.name)
        resource_id, state = self.plan_mocks.new_resource(
            pulumi.runtime.MockResourceArgs(
                typ=request.type,
                name=request.name,
                inputs=inputs,
                provider=request.provider,
                resource_id=request.importId,
                custom=request.custom,
            )
        )
        for key in request.additionalSecretOutputs:
            if key in state and not (
                isinstance(state[key], dict) and state[key].get(SECRET_SIG_KEY) == SECRET_SIG
            ):
                state[key] = _wrapped_secret(state[key])
        self.registered.append(
            Registered(
                urn=urn,
                type=request.type,
                name=request.name,
                custom=request.custom,
                parent=request.parent or None,
                inputs=_from_wire(inputs),
                dependencies=list(request.dependencies),
                property_dependencies={
                    k: list(v.urns) for k, v in request.propertyDependencies.items()
                },
                protect=request.protect if request.HasField("protect") else False,
                retain_on_delete=(
                    request.retainOnDelete if request.HasField("retainOnDelete") else False
                ),
                delete_before_replace=request.deleteBeforeReplace,
                import_id=request.importId or None,
                ignore_changes=list(request.ignoreChanges),
                replace_on_changes=list(request.replaceOnChanges),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                outputs=_from_wire(state),
                fake_outputs=self.plan_mocks.fakes.get((request.type, request.name), []),
            )
        )
        obj = _sync_await(rpc.serialize_properties(state, {}))
        self.resources[urn] = pulumi_mocks.MockMonitor.ResourceRegistration(urn, resource_id, state)
        return rpc.resource_pb2.RegisterResourceResponse(urn=urn, id=resource_id, object=obj)


@dataclass
class ProgramRun:
    """What one run of the program registered and exported."""

    resources: list[Registered]
    outputs: dict[str, Any]
    error: BaseException | None = None
    """What the program raised, if it failed (then `outputs` is empty)."""

    def ok(self) -> ProgramRun:
        """This run, or the program's own exception if it failed."""
        if self.error is not None:
            raise self.error
        return self

    def by_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.type == typ]

    def one(self, typ: str) -> Registered:
        found = self.by_type(typ)
        if len(found) != 1:
            raise AssertionError(f"expected one {typ}, found {[r.name for r in found]}")
        return found[0]

    def named(self, name: str) -> Registered:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)

    def by_urn(self) -> dict[str, Registered]:
        return {r.urn: r for r in self.resources}

    def ancestors(self, res: Registered) -> Iterator[Registered]:
        index = self.by_urn()
        parent = res.parent
        while parent and parent in index:
            yield index[parent]
            parent = index[parent].parent

    def direct_dependencies(self, res: Registered) -> set[str]:
        """URNs this resource waits for: explicit dependsOn and every input's sources."""
        deps = set(res.dependencies)
        for urns in res.property_dependencies.values():
            deps.update(urns)
        return deps

    def custom_dependencies(self, res: Registered) -> set[str]:
        """Custom resources this one waits for, with components expanded to their children.

        A dependency on a component is a dependency on every resource inside it, as the
        engine treats it.
        """
        index = self.by_urn()
        children: dict[str, list[Registered]] = {}
        for r in self.resources:
            if r.parent:
                children.setdefault(r.parent, []).append(r)
        out: set[str] = set()
        stack = list(self.direct_dependencies(res))
        while stack:
            urn = stack.pop()
            dep = index.get(urn)
            if dep is None or urn in out:
                continue
            if dep.custom:
                out.add(urn)
            else:
                stack.extend(c.urn for c in children.get(urn, []))
        return out


def _resolve_output(value: Any) -> Any:
    out = pulumi.Output.from_input(value)
    known = _sync_await(out.is_known())
    resolved = _sync_await(out.future()) if known else UNKNOWN
    if _sync_await(out.is_secret()):
        return Secret(resolved)
    return resolved


def run_program(
    config: dict[str, str],
    secret_keys: list[str],
    *,
    stack: str = "test",
    project: str = "jupyterhub-platform",
    preview: bool = False,
    program: Callable[[], None] | None = None,
    main: Path = PROJECT_DIR / "__main__.py",
) -> ProgramRun:
    """Run the program (or `program`) under mocks with this stack config.

    `config` maps full keys (`jupyterhub-platform:hub`) to the strings the language host
    passes (JSON text for structured values). What the program raises is returned in
    `ProgramRun.error`, with whatever it registered before that.
    """

    def run() -> None:
        if program is not None:
            program()
        else:
            runpy.run_path(str(main), run_name="__main__")

    # One event loop per run: the SDK pumps whichever loop is current, and a previous user of
    # asyncio (or a previous run) may have closed or removed it. The mock monitor runs in
    # the loop's executor threads, and the SDK gives each of them an event loop of its own
    # that nothing closes; left to the garbage collector, such a loop can fail in __del__
    # (at exit, once its socket pair is gone) and print a traceback. So every loop made
    # during the run is recorded and closed after it.
    previous_policy = asyncio.get_event_loop_policy()
    policy = _RecordingLoopPolicy()
    asyncio.set_event_loop_policy(policy)
    try:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return _run_in_loop(
                config, secret_keys, stack=stack, project=project, preview=preview, run=run
            )
        finally:
            # The monitor's calls have all returned by now; the bound is for a thread
            # that never does, which must not hang the caller.
            shutdown = asyncio.wait_for(loop.shutdown_default_executor(), EXECUTOR_TIMEOUT)
            loop.run_until_complete(shutdown)
    finally:
        for made in policy.loops:
            if not made.is_closed() and not made.is_running():
                made.close()
        asyncio.set_event_loop(None)
        asyncio.set_event_loop_policy(previous_policy)


EXECUTOR_TIMEOUT = 30.0


class _RecordingLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy, remembering every event loop it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.loops: list[asyncio.AbstractEventLoop] = []

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        self.loops.append(loop)
        return loop


def _run_in_loop(
    config: dict[str, str],
    secret_keys: list[str],
    *,
    stack: str,
    project: str,
    preview: bool,
    run: Callable[[], None],
) -> ProgramRun:
    ROOT.set(None)
    mocks = PlanMocks(preview)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), list(secret_keys))

    try:
        _sync_await(run_pulumi_func(run))
    except Exception as err:
        return ProgramRun(resources=list(monitor.registered), outputs={}, error=err)
    root = ROOT.get()
    exported = root.outputs if root is not None else {}  # type: ignore[attr-defined]
    outputs = {k: _resolve_output(v) for k, v in exported.items()}
    return ProgramRun(resources=list(monitor.registered), outputs=outputs)
