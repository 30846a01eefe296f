"""Files named on the command line are read up to a bound: a device or a huge file given by
mistake (`--stack-file /dev/zero`) is one line, not a read until memory runs out."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitectl.__main__ import main
from sitectl.files import MAX_INPUT_BYTES, read_input_text

TOO_LARGE = "cannot be read (more than 4 MiB, not a file of this kind)"


@pytest.fixture
def huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge"
    with path.open("wb") as file:
        file.truncate(MAX_INPUT_BYTES + 1)  # sparse: no disk used
    return path


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["plan", "espsrc", "--stack-file", "{f}"], "error: {f}: "),
        (["plan", "espsrc", "--policy-config", "{f}"], "error: --policy-config {f}: "),
        (
            ["plan", "espsrc", "--secret-file", "sshPrivateKey={f}"],
            "error: --secret-file sshPrivateKey: {f} ",
        ),
        (["verify", "espsrc", "--stack-file", "{f}"], "error: {f}: "),
        (["verify", "espsrc", "--outputs", "{f}"], "error: --outputs {f}: "),
        (
            ["verify", "espsrc", "--ssh-key-file", "{f}", "--only", "node-mounts"],
            "error: --ssh-key-file {f}: ",
        ),
    ],
)
def test_an_oversized_input_is_one_line(
    huge: Path, args: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.format(f=huge) for a in args]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", shown.format(f=huge) + TOO_LARGE + "\n")


def test_a_device_is_read_up_to_the_bound() -> None:
    with pytest.raises(OSError, match="more than 4 MiB"):
        read_input_text(Path("/dev/zero"))
