"""Apply the policy pack to a program run, the way the Pulumi engine does in a preview.

Resource policies see each resource's inputs; stack policies see all resources. Inputs
reach the rules as the engine hands them over: camelCase, secrets unwrapped, and wrapped
in pulumi_policy's unknown-checking proxy, so a rule that reads a value not known yet
(in a first preview) is reported as not run instead of deciding on a guess.

Configuration uses the file format of `pulumi preview --policy-pack-config`:
`{"<policy>": "advisory" | {"enforcementLevel": ..., "<property>": ...}, "all": ...}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from sitectl.files import read_input_text
from sitectl.mockrun import ProgramRun, Unknown, reveal

LEVELS = {level.value: level for level in EnforcementLevel}
# How much a level enforces: a policy config that sets a policy below its own level waives
# it (in part), which the plan reports; remediate enforces as mandatory does.
STRENGTH = {"disabled": 0, "advisory": 1, "mandatory": 2, "remediate": 2}


class PolicyConfigError(ValueError):
    """The policy config file is invalid; the message is one line."""


@dataclass
class Violation:
    policy: str
    level: str
    resource: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "level": self.level,
            "resource": self.resource,
            "message": self.message,
        }


@dataclass
class PolicyReport:
    violations: list[Violation] = field(default_factory=list)
    not_run: list[tuple[str, str]] = field(default_factory=list)
    """(policy, why) for rules that read a value unknown until resources exist."""
    ran: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    waived: list[tuple[str, str, str]] = field(default_factory=list)
    """(policy, level set, the policy's own level) for every policy the config set below
    its own level: disabled, or a mandatory one made advisory."""

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.level in ("mandatory", "remediate")]


def _for_policy(value: Any) -> Any:
    """Inputs as the engine gives them to policies: secrets plain, unknowns as sentinels."""
    if isinstance(value, Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, dict):
        return {k: _for_policy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_for_policy(v) for v in value]
    return value


def policy_resources(run: ProgramRun) -> list[PolicyResource]:
    by_urn: dict[str, PolicyResource] = {}
    for res in run.resources:  # parents register before their children
        by_urn[res.urn] = PolicyResource(
            res.type,
            unknown_checking_proxy(_for_policy(reveal(res.inputs))),
            res.urn,
            res.name,
            PolicyResourceOptions(
                protect=res.protect,
                ignore_changes=res.ignore_changes,
                delete_before_replace=res.delete_before_replace,
                aliases=[],
                custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                additional_secret_outputs=res.additional_secret_outputs,
                parent=res.parent,
            ),
            None,
            by_urn.get(res.parent or ""),
            [],
            {},
        )
    for res in run.resources:
        resource = by_urn[res.urn]
        resource.dependencies.extend(by_urn[u] for u in res.dependencies if u in by_urn)
        for key, urns in res.property_dependencies.items():
            resource.property_dependencies[key] = [by_urn[u] for u in urns if u in by_urn]
    return list(by_urn.values())


def load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(read_input_text(path))
    except OSError as err:
        raise PolicyConfigError(
            f"--policy-config {path}: cannot be read ({err.strerror})"
        ) from None
    except ValueError as err:
        raise PolicyConfigError(f"--policy-config {path}: is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise PolicyConfigError(f"--policy-config {path}: is not a JSON object of policies")
    return data


# Policy settings whose values are secrets (no-secrets-in-commands' knownSecrets): an error
# about one says what is wrong and where, never the value.
SECRET_SETTINGS = frozenset({"knownSecrets"})


def _unquoted(err: Any) -> str:
    """What a jsonschema error says is wrong, without the value it quotes."""
    if err.validator == "type":
        return f"is not of type {err.validator_value!r}"
    return f"does not meet the schema's {err.validator} {err.validator_value!r}"


def _settings(
    policy: ResourceValidationPolicy | StackValidationPolicy, config: Mapping[str, Any]
) -> tuple[EnforcementLevel, dict[str, Any]]:
    level = policy.enforcement_level or EnforcementLevel.MANDATORY
    properties: dict[str, Any] = {}
    for key in ("all", policy.name):
        entry = config.get(key)
        if entry is None:
            continue
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        if not isinstance(entry, dict):
            raise PolicyConfigError(f"policy config {key}: is not a level or an object")
        if "enforcementLevel" in entry:
            name = entry["enforcementLevel"]
            if not isinstance(name, str) or name not in LEVELS:
                raise PolicyConfigError(
                    f"policy config {key}.enforcementLevel: {name!r} is not one of "
                    f"{', '.join(LEVELS)}"
                )
            level = LEVELS[name]
        if key == policy.name:
            properties.update({k: v for k, v in entry.items() if k != "enforcementLevel"})
    schema = policy.config_schema
    if properties:
        import jsonschema  # only when a config file sets a policy's properties

        known = schema.properties if schema else {}
        for name, value in properties.items():
            if name not in known:
                raise PolicyConfigError(
                    f"policy config {policy.name}.{name}: is not a setting of this policy"
                    + (f"; it has {', '.join(known)}" if known else "")
                )
            try:
                jsonschema.validate(value, known[name])
            except jsonschema.ValidationError as err:
                if name in SECRET_SETTINGS:
                    # jsonschema's message quotes the bad value: here, a secret.
                    where = "".join(f"[{part}]" for part in err.absolute_path)
                    raise PolicyConfigError(
                        f"policy config {policy.name}.{name}{where}: {_unquoted(err)} "
                        "(the value is not shown: it holds secrets)"
                    ) from None
                raise PolicyConfigError(
                    f"policy config {policy.name}.{name}: {err.message}"
                ) from None
    return level, properties


def _with_extra(properties: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from the file, extended (not replaced) by what the plan adds."""
    merged = dict(properties)
    for key, value in extra.items():
        given = merged.get(key)
        if isinstance(given, list) and isinstance(value, list):
            merged[key] = [*given, *(v for v in value if v not in given)]
        elif isinstance(given, dict) and isinstance(value, dict):
            merged[key] = {**given, **value}
        else:
            merged[key] = value
    return merged


def _on(urn: str, report: Callable[..., None]) -> Callable[[str, str | None], None]:
    """A resource policy's report function: violations name the resource validated."""

    def report_for(message: str, other: str | None = None) -> None:
        report(message, other or urn)

    return report_for


def evaluate(
    run: ProgramRun,
    policies: Iterable[ResourceValidationPolicy | StackValidationPolicy],
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> PolicyReport:
    """Run every policy; `extra` adds settings that never come from a file (known secrets)."""
    config = config or {}
    known = {p.name for p in policies} | {"all"}
    for key in config:
        if key not in known:
            raise PolicyConfigError(f"policy config {key}: is not a policy of this pack")
    resources = policy_resources(run)
    names = {r.urn: r.name for r in resources}
    report = PolicyReport()
    for policy in policies:
        level, properties = _settings(policy, config)
        own = (policy.enforcement_level or EnforcementLevel.MANDATORY).value
        if STRENGTH[level.value] < STRENGTH[own]:
            report.waived.append((policy.name, level.value, own))
        if level is EnforcementLevel.DISABLED:
            report.disabled.append(policy.name)
            continue
        properties = _with_extra(properties, (extra or {}).get(policy.name, {}))

        def violation(
            message: str,
            urn: str | None = None,
            *,
            _policy: str = policy.name,
            _level: str = level.value,
        ) -> None:
            report.violations.append(Violation(_policy, _level, names.get(urn or ""), message))

        if isinstance(policy, StackValidationPolicy):
            stack_args = StackValidationArgs(resources, properties)
            check = partial(policy.validate, stack_args, violation)
            decided = _run_rule(policy.name, check, report, violation)
        else:
            # Like the engine, a resource rule that meets an unknown value is not run on
            # that resource only; it still decides on the others.
            decided = True
            for resource in resources:
                args = ResourceValidationArgs(
                    resource.resource_type,
                    resource.props,
                    resource.urn,
                    resource.name,
                    resource.opts,
                    None,
                    properties,
                )
                check = partial(policy.validate, args, _on(resource.urn, violation))
                decided &= _run_rule(policy.name, check, report, violation, resource)
        if decided:
            report.ran.append(policy.name)
    # The engine registers resources in no fixed order (the nodes' commands are created
    # at once): violations are listed by policy, then resource, so two plans of the same
    # config print and write the same.
    order = {p.name: i for i, p in enumerate(policies)}
    report.violations.sort(key=lambda v: (order.get(v.policy, 0), v.resource or "", v.message))
    return report


def _run_rule(
    name: str,
    check: Callable[[], object],
    report: PolicyReport,
    violation: Callable[..., None],
    resource: PolicyResource | None = None,
) -> bool:
    """Run one rule (on one resource, for a resource rule); True if it decided.

    A rule that reads a value not known yet is not run (as the engine reports it). A rule
    that fails on a shape it did not expect (hub.extraValues can hold anything) fails the
    plan, as a policy pack error fails a preview: a mandatory violation, in one line, on
    the resource it was checking, whatever the rule's own level.
    """
    try:
        check()
    except UnknownValueError as err:
        where = f"{resource.name}: " if resource is not None else ""
        report.not_run.append((name, f"{where}{err.message}"))
        return False
    except Exception as err:
        what = f"{resource.name}" if resource is not None else "this stack"
        violation(
            f"the rule could not check {what} ({type(err).__name__}: {err})",
            resource.urn if resource is not None else None,
            _level=EnforcementLevel.MANDATORY.value,
        )
        return False
    return True
