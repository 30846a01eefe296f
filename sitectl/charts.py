"""The jupyterhub chart package for a chart version: found locally, or fetched and checked.

A package `jupyterhub-<version>.tgz` is looked for, in this order:

1. the folder named by `JHP_CHART_DIR` (a mirror, or packages a CI job provides);
2. the per-user cache, `$XDG_CACHE_HOME/jupyterhub-platform/charts` (default
   `~/.cache/jupyterhub-platform/charts`);
3. the chart repository the program installs from: its `index.yaml` names the package's
   URL and sha256 digest; the download is checked against that digest before it is cached.

Nothing here is vendored in the repository. A package that cannot be had is a
`ChartUnavailableError` naming all three places, so the caller can say why it went without.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# The safe loader, in C where PyYAML has it: the repository index is several MB.
_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CHART_NAME = "jupyterhub"
# The repository the program's Helm release installs from (components/jupyterhub.py).
DEFAULT_REPOSITORY = "https://hub.jupyter.org/helm-chart/"
CHART_DIR_ENV = "JHP_CHART_DIR"
REPOSITORY_ENV = "JHP_CHART_REPOSITORY"
# Short: the plan goes on without the render when the repository cannot be reached.
DOWNLOAD_TIMEOUT_SECONDS = 10.0
# The published index lists every development build; a few MB at most.
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_PACKAGE_BYTES = 16 * 1024 * 1024


class ChartUnavailableError(Exception):
    """No package of the requested chart version could be found or fetched."""


class ChartPackageError(Exception):
    """A package was found but is not the chart version asked for, or is unreadable."""


def package_name(version: str) -> str:
    return f"{CHART_NAME}-{version}.tgz"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jupyterhub-platform" / "charts"


def repository_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY


def chart_member(package: Path, name: str) -> bytes:
    """A file of the chart (`values.yaml`, `values.schema.json`, ...) read from the package."""
    try:
        with tarfile.open(package, "r:gz") as archive:
            member = archive.extractfile(f"{CHART_NAME}/{name}")
            if member is None:
                raise ChartPackageError(f"{package}: {CHART_NAME}/{name} is not a file")
            return member.read()
    except KeyError:
        raise ChartPackageError(f"{package}: has no {CHART_NAME}/{name}") from None
    except (OSError, tarfile.TarError) as err:
        raise ChartPackageError(f"{package}: is not a readable chart package ({err})") from None


def _check_version(package: Path, version: str) -> Path:
    chart = yaml.safe_load(chart_member(package, "Chart.yaml"))
    chart = chart if isinstance(chart, dict) else {}
    name, found = chart.get("name"), chart.get("version")
    if name != CHART_NAME or found != version:
        raise ChartPackageError(f"{package}: holds chart {name} {found}, not {version}")
    return package


def _fetch(url: str, limit: int) -> bytes:
    # Callers pass http(s) URLs only (checked in `download`).
    request = urllib.request.Request(url, headers={"User-Agent": "jupyterhub-platform"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310
            data: bytes = response.read(limit + 1)
    except (urllib.error.URLError, OSError) as err:
        raise ChartUnavailableError(f"the download of {url} failed: {err}") from None
    if len(data) > limit:
        raise ChartUnavailableError(f"{url} is larger than {limit} bytes")
    return data


def _index_entry(index: Any, version: str, repository: str) -> tuple[str, str]:
    """The package URL and sha256 digest the repository's index gives for a version."""
    entries = index.get("entries", {}).get(CHART_NAME, []) if isinstance(index, dict) else []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("version") == version:
            urls = entry.get("urls") or []
            digest = entry.get("digest")
            if not urls or not isinstance(digest, str):
                break
            return urllib.parse.urljoin(repository, str(urls[0])), digest.lower()
    raise ChartUnavailableError(f"{repository}index.yaml lists no {CHART_NAME} {version}")


def download(version: str, repository: str, into: Path) -> Path:
    """Fetch a version's package from a Helm repository, check its digest, store it."""
    if not repository.endswith("/"):
        repository += "/"
    if urllib.parse.urlsplit(repository).scheme not in ("https", "http"):
        raise ChartUnavailableError(f"{repository} is not an http(s) chart repository")
    index_url = f"{repository}index.yaml"
    try:
        index = yaml.load(_fetch(index_url, MAX_INDEX_BYTES), _SAFE_LOADER)  # noqa: S506
    except yaml.YAMLError as err:
        raise ChartUnavailableError(f"{index_url} is not a repository index: {err}") from None
    url, digest = _index_entry(index, version, repository)
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ChartUnavailableError(f"the index points at {url}, which is not http(s)")
    data = _fetch(url, MAX_PACKAGE_BYTES)
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ChartUnavailableError(
            f"{url}: sha256 {actual} differs from the digest {digest} in the repository index; "
            "not used"
        )
    into.mkdir(parents=True, exist_ok=True)
    target = into / package_name(version)
    # Written whole, then renamed: a concurrent reader never sees half a package.
    with tempfile.NamedTemporaryFile(dir=into, prefix=".partial-", delete=False) as tmp:
        tmp.write(data)
    Path(tmp.name).replace(target)
    try:
        return _check_version(target, version)
    except ChartPackageError:
        target.unlink()
        raise


def resolve_chart(
    version: str,
    *,
    env: Mapping[str, str] | None = None,
    download_from: str | None = "",
) -> Path:
    """The path of the package for a chart version (see the module docstring).

    `download_from` is the repository to fetch from when no local copy exists: "" means the
    one `JHP_CHART_REPOSITORY` names, or the program's repository; None never downloads.
    """
    env = os.environ if env is None else env
    tried: list[str] = []
    folder = env.get(CHART_DIR_ENV)
    if folder:
        candidate = Path(folder) / package_name(version)
        if candidate.is_file():
            return _check_version(candidate, version)
        tried.append(f"not in ${CHART_DIR_ENV} ({folder})")
    else:
        tried.append(f"${CHART_DIR_ENV} is not set")
    cache = cache_dir(env)
    cached = cache / package_name(version)
    if cached.is_file():
        try:
            return _check_version(cached, version)
        except ChartPackageError as err:
            tried.append(f"the cached copy is unusable ({err})")
    else:
        tried.append(f"not in the cache ({cache})")
    if download_from is None:
        tried.append("no download was allowed")
    else:
        repository = download_from or repository_url(env)
        try:
            return download(version, repository, cache)
        except (ChartUnavailableError, ChartPackageError) as err:
            tried.append(str(err))
    raise ChartUnavailableError(f"chart {CHART_NAME} {version} cannot be had: {'; '.join(tried)}")


def chart_values_and_schema(package: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The chart's default values and its values schema, from the package."""
    defaults = yaml.load(io.BytesIO(chart_member(package, "values.yaml")), _SAFE_LOADER)  # noqa: S506
    schema = json.loads(chart_member(package, "values.schema.json"))
    return defaults, schema


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("versions", nargs="+", metavar="VERSION", help="chart version, e.g. 4.4.0")


def run(args: argparse.Namespace) -> int:
    """`python -m sitectl charts VERSION...`: have each package at hand, print its path."""
    from components.validators import semver

    code = 0
    for version in args.versions:
        try:
            # Before any file name or request is made of it.
            semver(version)
        except ValueError as err:
            print(f"error: VERSION {version!r}: {err}", file=sys.stderr)
            code = 2
            continue
        try:
            print(resolve_chart(version))
        except (ChartUnavailableError, ChartPackageError) as err:
            print(f"error: {err}", file=sys.stderr)
            code = 2
    return code
