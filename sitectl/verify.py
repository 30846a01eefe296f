"""Verify a deployed site from where this runs: the runbook's post-deployment checks.

    python -m sitectl verify SITE [--stack-file PATH] [--outputs FILE] [--ca-file PEM]
        [--resolve HOST:ADDRESS ...] [--only CHECKS] [--skip CHECKS] [--spawn] [--json FILE]

Reads the stack's config (hub URL, nodes, identity provider) and, where it can, the
stack's outputs (`--outputs FILE`, else `pulumi stack output --json --show-secrets` when
the Pulumi CLI is on PATH). Then, in this order, each bounded in time and each run even
when an earlier one failed:

1. front-door: DNS of the hub host, its TLS certificate, /hub/health, the login page, and
   no redirect or cookie that drops to http;
2. node-ports: every node's NodePort as the HAProxy backend reaches it;
3. identity-provider: discovery document, endpoints, scopes, the hub's authorization
   request, and whether the provider accepts its callback URL;
4. node-mounts: the share on every node, over SSH with pinned host keys;
5. session (only with --spawn): a real server of the health-check user, started, used
   through its contents API, and stopped.

Prints one line per check (ok, FAIL, skipped) and for each failure the runbook's advice
that fits. Exit codes: 0 every check that ran passed; 1 one failed; 2 invalid input.
Secrets (the SSH key, the health check's token) come from the environment or files and
never appear on a command line or in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.validators import private_key_block
from sitectl.files import read_input_text
from sitectl.stackfile import (
    StackFileError,
    check_readable,
    check_stack_name,
    load_stack_file,
)

if TYPE_CHECKING:
    from components.config import SiteConfig
    from sitectl.probe import Client

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
GROUPS = ("front-door", "node-ports", "identity-provider", "node-mounts", "session")
# Secrets verify reads, besides the stack outputs.
SSH_KEY_ENV = "JHP_SECRET_sshPrivateKey"
TOKEN_ENV = "JHP_VERIFY_TOKEN"
# Outputs an --outputs file must hold: the program exports them all.
REQUIRED_OUTPUTS = ("hub_url", "oauth_callback_url", "share_export_path", "storage_class")
SECRET_MARK = "[secret]"


class VerifyError(Exception):
    """Invalid input; the message is the one line shown."""


@dataclass
class Result:
    group: str
    name: str
    status: str
    """ok, FAIL or skipped."""
    detail: str
    advice: str = ""
    seconds: float = 0.0


@dataclass
class Inputs:
    """What the checks read: the site config, outputs, secrets, and how to connect."""

    stack: str
    site: SiteConfig
    outputs: dict[str, Any]
    outputs_note: str
    """Where the outputs came from, or why there are none."""
    client: Client
    ssh_key: str | None = field(default=None, repr=False)
    ssh_key_note: str = ""
    token: str | None = field(default=None, repr=False)
    token_note: str = ""
    check_timeout: float = 15.0
    spawn_timeout: float = 180.0
    cache: dict[str, Any] = field(default_factory=dict)
    """What one check learnt that the next ones reuse (the discovery document)."""

    def output(self, name: str) -> str | None:
        value = self.outputs.get(name)
        if not isinstance(value, str) or not value or value == SECRET_MARK:
            return None
        return value

    @property
    def hub_url(self) -> str:
        return self.output("hub_url") or self.site.hub_url

    @property
    def callback_url(self) -> str:
        return self.output("oauth_callback_url") or f"{self.site.hub_url}hub/oauth_callback"

    def secrets(self) -> list[str]:
        return [s for s in (self.ssh_key, self.token) if s]


class CheckSkipped(Exception):  # noqa: N818 - an outcome, not an error
    """A check that cannot run here; the message says why."""


class CheckFailed(Exception):  # noqa: N818 - an outcome, not an error
    """A check that failed; the message is the detail, `advice` the runbook's fix."""

    def __init__(self, detail: str, advice: str = "") -> None:
        super().__init__(detail)
        self.advice = advice


class Deadline:
    """A check's time budget; every network call takes at most what is left."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self, cap: float = 10.0) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise CheckFailed(f"did not finish within {self.seconds:.0f} s")
        return min(cap, remaining)


Check = Callable[[Inputs, Deadline], str]
"""Runs one check; returns the ok line's detail, or raises CheckSkipped or CheckFailed."""


