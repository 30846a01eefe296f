"""The offline plan: a site's full desired state, with no credentials and no Pulumi CLI.

    python -m sitectl plan SITE [--stack-file PATH] [--secret KEY=VALUE ...]
        [--secret-file KEY=PATH ...] [--out DIR] [--json] [--policy-config PATH]
        [--no-render | --require-render]

Runs `__main__.py` in-process under the Pulumi SDK's mocks with the stack's config, records
every resource the program registers, prints a tree like `pulumi preview`, and writes
`plan.json` plus the rendered files (Helm values, node scripts, Kubernetes manifests) to
`--out` (default `build/plan/SITE/`). Secrets never appear: every secret value is written
as `[secret]`, and any value a secret holds is scrubbed from all text as a last guard.
Secrets come from `JHP_SECRET_<KEY>` variables, `--secret-file KEY=PATH` and `--secret
KEY=VALUE`, a later source overriding an earlier one.

The policy pack (`policy/`) runs over the plan as the engine would run it in a preview;
`--policy-config` takes the same JSON file as `pulumi preview --policy-pack-config`.

The chart is rendered by Helm 3 (`sitectl/render.py`), its objects written to `chart/`,
validated against the site's Kubernetes API and checked (`sitectl/chart_checks.py`).
Without a Helm 3 or the chart package the render is skipped with one line saying why;
`--require-render` makes that an error, `--no-render` skips it on purpose.

Exit codes: 0 planned; 1 mandatory policy violations or failed chart checks; 2 invalid
input, or a chart that refuses the values (one line on stderr).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from sitectl import gc_tuning
from sitectl.files import read_input_text
from sitectl.mockrun import PROJECT_DIR, ProgramRun, Registered, Secret, redact, reveal
from sitectl.stackfile import (
    StackFile,
    StackFileError,
    check_readable,
    check_stack_name,
    load_stack_file,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    from components.config import SiteConfig
    from sitectl.chart_checks import Problem
    from sitectl.helm import Helm
    from sitectl.policy_engine import PolicyReport
    from sitectl.render import Render

SECRET_MARK = "[secret]"
RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
# Secrets at least this long are looked for inside any text; shorter ones (a short client
# secret) where they stand alone or whole.
MIN_SUBSTRING = 6
PLACEHOLDER = "offline-plan-placeholder"
SECRET_ENV_PREFIX = "JHP_SECRET_"
EXIT_OK, EXIT_VIOLATIONS, EXIT_INVALID = 0, 1, 2


class PlanError(Exception):
    """Invalid input to the plan; the message is the one line shown."""


@dataclass
class Placeholder:
    key: str
    reason: str


@dataclass
class ChartResult:
    """The chart render of a plan: done, or skipped and why."""

    render: Render | None = None
    skipped: str | None = None
    problems: list[Problem] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    """The checks run on the objects."""

    def document(self) -> dict[str, Any]:
        render = self.render
        if render is None:
            return {"rendered": False, "skipped": self.skipped}
        return {
            "rendered": True,
            "skipped": None,
            "chart": render.chart,
            "version": render.version,
            "release": render.release,
            "namespace": render.namespace,
            "kubernetesVersion": render.kubernetes_version,
            "validatedAt": render.validated_at,
            "helm": render.helm.version,
            "counts": render.counts(),
            "objects": render.entries(),
            "checks": self.checks,
            "problems": [p.as_dict() for p in self.problems],
        }


@dataclass
class Plan:
    stack: str
    project: str
    run: ProgramRun
    placeholders: list[Placeholder]
    secret_values: set[str]
    site: SiteConfig | None = None
    """The site's settings, as the program validated them."""
    known_secrets: list[str] = field(default_factory=list)
    """Secret config values given to the plan (not placeholders): policies look for them."""
    policies: PolicyReport | None = None
    policy_config: dict[str, Any] = field(default_factory=dict)
    """The --policy-config file's content, as read."""
    chart: ChartResult | None = None
    """None with --no-render."""

    @property
    def violations(self) -> list[dict[str, Any]]:
        return [v.as_dict() for v in self.policies.violations] if self.policies else []

    @property
    def waivers(self) -> list[dict[str, str]]:
        """Policies the policy config set below their own level: whoever reviews a plan
        (its summary, or plan.json from CI) sees what was waived, not only what fired."""
        if self.policies is None:
            return []
        return [
            {"policy": name, "level": level, "default": own}
            for name, level, own in self.policies.waived
        ]

    @property
    def unpinned_host_keys(self) -> list[dict[str, str]]:
        """Hosts the node step reaches without a pinned SSH host key (the stack accepted
        it with nodes.allowUnpinnedHostKeys): reported whether or not the advisory runs."""
        if self.site is None:
            return []
        nodes = self.site.nodes
        found = [
            {"role": "node", "name": host.name, "address": host.address}
            for host in nodes.hosts
            if host.host_key is None
        ]
        if nodes.bastion is not None and nodes.bastion.host_key is None:
            found.append({"role": "bastion", "name": "", "address": nodes.bastion.host})
        return found

    # -- views --------------------------------------------------------------------
    @cached_property
    def adopted(self) -> dict[str, str]:
        """Resource name -> import id, for what the stack adopts."""
        return {r.name: r.import_id for r in self.run.resources if r.import_id}

    @cached_property
    def names(self) -> dict[str, str]:
        return {r.urn: r.name for r in self.run.resources}

    @cached_property
    def fake_outputs(self) -> list[str]:
        """Stack outputs whose value comes from a faked cloud output."""
        fakes: set[str] = set()
        for res in self.run.resources:
            echoed = set(_leaves(reveal(res.inputs)))
            for key in res.fake_outputs:
                fakes.update(
                    v
                    for v in _leaves(reveal(res.outputs.get(key)))
                    if v not in echoed and len(v) >= 8  # not a flag, count or short word
                )
        return [
            name
            for name, value in self.run.outputs.items()
            if any(fake in leaf for leaf in _leaves(reveal(value)) for fake in fakes)
        ]

    def resource_entry(self, res: Registered) -> dict[str, Any]:
        names = self.names
        return {
            "type": res.type,
            "name": res.name,
            "parent": names.get(res.parent or ""),
            "custom": res.custom,
            "dependsOn": sorted(names[u] for u in self.run.direct_dependencies(res) if u in names),
            "inputs": redact(res.inputs, SECRET_MARK),
            "protect": res.protect,
            "retainOnDelete": res.retain_on_delete,
            "deleteBeforeReplace": res.delete_before_replace,
            "import": res.import_id,
            "fakeOutputs": list(res.fake_outputs),
        }

    @cached_property
    def published(self) -> dict[str, Any]:
        """plan.json's content: the document, with any secret value that slipped through
        replaced (written to the file and printed by --json, computed once)."""
        return self.scrub_data(self.document())

    def document(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "project": self.project,
            # Sorted, so two plans of the same config are identical and diff cleanly.
            "resources": [
                self.resource_entry(r) for r in sorted(self.run.resources, key=lambda r: r.name)
            ],
            "outputs": redact(self.run.outputs, SECRET_MARK),
            "fakeOutputs": self.fake_outputs,
            "placeholders": [{"key": p.key, "reason": p.reason} for p in self.placeholders],
            "violations": self.violations,
            "waivers": self.waivers,
            "unpinnedHostKeys": self.unpinned_host_keys,
            "chart": self.chart.document() if self.chart is not None else None,
        }

    @cached_property
    def _longest_first(self) -> list[str]:
        # Longest first: a secret that contains another is replaced whole.
        return sorted((v for v in self.secret_values if len(v) >= MIN_SUBSTRING), key=len,
                      reverse=True)  # fmt: skip

    @cached_property
    def _short_secrets(self) -> re.Pattern[str] | None:
        """Secrets too short to look for inside other text, as whole tokens."""
        short = sorted((v for v in self.secret_values if len(v) < MIN_SUBSTRING), key=len)
        if not short:
            return None
        alternatives = "|".join(re.escape(v) for v in reversed(short))
        return re.compile(rf"(?<![\w.+/=-])(?:{alternatives})(?![\w.+/=-])")

    def scrub_data(self, value: Any) -> Any:
        """Structured data with every string that is, or holds, a secret value replaced whole.

        A string equal to a secret is replaced whatever its length: that is where the
        program puts a secret (a value of its own), so a short client secret is still found.
        """
        if isinstance(value, dict):
            return {k: self.scrub_data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_data(v) for v in value]
        if isinstance(value, str) and (
            value in self.secret_values or any(s in value for s in self._longest_first)
        ):
            return SECRET_MARK
        return value

    def scrub(self, text: str) -> str:
        """Replace any secret value that found its way into text (defence in depth): long
        ones wherever they are, short ones where they stand alone (a YAML or JSON scalar)."""
        for value in self._longest_first:
            if value in text:
                text = text.replace(value, SECRET_MARK)
        if self._short_secrets is not None:
            text = self._short_secrets.sub(SECRET_MARK, text)
        return text


