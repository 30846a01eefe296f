"""The chart resolver: $JHP_CHART_DIR, then the user's cache, then a digest-checked download.

Downloads come from a Helm repository served on 127.0.0.1 by the test: no test reaches the
real chart repository.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sitectl.charts import (
    ChartPackageError,
    ChartUnavailableError,
    chart_member,
    chart_values_and_schema,
    resolve_chart,
)


def fake_package(version: str, name: str = "jupyterhub") -> bytes:
    """A minimal chart package: Chart.yaml, values.yaml and a schema."""
    files = {
        "Chart.yaml": yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version}),
        "values.yaml": "proxy:\n  secretToken: null\n",
        "values.schema.json": '{"type": "object"}',
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Repository:
    """A Helm repository on 127.0.0.1: index.yaml and packages, counting requests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        repo = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def log_message(self, format: str, *args: object) -> None:
                repo.requests.append(self.path)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/charts/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, version: str, data: bytes, digest: str | None = None) -> None:
        charts = self.root / "charts"
        charts.mkdir(parents=True, exist_ok=True)
        (charts / f"pkg-{version}.tgz").write_bytes(data)
        index_path = charts / "index.yaml"
        index = yaml.safe_load(index_path.read_text()) if index_path.exists() else None
        index = index or {"apiVersion": "v1", "entries": {"jupyterhub": []}}
        index["entries"]["jupyterhub"].append(
            {
                "version": version,
                # Relative, as many repositories write them: resolved against the index URL.
                "urls": [f"pkg-{version}.tgz"],
                "digest": digest or hashlib.sha256(data).hexdigest(),
            }
        )
        index_path.write_text(yaml.safe_dump(index))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    repo = Repository(tmp_path / "served")
    try:
        yield repo
    finally:
        repo.close()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment whose cache is the test's own."""
    return {"XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}


def test_download_checks_the_digest_then_caches(
    repository: Repository, env: dict[str, str], tmp_path: Path
) -> None:
    data = fake_package("9.9.9")
    repository.publish("9.9.9", data)
    path = resolve_chart("9.9.9", env=env, download_from=repository.url)
    assert path == tmp_path / "cache" / "jupyterhub-platform" / "charts" / "jupyterhub-9.9.9.tgz"
    assert path.read_bytes() == data
    assert repository.requests == ["/charts/index.yaml", "/charts/pkg-9.9.9.tgz"]
    # The second time it comes from the cache: nothing is fetched.
    assert resolve_chart("9.9.9", env=env, download_from=repository.url) == path
    assert len(repository.requests) == 2


def test_a_package_whose_digest_differs_is_refused_and_not_cached(
    repository: Repository, env: dict[str, str], tmp_path: Path
) -> None:
    repository.publish("9.9.8", fake_package("9.9.8"), digest="0" * 64)
    with pytest.raises(ChartUnavailableError, match=r"differs from the digest 0{64}"):
        resolve_chart("9.9.8", env=env, download_from=repository.url)
    cache = tmp_path / "cache" / "jupyterhub-platform" / "charts"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_the_repository_comes_from_the_environment(
    repository: Repository, env: dict[str, str]
) -> None:
    repository.publish("9.9.7", fake_package("9.9.7"))
    path = resolve_chart("9.9.7", env={**env, "JHP_CHART_REPOSITORY": repository.url})
    assert path.name == "jupyterhub-9.9.7.tgz"


def test_the_chart_dir_comes_first(
    repository: Repository, env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "jupyterhub-9.9.6.tgz").write_bytes(fake_package("9.9.6"))
    repository.publish("9.9.6", fake_package("9.9.6"))
    path = resolve_chart("9.9.6", env={**env, "JHP_CHART_DIR": str(folder)})
    assert path == folder / "jupyterhub-9.9.6.tgz"
    assert repository.requests == []


def test_a_package_of_another_version_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "jupyterhub-9.9.5.tgz").write_bytes(fake_package("9.9.4"))
    with pytest.raises(
        ChartPackageError, match=re.escape("holds chart jupyterhub 9.9.4, not 9.9.5")
    ):
        resolve_chart("9.9.5", env={**env, "JHP_CHART_DIR": str(folder)}, download_from=None)


def test_a_chart_not_to_be_had_names_the_three_places(
    repository: Repository, env: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ChartUnavailableError) as caught:
        resolve_chart(
            "9.9.3", env={**env, "JHP_CHART_DIR": str(tmp_path)}, download_from=repository.url
        )
    message = str(caught.value)
    assert f"not in $JHP_CHART_DIR ({tmp_path})" in message
    assert f"not in the cache ({tmp_path}/cache/jupyterhub-platform/charts)" in message
    assert "index.yaml" in message and "jupyterhub 9.9.3" in message
    with pytest.raises(ChartUnavailableError, match="no download was allowed"):
        resolve_chart("9.9.3", env=env, download_from=None)


def test_an_unreachable_repository_is_unavailable_not_a_crash(env: dict[str, str]) -> None:
    # A port nobody listens on, on loopback: refused at once.
    with pytest.raises(
        ChartUnavailableError,
        match=re.escape("the download of http://127.0.0.1:9/index.yaml failed"),
    ):
        resolve_chart("9.9.2", env=env, download_from="http://127.0.0.1:9/")


def test_members_come_from_the_package(tmp_path: Path) -> None:
    package = tmp_path / "jupyterhub-9.9.1.tgz"
    package.write_bytes(fake_package("9.9.1"))
    defaults, schema = chart_values_and_schema(package)
    assert defaults == {"proxy": {"secretToken": None}}
    assert schema == {"type": "object"}
    with pytest.raises(ChartPackageError, match=re.escape("has no jupyterhub/templates/x.yaml")):
        chart_member(package, "templates/x.yaml")


def test_the_charts_command_fetches_into_the_cache(
    repository: Repository, env: dict[str, str], tmp_path: Path
) -> None:
    repository.publish("9.9.0", fake_package("9.9.0"))
    command = [sys.executable, "-m", "sitectl", "charts", "9.9.0"]
    environ = {"PATH": os.environ["PATH"], **env, "JHP_CHART_REPOSITORY": repository.url}
    done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip().endswith("jupyterhub-platform/charts/jupyterhub-9.9.0.tgz")
    missing = subprocess.run(
        [*command[:-1], "9.8.0"], env=environ, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: chart jupyterhub 9.8.0 cannot be had:")
    assert len(missing.stderr.splitlines()) == 1


@pytest.mark.parametrize("version", ["latest", "4.4", "../../../x", "-v", "4.4.0; id"])
def test_the_charts_command_refuses_what_is_no_chart_version(
    version: str,
    repository: Repository,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each went to the repository (and '../../../x' into file names) before failing."""
    from sitectl.__main__ import main

    for key, value in {**env, "JHP_CHART_REPOSITORY": repository.url}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("JHP_CHART_DIR", raising=False)
    assert main(["charts", "--", version]) == 2
    err = capsys.readouterr().err
    assert err == f"error: VERSION {version!r}: is not a chart version such as 3.1.0\n"
    assert repository.requests == []
