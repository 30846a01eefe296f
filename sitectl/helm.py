"""The Helm that renders the jupyterhub chart for the plan: Helm 3, never Helm 4.

The Pulumi Kubernetes provider's `helm.v3.Release` embeds Helm 3, so a Helm 3 render is
what a deploy would make; Helm 4 changes how charts render and is refused. The binary is
found in this order:

1. the path (or command name) in `JHP_HELM`: the operator's explicit choice, so a Helm
   that is not Helm 3 there is refused rather than passed over;
2. a `helm` on PATH that is Helm 3 (most operators have one);
3. the pinned Helm 3 that `make` installs into the project's git-ignored tool folder
   (`.tools/bin/helm`, see `sitectl/install-helm.sh`).

`python -m sitectl.helm extract LAYER_ZIP DEST` is the install's last step. This module
uses the standard library only: `make` runs it with the system's Python, before any
virtualenv exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HELM_ENV = "JHP_HELM"
PROJECT_DIR = Path(__file__).resolve().parent.parent
TOOLS_DIR = PROJECT_DIR / ".tools"
PINNED_HELM = TOOLS_DIR / "bin" / "helm"
# What the npm package pinned in sitectl/helm-npm/ carries (lib/layer.zip, helm/helm).
PINNED_VERSION = "v3.17.3"
LAYER_MEMBER = "helm/helm"
VERSION_TIMEOUT_SECONDS = 20.0
_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)\S*")


class HelmUnavailableError(Exception):
    """No usable Helm 3; the message is one line saying what was tried."""


@dataclass(frozen=True)
class Helm:
    path: str
    version: str
    """As Helm prints it, e.g. v3.17.3."""
    source: str
    """Where it was found: $JHP_HELM, PATH or the pinned install."""


def helm_version(path: str) -> str:
    """The version a Helm binary reports (`v3.17.3`), or HelmUnavailableError."""
    try:
        done = subprocess.run(
            [path, "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_SECONDS,
            check=False,
            env=helm_environment(),
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise HelmUnavailableError(f"{path} does not run ({err})") from None
    found = _VERSION.fullmatch(done.stdout.strip())
    if done.returncode != 0 or found is None:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise HelmUnavailableError(
            f"{path} is not a Helm that reports its version ({said[0] if said else 'no output'})"
        )
    return done.stdout.strip()


def helm_major(version: str) -> int:
    found = _VERSION.fullmatch(version)
    return int(found.group(1)) if found else 0


def refusal(path: str, version: str) -> str:
    return (
        f"{path} is Helm {version}; the render needs Helm 3, the Helm the Pulumi Kubernetes "
        "provider embeds"
    )


def helm_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Helm runs in: the caller's, minus settings that would make
    `helm template` of a local package read a kubeconfig or contact a cluster."""
    env = dict(os.environ if env is None else env)
    for name in ("KUBECONFIG", "HELM_KUBECONTEXT", "HELM_KUBEAPISERVER", "HELM_KUBETOKEN"):
        env.pop(name, None)
    return env


def find_helm(env: Mapping[str, str] | None = None, pinned: Path = PINNED_HELM) -> Helm:
    """The Helm 3 to render with (see the module docstring), or HelmUnavailableError."""
    env = os.environ if env is None else env
    explicit = env.get(HELM_ENV)
    if explicit:
        path = shutil.which(explicit, path=env.get("PATH")) if "/" not in explicit else explicit
        if path is None:
            raise HelmUnavailableError(f"${HELM_ENV} ({explicit}) is not an executable")
        try:
            version = helm_version(path)
        except HelmUnavailableError as err:
            raise HelmUnavailableError(f"${HELM_ENV}: {err}") from None
        if helm_major(version) != 3:
            raise HelmUnavailableError(f"${HELM_ENV}: {refusal(path, version)}")
        return Helm(path, version, f"${HELM_ENV}")
    tried = [f"${HELM_ENV} is not set"]
    on_path = shutil.which("helm", path=env.get("PATH"))
    if on_path is None:
        tried.append("no helm on PATH")
    else:
        try:
            version = helm_version(on_path)
            if helm_major(version) == 3:
                return Helm(on_path, version, "PATH")
            tried.append(refusal(on_path, version))
        except HelmUnavailableError as err:
            tried.append(str(err))
    if pinned.is_file():
        try:
            version = helm_version(str(pinned))
            if helm_major(version) == 3:
                return Helm(str(pinned), version, "pinned")
            tried.append(refusal(str(pinned), version))
        except HelmUnavailableError as err:
            tried.append(str(err))
    else:
        tried.append(f"the pinned Helm is not installed ({pinned}; `make` installs it with npm)")
    raise HelmUnavailableError(f"no Helm 3: {'; '.join(tried)}")


def extract(layer_zip: Path, dest: Path) -> str:
    """Take the helm binary out of the npm package's layer.zip; return its version.

    Written beside `dest` and renamed into place once it has reported a Helm 3 version, so
    an interrupted install leaves no half binary where the plan looks.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(layer_zip) as archive:
        data = archive.read(LAYER_MEMBER)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".helm-", delete=False) as tmp:
        tmp.write(data)
    partial = Path(tmp.name)
    try:
        partial.chmod(0o755)
        version = helm_version(str(partial))
        if helm_major(version) != 3:
            raise HelmUnavailableError(refusal(str(layer_zip), version))
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)
    return version


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "extract":
        print("usage: python -m sitectl.helm extract LAYER_ZIP DEST", file=sys.stderr)
        return 2
    try:
        version = extract(Path(args[1]), Path(args[2]))
    except (OSError, KeyError, zipfile.BadZipFile, HelmUnavailableError) as err:
        print(f"error: the pinned Helm could not be installed: {err}", file=sys.stderr)
        return 1
    if version != PINNED_VERSION:
        print(f"note: {args[1]} carries Helm {version}, not {PINNED_VERSION}", file=sys.stderr)
    print(f"Helm {version} installed at {args[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