# -- input -------------------------------------------------------------------------
def parse_resolve(values: Sequence[str]) -> dict[str, str]:
    import ipaddress

    resolved: dict[str, str] = {}
    for item in values:
        # A host name holds no ':'; an IPv6 address comes in brackets, as curl takes it.
        host, sep, address = item.partition(":")
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        elif ":" in address:
            address = ""
        try:
            ipaddress.ip_address(address)
        except ValueError:
            address = ""
        if not sep or not host or not address or "/" in host:
            raise VerifyError(
                f"--resolve {item!r}: expected HOST:ADDRESS, e.g. "
                "notebook.example.org:192.0.2.10 (an IP address, not a name)"
            )
        resolved[host.lower()] = address
    return resolved


def parse_groups(option: str, values: Sequence[str]) -> list[str]:
    expected = f"expected one of {', '.join(GROUPS)}"
    for value in values:
        # An empty value (`--only "$ONLY"` with ONLY unset) named nothing, so every check ran.
        if not value.strip(" ,"):
            raise VerifyError(f"{option} {value!r}: {expected}")
    chosen = [g.strip() for v in values for g in v.split(",") if g.strip()]
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        raise VerifyError(f"{option} {unknown[0]!r}: {expected}")
    return chosen


def load_site(stack_file: Path, project_dir: Path) -> SiteConfig:
    from components.config import (
        PROJECT,
        ConfigError,
        SiteConfig,
        decode_config_value,
        misspelt_namespaces,
        parse_site_config,
    )

    try:
        stack = load_stack_file(stack_file, PROJECT)
        check_readable(stack, PROJECT, SiteConfig.SECRET_KEYS)
    except StackFileError as err:
        raise VerifyError(str(err)) from None
    misspelt = misspelt_namespaces([*stack.config, *stack.encrypted])
    if misspelt:
        raise VerifyError("\n".join(f"{stack_file}: {line}" for line in misspelt))
    prefix = f"{PROJECT}:"
    secret_keys = {f"{prefix}{k}" for k in SiteConfig.SECRET_KEYS}
    raw = {
        key[len(prefix) :]: decode_config_value(value)
        for key, value in stack.config.items()
        if key.startswith(prefix) and key not in secret_keys
    }
    try:
        return parse_site_config(raw, project_dir)
    except ConfigError as err:
        # One problem a line, each naming the file (run() marks every line an error).
        lines = [f"{stack_file}: {line}" for line in str(err).splitlines()]
        raise VerifyError("\n".join(lines)) from None