def _leaves(value: Any) -> Iterable[str]:
    """Every scalar in a value, as text."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def _secret_strings(value: Any) -> Iterable[str]:
    """Secret text values (and their lines), wherever a Secret wraps a plain string.

    Every value, however short; lines of a value (a key file's) only from MIN_SUBSTRING
    characters, being parts rather than values. A secret container (the release's
    values, an SSH connection) holds plain settings too; its own secret parts are config
    secrets or outputs, which are collected as such.
    """
    if isinstance(value, Secret):
        inner = value.value
        if isinstance(inner, str):
            if inner:
                yield inner
            yield from (line for line in inner.splitlines() if len(line) >= MIN_SUBSTRING)
        else:
            yield from _secret_strings(inner)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _secret_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _secret_strings(v)


def scrub_given(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with the given secret values replaced as `Plan.scrub` does, for what is shown
    before there is a plan (its errors)."""
    values: set[str] = set()
    for value in secrets.values():
        values.update(_secret_strings(Secret(value)))
    return Plan("", "", ProgramRun([], {}), [], values).scrub(text)


# -- input -------------------------------------------------------------------------
def project_name(project_dir: Path) -> str:
    path = project_dir / "Pulumi.yaml"
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PlanError(f"{path}: cannot be read as a Pulumi project ({err})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise PlanError(f"{path}: has no project name")
    return str(doc["name"])


def parse_secret_args(values: Sequence[str], project: str) -> dict[str, str]:
    secrets = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            # Not echoed: an argument without its KEY= may well be the secret itself.
            raise PlanError("--secret: expected KEY=VALUE (the argument is not shown here)")
        full = key if ":" in key else f"{project}:{key}"
        secrets[full] = value
    return secrets


def secrets_from_environment(env: Mapping[str, str], project: str) -> dict[str, str]:
    """`JHP_SECRET_<KEY>` variables, KEY as in the stack (`JHP_SECRET_oauthClientSecret`)."""
    return {
        f"{project}:{name[len(SECRET_ENV_PREFIX) :]}": value
        for name, value in env.items()
        if name.startswith(SECRET_ENV_PREFIX) and len(name) > len(SECRET_ENV_PREFIX)
    }


def secrets_from_files(values: Sequence[str], project: str) -> dict[str, str]:
    """`--secret-file KEY=PATH`: the file holds the value (an SSH key file as it is).

    A one-line file loses its final newline (`echo secret > file` writes one); a file of
    several lines is kept whole, as `pulumi config set --secret KEY < file` would.
    """
    secrets = {}
    for item in values:
        key, sep, path = item.partition("=")
        if not sep or not key or not path:
            raise PlanError(f"--secret-file: {item!r} is not KEY=PATH")
        try:
            text = read_input_text(Path(path))
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else "not text"
            raise PlanError(f"--secret-file {key}: {path} cannot be read ({reason})") from None
        if text.count("\n") == 1 and text.endswith("\n"):
            text = text[:-1]
        full = key if ":" in key else f"{project}:{key}"
        secrets[full] = text
    return secrets


def check_secret_keys(label: str, secrets: Mapping[str, str], project: str) -> None:
    """PlanError for a secret given to a setting of the project that is not a secret.

    Such a value lands in a plain setting, whose error line shows it (`site: "..." is not
    a map of settings`); a misspelt secret key is told apart here too."""
    from components.config import SiteConfig

    names = SiteConfig.SECRET_KEYS
    for key in secrets:
        namespace, _, name = key.partition(":")
        if namespace == project and name not in names:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            if not close:
                close = [n for n in names if n.lower() == name.lower()]
            hint = f"did you mean {close[0]}? " if close else ""
            raise PlanError(
                f"{label}{name}: is not a secret setting; {hint}only {' and '.join(names)} "
                "are (the others go in the stack file); the value is not shown"
            )


def secret_keys_needed(config: dict[str, str], project: str) -> list[str]:
    """The secret config keys the program requires for this config."""
    from components.config import decode_config_value, required_secret_keys

    raw = {
        k.split(":", 1)[1]: decode_config_value(v)
        for k, v in config.items()
        if k.startswith(f"{project}:")
    }
    return [f"{project}:{k}" for k in required_secret_keys(raw)]


def _placeholder(key: str) -> str:
    """The offline stand-in for a secret; the SSH key's has a private key's frame, which
    the program checks for."""
    if key == "sshPrivateKey":
        return (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            f"{PLACEHOLDER}-{key}\n"
            "-----END OPENSSH PRIVATE KEY-----\n"
        )
    return f"{PLACEHOLDER}-{key}"


def _config_with_secrets(
    stack_config: StackFile, secrets: dict[str, str], project: str
) -> tuple[dict[str, str], set[str], list[Placeholder]]:
    """The stack's config with the given secrets, and placeholders for those it lacks."""
    config = {**stack_config.config, **secrets}
    secret_keys = set(stack_config.secret_keys) | set(secrets)
    stand_ins: dict[str, str] = {}  # full key -> why it has a placeholder
    for key in secret_keys_needed(config, project):
        if key in secrets or (key in config and key not in stack_config.encrypted):
            continue
        if key in stack_config.encrypted:
            stand_ins[key] = "secure: value in the stack file; only the Pulumi CLI can decrypt it"
        else:
            stand_ins[key] = "not set in the stack"
    # Every secure: value, needed or not, gets a stand-in: it cannot be decrypted here.
    for key in stack_config.encrypted:
        if key not in secrets:
            stand_ins.setdefault(key, "secure: value in the stack file; not needed offline")
    placeholders = []
    for key, reason in stand_ins.items():
        short = key.split(":", 1)[1] if key.startswith(f"{project}:") else key
        placeholders.append(Placeholder(short, reason))
        config[key] = _placeholder(short)
        secret_keys.add(key)
    return config, secret_keys, placeholders


def build_plan(
    stack: str,
    stack_file: Path,
    secrets: dict[str, str],
    project_dir: Path = PROJECT_DIR,
) -> Plan:
    from components.config import ConfigError, SiteConfig
    from sitectl.mockrun import run_program

    project = project_name(project_dir)
    try:
        stack_config = load_stack_file(stack_file, project)
        check_readable(stack_config, project, SiteConfig.SECRET_KEYS)
    except StackFileError as err:
        raise PlanError(str(err)) from None

    config, secret_keys, placeholders = _config_with_secrets(stack_config, secrets, project)
    run = run_program(config, sorted(secret_keys), stack=stack, project=project)
    if isinstance(run.error, ConfigError):
        raise PlanError(str(run.error))
    if run.error is not None:
        raise PlanError(f"the program failed: {type(run.error).__name__}: {run.error}")

    secret_values: set[str] = set()
    for key in secret_keys:
        secret_values.update(_secret_strings(Secret(config.get(key, ""))))
    for res in run.resources:
        secret_values.update(_secret_strings(res.inputs))
        secret_values.update(_secret_strings(res.outputs))
    secret_values.update(_secret_strings(run.outputs))
    known = [v for k, v in config.items() if k in secrets or k in stack_config.secret_keys]
    known = [v for v in known if PLACEHOLDER not in v]
    return Plan(
        stack,
        project,
        run,
        placeholders,
        secret_values,
        site=site_settings(config, project, project_dir),
        known_secrets=known,
    )


def site_settings(config: dict[str, str], project: str, project_dir: Path) -> SiteConfig:
    """The site's plain settings, validated as the program validated them (it ran)."""
    from components.config import SiteConfig, decode_config_value, parse_site_config

    raw = {
        k.split(":", 1)[1]: decode_config_value(v)
        for k, v in config.items()
        if k.startswith(f"{project}:") and k.split(":", 1)[1] not in SiteConfig.SECRET_KEYS
    }
    return parse_site_config(raw, project_dir)


def apply_policies(plan: Plan, policy_config: Path | None) -> None:
    """Run the policy pack over the plan, as `pulumi preview --policy-pack policy` would."""
    from policy.rules import POLICIES
    from sitectl.policy_engine import PolicyConfigError, evaluate, load_config

    try:
        plan.policy_config = load_config(policy_config)
        plan.policies = evaluate(
            plan.run,
            POLICIES,
            plan.policy_config,
            extra={
                "no-secrets-in-commands": {"knownSecrets": plan.known_secrets},
                "adopted-resources-changed": {"adopted": plan.adopted},
            },
        )
    except PolicyConfigError as err:
        raise PlanError(str(err)) from None


def render_chart(
    plan: Plan,
    *,
    require: bool,
    env: Mapping[str, str] | None = None,
    helm_found: Future[Helm] | None = None,
) -> None:
    """Render the release's chart with Helm 3 and check the objects (sitectl/render.py).

    Without a Helm 3 or the chart's package the render is skipped, with the reason kept
    for the one line the plan prints; `require` makes that a PlanError instead. A chart
    that refuses the values is a PlanError with Helm's message. `helm_found` is a search
    for Helm started earlier (`find_helm` runs `helm version`), else it is searched now.
    """
    from sitectl.chart_checks import checks_for, run_checks
    from sitectl.charts import ChartPackageError, ChartUnavailableError, resolve_chart
    from sitectl.helm import HelmUnavailableError, find_helm
    from sitectl.manifests import is_kubernetes_object
    from sitectl.render import CLUSTER_SCOPED, RenderError, release_of, render

    release = release_of(plan.run.resources)
    if release is None or plan.site is None:
        return
    inputs = release.inputs
    chart, version = str(inputs.get("chart")), str(inputs.get("version"))
    try:
        helm = helm_found.result() if helm_found is not None else find_helm(env)
        package = resolve_chart(version, env=env)
    except (HelmUnavailableError, ChartUnavailableError, ChartPackageError) as err:
        if require:
            raise PlanError(f"--require-render: the chart cannot be rendered: {err}") from None
        plan.chart = ChartResult(skipped=str(err))
        return
    # Every string equal to a secret the plan knows (however short) or holding a long one
    # becomes the placeholder: inside the all-secret release values they lost their mark.
    values = plan.scrub_data(redact(reveal_partially(inputs.get("values")), SECRET_MARK))
    try:
        result = render(
            helm,
            package,
            chart=chart,
            release=str(inputs.get("name")),
            namespace=str(inputs.get("namespace")),
            version=version,
            kubernetes_version=plan.site.site.kubernetes_version,
            values=values,
        )
    except RenderError as err:
        raise PlanError(f"chart {chart} {version} refuses the values: {err}") from None
    program_objects = []
    for res in plan.run.resources:
        if is_kubernetes_object(res):
            body = reveal(res.inputs)
            meta = body.get("metadata") or {}
            kind = str(body.get("kind", res.type.rsplit(":", 1)[-1]))
            # As the API places it: a namespaced object without one lands in "default".
            namespace = None if kind in CLUSTER_SCOPED else str(meta.get("namespace") or "default")
            program_objects.append((kind, namespace, str(meta.get("name", ""))))
    problems = run_checks(result, plan.site, values, plan.site.storage.class_name, program_objects)
    plan.chart = ChartResult(render=result, problems=problems, checks=checks_for(plan.site))


# -- output ------------------------------------------------------------------------
def _yaml(data: Any, sort_keys: bool = False) -> str:
    return yaml.safe_dump(data, sort_keys=sort_keys, default_flow_style=False, width=100)


def rendered_files(plan: Plan) -> dict[str, str]:
    """Relative path -> text, for everything the program renders."""
    from components.hub_values import SECRET_VALUE_PATHS
    from components.node_scripts import script_of
    from sitectl.manifests import is_kubernetes_object, manifest

    files: dict[str, str] = {}
    for name, value in plan.run.outputs.items():
        if isinstance(value, str) and "\n" in value:
            files[f"outputs/{name}.txt"] = value
    for res in plan.run.resources:
        if res.type == RELEASE_TYPE:
            # Inner secrets lose their own mark inside the all-secret values, so they are
            # found by value.
            values = plan.scrub_data(
                redact_paths(
                    redact(reveal_partially(res.inputs.get("values")), SECRET_MARK),
                    SECRET_VALUE_PATHS,
                ),
            )
            files["values.yaml"] = _yaml(values, sort_keys=True)
        elif res.type == "command:remote:Command":
            for step in ("create", "delete"):
                command = res.inputs.get(step)
                if isinstance(command, str):
                    files[f"scripts/{res.name}-{step}.sh"] = script_of(command)
        elif is_kubernetes_object(res):
            kind = str(res.inputs.get("kind", res.type.rsplit(":", 1)[-1])).lower()
            files[f"manifests/{kind}-{res.name}.yaml"] = _yaml(plan.scrub_data(manifest(res)))
    if plan.chart is not None and plan.chart.render is not None:
        files.update(plan.chart.render.files())
    if plan.adopted:
        files["policy-config.json"] = json.dumps(preview_policy_config(plan), indent=2)
    return files


def preview_policy_config(plan: Plan) -> dict[str, Any]:
    """The --policy-pack-config for the real preview of an adoption.

    Policies cannot see import ids, so `adopted-resources-changed` learns from this file
    which resources are adopted. It is the --policy-config given to the plan plus that
    map, without knownSecrets: secret values are never written to a file.
    """
    config = copy.deepcopy(plan.policy_config)
    entry = config.get("adopted-resources-changed", {})
    entry = {"enforcementLevel": entry} if isinstance(entry, str) else entry
    entry["adopted"] = {**entry.get("adopted", {}), **plan.adopted}
    config["adopted-resources-changed"] = entry
    secrets_rule = config.get("no-secrets-in-commands")
    if isinstance(secrets_rule, dict):
        secrets_rule.pop("knownSecrets", None)
    return config


def redact_paths(values: Any, paths: Iterable[tuple[str, ...]]) -> Any:
    """The values with whatever stands at each path replaced by the secret mark."""
    out = copy.deepcopy(values)
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = SECRET_MARK
    return out


def reveal_partially(values: Any) -> Any:
    """The Helm values with the outer secret wrapper off, inner secrets kept marked.

    The release marks all of its values secret so that state and diffs hide the client
    secret and the proxy token; for review, only the parts that are secret are hidden.
    """
    if isinstance(values, Secret):
        return values.value
    return values


def write(plan: Plan, out: Path) -> dict[str, str]:
    if out.exists() and not out.is_dir():
        raise PlanError(f"--out {out}: is not a directory; choose another")
    files = {
        "plan.json": json.dumps(plan.published, indent=2, sort_keys=True) + "\n",
        **rendered_files(plan),
    }
    try:
        _write_files(plan, out, files)
    except OSError as err:
        # Unwritable, read-only, full: one line, not a traceback.
        where = f" ({err.filename})" if err.filename and str(err.filename) != str(out) else ""
        raise PlanError(f"--out {out}: cannot be written: {err.strerror}{where}") from None
    return files


def _write_files(plan: Plan, out: Path, files: dict[str, str]) -> None:
    if out.exists() and any(out.iterdir()) and not (out / "plan.json").exists():
        raise PlanError(f"--out {out}: exists and is not a plan directory; choose another")
    # Files of an earlier plan that this one does not write (a removed node's scripts)
    # go; the others are rewritten only if their content changed: re-planning a site
    # mostly rewrites what it wrote before, and on ext4 overwriting a file with data
    # (truncate, then write) costs several times what reading and comparing it does.
    if out.exists():
        for path in sorted(out.rglob("*"), reverse=True):
            relative = path.relative_to(out).as_posix()
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_file() and relative not in files:
                path.unlink()
    for directory in {(out / relative).parent for relative in files}:
        directory.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        _write_if_changed(out / relative, plan.scrub(text))


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    path.write_text(text)


def _resource_lines(
    run: ProgramRun, width: int, under: Mapping[str, list[str]] | None = None
) -> list[str]:
    """The resources as a tree, like `pulumi preview`: + create, = import; `under` adds
    lines below a resource (the chart's objects below the release)."""
    under = under or {}
    children: dict[str | None, list[Registered]] = {}
    urns = {r.urn for r in run.resources}
    for res in run.resources:
        children.setdefault(res.parent if res.parent in urns else None, []).append(res)
    lines: list[str] = []

    def walk(parent: str | None, prefix: str) -> None:
        kids = sorted(children.get(parent, []), key=lambda r: r.name)
        for i, res in enumerate(kids):
            last = i == len(kids) - 1
            notes = [f"import {res.import_id}"] if res.import_id else []
            notes += [
                flag
                for flag, on in (
                    ("protect", res.protect),
                    ("retainOnDelete", res.retain_on_delete),
                    ("deleteBeforeReplace", res.delete_before_replace),
                )
                if on
            ]
            label = f"{prefix}{'└─ ' if last else '├─ '}{res.type}"
            suffix = f"  [{', '.join(notes)}]" if notes else ""
            op = "=" if res.import_id else "+"
            lines.append(f" {op}   {label:<{width}} {res.name}{suffix}")
            inner = prefix + ("   " if last else "│  ")
            has_children = bool(children.get(res.urn))
            lines.extend(
                f"     {inner}{'│  ' if has_children else '   '}{extra}"
                for extra in under.get(res.name, [])
            )
            walk(res.urn, inner)

    walk(None, "")
    return lines


def _count_lines(run: ProgramRun) -> list[str]:
    counts: dict[str, int] = {}
    for res in run.resources:
        if res.custom:
            counts[res.type] = counts.get(res.type, 0) + 1
    imports = sum(1 for r in run.resources if r.import_id)
    lines = ["Resources:", f"    + {sum(counts.values()) - imports} to create"]
    if imports:
        lines.append(f"    = {imports} to import")
    lines += [f"      {n:>4} {typ}" for typ, n in sorted(counts.items())]
    return lines


def _output_lines(plan: Plan) -> list[str]:
    fake = set(plan.fake_outputs)
    lines = ["Outputs:"]
    for name, value in redact(plan.run.outputs, SECRET_MARK).items():
        note = "  (fake: known only after the resource is created)" if name in fake else ""
        if isinstance(value, str) and "\n" in value:
            shown = f"{len(value.splitlines())} lines, in outputs/{name}.txt"
        else:
            shown = json.dumps(value)
        lines.append(f"    {name}: {shown}{note}")
    return lines


def _policy_lines(report: PolicyReport) -> list[str]:
    advisory = len(report.violations) - len(report.mandatory)
    lines = [
        f"Policies: {len(report.ran)} run, {len(report.mandatory)} mandatory "
        f"violation{'s' if len(report.mandatory) != 1 else ''}, {advisory} advisory"
        + (f", disabled: {', '.join(report.disabled)}" if report.disabled else "")
    ]
    for v in sorted(report.violations, key=lambda v: (v.level != "mandatory", v.policy)):
        lines.append(f"    [{v.level}] {v.policy} ({v.resource or 'stack'}): {v.message}")
    lines += [f"    [not run] {name}: {why}" for name, why in report.not_run]
    lines += [
        f"    [waived] {name}: {level} by the policy config ({own} by default)"
        for name, level, own in report.waived
    ]
    return lines


def _unpinned_lines(plan: Plan) -> list[str]:
    unpinned = plan.unpinned_host_keys
    if not unpinned:
        return []
    return [
        "Unpinned SSH host keys (nodes.allowUnpinnedHostKeys: true): the node step trusts "
        "whatever answers at these addresses with the cephx key and root",
        *(
            f"    node {host['name']} ({host['address']})"
            if host["role"] == "node"
            else f"    the bastion ({host['address']})"
            for host in unpinned
        ),
    ]


def _chart_objects_lines(plan: Plan) -> dict[str, list[str]]:
    """Below the release: what its chart renders, a count per kind."""
    chart = plan.chart
    release = next((r for r in plan.run.resources if r.type == RELEASE_TYPE), None)
    if chart is None or chart.render is None or release is None:
        return {}
    render = chart.render
    counts = render.counts()
    lines = [
        f"chart {render.chart} {render.version}: {sum(counts.values())} objects, "
        f"in chart/ (Helm {render.helm.version}, Kubernetes {render.kubernetes_version})"
    ]
    lines += [f"  {n:>4} {kind}" for kind, n in counts.items()]
    return {release.name: lines}


def _chart_lines(chart: ChartResult) -> list[str]:
    if chart.render is None:
        return [f"Chart render skipped: {chart.skipped} (--require-render makes this an error)"]
    render = chart.render
    lines = [
        f"Chart checks: {len(chart.checks)} run on {len(render.objects)} objects of "
        f"{render.chart} {render.version}, {len(chart.problems)} "
        f"problem{'s' if len(chart.problems) != 1 else ''}"
    ]
    if render.validation_note:
        lines.append(f"    note: {render.validation_note}")
    lines += [f"    [{p.check}] ({p.object or 'chart'}): {p.message}" for p in chart.problems]
    return lines


def tree(plan: Plan, out: Path, files: dict[str, str]) -> str:
    width = max((len(r.type) for r in plan.run.resources), default=20) + 8
    lines = [
        f"Offline plan of stack {plan.stack} (project {plan.project}): "
        "nothing was contacted, no credentials used",
        "",
        f"     {'Type':<{width}} Name",
        f" +   {'pulumi:pulumi:Stack':<{width}} {plan.project}-{plan.stack}",
        *_resource_lines(plan.run, width, _chart_objects_lines(plan)),
        "",
        *_count_lines(plan.run),
        "",
        *_output_lines(plan),
    ]
    if plan.placeholders:
        lines += ["", "Placeholders (secrets the plan could not read; values stand in):"]
        lines += [f"    {p.key}: {p.reason}" for p in plan.placeholders]
    if unpinned := _unpinned_lines(plan):
        lines += ["", *unpinned]
    if plan.policies is not None:
        lines += ["", *_policy_lines(plan.policies)]
    if plan.chart is not None:
        lines += ["", *_chart_lines(plan.chart)]
    lines += ["", f"Rendered files in {out}/:"]
    groups: dict[str, int] = {}
    for relative in files:
        top = relative.split("/", 1)[0] + ("/" if "/" in relative else "")
        groups[top] = groups.get(top, 0) + 1
    for name, n in groups.items():
        lines.append(
            f"    {name} ({n} file{'s' if n > 1 else ''})" if name.endswith("/") else f"    {name}"
        )
    return plan.scrub("\n".join(lines))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The plan's options, for `python -m sitectl plan`."""
    parser.add_argument("site", help="stack name: reads Pulumi.SITE.yaml")
    parser.add_argument(
        "--stack-file", type=Path, metavar="PATH", help="stack file instead of Pulumi.SITE.yaml"
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a secret config value (KEY with or without the project prefix); it lands in "
        "the process list and shell history: prefer --secret-file or JHP_SECRET_<KEY>",
    )
    parser.add_argument(
        "--secret-file",
        action="append",
        default=[],
        metavar="KEY=PATH",
        help="a secret config value read from a file (an SSH key file as it is)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="output directory (default build/plan/SITE)"
    )
    parser.add_argument("--json", action="store_true", help="print plan.json instead of a tree")
    parser.add_argument(
        "--policy-config",
        type=Path,
        metavar="PATH",
        help="policy configuration, as for `pulumi preview --policy-pack-config`",
    )
    render = parser.add_mutually_exclusive_group()
    render.add_argument(
        "--no-render", action="store_true", help="do not render the chart with Helm"
    )
    render.add_argument(
        "--require-render",
        action="store_true",
        help="fail (exit 2) when the chart cannot be rendered, instead of skipping the render",
    )


def _plan_and_render(args: argparse.Namespace, stack_file: Path, secrets: dict[str, str]) -> Plan:
    """The plan with its chart rendered, the waits overlapped: `helm version` runs while
    the program does, `helm template` while the policies do (a worker thread waits on
    each subprocess; the GIL is free meanwhile)."""
    from concurrent.futures import ThreadPoolExecutor

    from sitectl.helm import find_helm

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="render") as pool:
        helm_found = pool.submit(find_helm)
        plan = build_plan(args.site, stack_file, secrets)
        rendering = pool.submit(
            render_chart, plan, require=args.require_render, helm_found=helm_found
        )
        apply_policies(plan, args.policy_config)
        rendering.result()  # its PlanError, if any, is raised here
    return plan


def run(args: argparse.Namespace) -> int:
    stack_file = args.stack_file or PROJECT_DIR / f"Pulumi.{args.site}.yaml"
    out = args.out or PROJECT_DIR / "build" / "plan" / args.site
    secrets: dict[str, str] = {}
    try:
        try:
            check_stack_name(args.site)
        except StackFileError as err:
            raise PlanError(str(err)) from None
        if args.stack_file is None and not stack_file.is_file():
            # The usual cause is a new site or a typo in STACK: say what makes one.
            raise PlanError(
                f"unknown stack {args.site!r}: there is no {stack_file.name} "
                f"(`make new-site STACK={args.site}` writes one from the template; "
                "or give the stack file with --stack-file)"
            )
        project = project_name(PROJECT_DIR)
        sources = {
            SECRET_ENV_PREFIX: secrets_from_environment(os.environ, project),
            "--secret-file ": secrets_from_files(args.secret_file, project),
            "--secret ": parse_secret_args(args.secret, project),
        }
        for label, given in sources.items():
            check_secret_keys(label, given, project)
        secrets = {k: v for given in sources.values() for k, v in given.items()}
        gc_tuning.tune()
        if args.no_render:
            plan = build_plan(args.site, stack_file, secrets)
            apply_policies(plan, args.policy_config)
        else:
            plan = _plan_and_render(args, stack_file, secrets)
        files = write(plan, out)
    except PlanError as err:
        # One line per problem, each marked, so a CI log's search for "error:" finds them all.
        # A bad setting's line quotes its value, which may be a secret pasted in the
        # wrong place: the secrets given are replaced here too.
        for line in scrub_given(str(err), secrets).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(plan.scrub(json.dumps(plan.published, indent=2, sort_keys=True)))
        if plan.chart is not None and plan.chart.render is None:
            print(plan.scrub(_chart_lines(plan.chart)[0]), file=sys.stderr)
    else:
        print(tree(plan, out, files))
    if plan.policies is not None and plan.policies.mandatory:
        return EXIT_VIOLATIONS
    if plan.chart is not None and plan.chart.problems:
        return EXIT_VIOLATIONS
    return EXIT_OK