def load_outputs(path: Path | None, stack: str) -> tuple[dict[str, Any], str]:
    """The stack's outputs and where they came from (or why there are none)."""
    if path is not None:
        try:
            data = json.loads(read_input_text(path))
        except OSError as err:
            raise VerifyError(f"--outputs {path}: cannot be read ({err.strerror})") from None
        except ValueError as err:
            raise VerifyError(f"--outputs {path}: is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise VerifyError(f"--outputs {path}: is not a JSON object of outputs")
        missing = [k for k in REQUIRED_OUTPUTS if k not in data]
        if missing:
            raise VerifyError(
                f"--outputs {path}: has no {missing[0]!r}; expected the output of "
                f"`pulumi stack output --json --show-secrets -s {stack}`"
            )
        return data, f"outputs from {path}"
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return {}, "no outputs: no Pulumi CLI on PATH and no --outputs FILE"
    try:
        proc = subprocess.run(
            [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {}, "no outputs: `pulumi stack output` did not answer within 60 s"
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]
        return {}, f"no outputs: `pulumi stack output` failed: {reason}"
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return {}, "no outputs: `pulumi stack output --json` printed no JSON"
    return (data if isinstance(data, dict) else {}), f"outputs of stack {stack} (Pulumi CLI)"


def check_outputs_are_this_sites(outputs: dict[str, Any], site: SiteConfig, source: str) -> None:
    """The checks, the session's token among them, go to the hub_url output: outputs of
    another stack, or an http:// URL, would send the token elsewhere or in the clear."""
    url = outputs.get("hub_url")
    if not isinstance(url, str) or not url or url == SECRET_MARK:
        return
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.hostname != site.site.hub_host:
        raise VerifyError(
            f"{source}: hub_url {url!r} is not on https://{site.site.hub_host}/ as the stack "
            "file says (outputs of another stack?); verify sends the health-check token there"
        )


def read_ssh_key(path: Path | None) -> tuple[str | None, str]:
    if path is not None:
        try:
            text = read_input_text(path)
        except (OSError, UnicodeDecodeError) as err:
            # Not the decoder's message: it quotes bytes of the key.
            reason = err.strerror if isinstance(err, OSError) else "not text"
            raise VerifyError(f"--ssh-key-file {path}: cannot be read ({reason})") from None
        return _private_key(text, f"--ssh-key-file {path}"), f"SSH key from {path}"
    value = os.environ.get(SSH_KEY_ENV)
    if value:
        return _private_key(value, f"${SSH_KEY_ENV}"), f"SSH key from ${SSH_KEY_ENV}"
    return None, f"no SSH key: set ${SSH_KEY_ENV} or pass --ssh-key-file"


def _private_key(value: str, source: str) -> str:
    """The key as the program takes it, in the form ssh reads (a CRLF key the program
    logs in with would fail every mount check); a path, a public key or a passphrase is
    bad input, not a failed check on every node."""
    try:
        return private_key_block(value)
    except ValueError as err:
        raise VerifyError(f"{source}: {err}") from None


def read_token(outputs: dict[str, Any]) -> tuple[str | None, str]:
    value = outputs.get("health_check_token")
    if isinstance(value, str) and value and value != SECRET_MARK:
        return value, "token from the health_check_token output"
    value = os.environ.get(TOKEN_ENV)
    if value:
        return value, f"token from ${TOKEN_ENV}"
    return None, (
        f"no health-check token: neither the health_check_token output "
        f"(with --show-secrets) nor ${TOKEN_ENV}"
    )


# -- running -----------------------------------------------------------------------
def run_checks(
    inputs: Inputs,
    groups: Sequence[str],
    progress: Callable[[str], None],
    emit: Callable[[Result], None],
) -> list[Result]:
    from sitectl import verify_checks as vc
    from sitectl.probe import redact

    results: list[Result] = []
    for group in groups:
        for name, check in vc.expand(group, inputs):
            progress(f"... {group}: {name}")
            budget = inputs.spawn_timeout + 60 if group == "session" else inputs.check_timeout
            started = time.monotonic()
            try:
                detail = check(inputs, Deadline(budget))
                result = Result(group, name, "ok", detail)
            except CheckSkipped as why:
                result = Result(group, name, "skipped", str(why))
            except CheckFailed as failure:
                result = Result(group, name, "FAIL", str(failure), failure.advice)
            except Exception as err:  # a check's own bug must not stop the others
                # Redacted before the cut, which could leave a part no scrub recognises.
                reason = " ".join(redact(str(err), inputs.secrets()).split())[:200]
                result = Result(
                    group, name, "FAIL", f"the check broke: {type(err).__name__} {reason}"
                )
            result.seconds = round(time.monotonic() - started, 2)
            result = scrub(result, inputs.secrets())
            results.append(result)
            emit(result)
    return results


def scrub(result: Result, secrets: Sequence[str]) -> Result:
    """A last guard: no secret reaches the output, whatever a remote end echoed."""
    for secret in secrets:
        for attr in ("detail", "advice"):
            text = getattr(result, attr)
            if secret in text:
                setattr(result, attr, text.replace(secret, SECRET_MARK))
    return result


def line_of(result: Result) -> str:
    text = f"{result.status:<8}{result.group:<19}{result.name}: {result.detail}"
    if result.advice:
        text += f"\n{'':8}advice: {result.advice}"
    return text


# -- command line ------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("site", help="stack name: reads Pulumi.SITE.yaml")
    parser.add_argument(
        "--stack-file", type=Path, metavar="PATH", help="stack file instead of Pulumi.SITE.yaml"
    )
    parser.add_argument(
        "--outputs",
        type=Path,
        metavar="FILE",
        help="the stack's outputs (`pulumi stack output --json --show-secrets`) instead of "
        "asking the Pulumi CLI",
    )
    parser.add_argument(
        "--ca-file", type=Path, metavar="PEM", help="a CA to trust besides the system's"
    )
    parser.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:ADDRESS",
        help="connect to ADDRESS for HOST, as curl --resolve (before DNS points at the site)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="CHECKS",
        help=f"run only these groups, comma-separated: {', '.join(GROUPS)}",
    )
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="CHECKS",
        help="leave these groups out, comma-separated",
    )
    parser.add_argument(
        "--spawn",
        action="store_true",
        help="also start, use and stop a real server of the health-check user",
    )
    parser.add_argument(
        "--spawn-timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="seconds a spawn may take before it counts as failed (default 180)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="seconds each other check may take (default 15)",
    )
    parser.add_argument(
        "--ssh-key-file",
        type=Path,
        metavar="FILE",
        help=f"the nodes' SSH private key (default: ${SSH_KEY_ENV})",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")


def check_options(args: argparse.Namespace) -> tuple[dict[str, str], list[str]]:
    """The --resolve map and the check groups to run, or VerifyError for a bad option."""
    resolve = parse_resolve(args.resolve)
    only = parse_groups("--only", args.only)
    skip = parse_groups("--skip", args.skip)
    if args.ca_file is not None and not args.ca_file.is_file():
        raise VerifyError(f"--ca-file {args.ca_file}: is not a file")
    # Not `<= 0`: NaN compares false with everything, and bounded nothing.
    if not all(0 < t < math.inf for t in (args.timeout, args.spawn_timeout)):
        raise VerifyError("--timeout and --spawn-timeout: expected a positive number")
    # A run of no check printed "0 failed" and exited 0, as a site that passed does.
    if "session" in only and not args.spawn:
        raise VerifyError("--only session: the session check runs only with --spawn")
    groups = [g for g in (only or GROUPS) if g not in skip]
    if not groups:
        raise VerifyError("--only and --skip: leave no check to run")
    if args.json is not None:
        # Checked now: the report is written after every check has run.
        if args.json.is_dir():
            raise VerifyError(f"--json {args.json}: is a directory; give a file name")
        if not args.json.parent.is_dir():
            raise VerifyError(f"--json {args.json}: its folder does not exist")
    return resolve, groups


def run(args: argparse.Namespace) -> int:
    from components.config import PROJECT_DIR
    from sitectl.probe import Client

    try:
        try:
            check_stack_name(args.site)
        except StackFileError as err:
            raise VerifyError(str(err)) from None
        stack_file = args.stack_file or PROJECT_DIR / f"Pulumi.{args.site}.yaml"
        if args.stack_file is None and not stack_file.is_file():
            raise VerifyError(
                f"unknown stack {args.site!r}: there is no {stack_file.name} "
                "(give the stack file with --stack-file)"
            )
        resolve, groups = check_options(args)
        site = load_site(stack_file, PROJECT_DIR)
        ssh_key, ssh_note = read_ssh_key(args.ssh_key_file)
        outputs, outputs_note = load_outputs(args.outputs, args.site)
        check_outputs_are_this_sites(
            outputs,
            site,
            f"--outputs {args.outputs}" if args.outputs else f"the outputs of stack {args.site}",
        )
        try:
            client = Client(resolve=resolve, ca_file=str(args.ca_file) if args.ca_file else None)
        except (OSError, ValueError) as err:
            raise VerifyError(
                f"--ca-file {args.ca_file}: not a PEM CA certificate ({err})"
            ) from None
    except VerifyError as err:
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_INVALID

    token, token_note = read_token(outputs)
    inputs = Inputs(
        stack=args.site,
        site=site,
        outputs=outputs,
        outputs_note=outputs_note,
        client=client,
        ssh_key=ssh_key,
        ssh_key_note=ssh_note,
        token=token,
        token_note=token_note,
        check_timeout=args.timeout,
        spawn_timeout=args.spawn_timeout,
    )
    session_left_out = "session" in groups and not args.spawn
    if session_left_out:
        groups.remove("session")
    started = time.monotonic()
    print(f"Verifying stack {args.site}: {inputs.hub_url} from this machine ({outputs_note})")
    sys.stdout.flush()

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def emit(result: Result) -> None:
        print(line_of(result), flush=True)

    results = run_checks(inputs, groups, progress, emit)
    failed = [r for r in results if r.status == "FAIL"]
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "FAIL", "skipped")}
    wall = time.monotonic() - started
    print(
        f"{counts['ok']} ok, {counts['FAIL']} failed, {counts['skipped']} skipped "
        f"in {wall:.1f} s"
        + (" (no --spawn: the session check not run)" if session_left_out else "")
    )
    code = EXIT_FAILED if failed else EXIT_OK
    if args.json is not None:
        report = {
            "stack": args.site,
            "hubUrl": inputs.hub_url,
            "outputs": outputs_note,
            "seconds": round(wall, 2),
            "exitCode": code,
            "results": [asdict(r) for r in results],
        }
        try:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as err:
            print(f"error: --json {args.json}: cannot be written ({err.strerror})", file=sys.stderr)
            return EXIT_INVALID
    return code
