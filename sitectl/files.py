"""Reading the files an operator names on the command line.

A stack file, a policy config, an outputs file, a secret or an SSH key is at most a few
kilobytes. A path to a device or a huge file (`--stack-file /dev/zero`) would otherwise be
read until memory runs out, so a read stops past a bound and says so as an OSError, which
every caller already turns into its one `cannot be read (...)` line.
"""

from __future__ import annotations

import errno
from pathlib import Path

# Far above any real input (espsrc's stack file is under 8 KiB), low enough to read at once.
MAX_INPUT_BYTES = 4 * 1024 * 1024


class InputTooLargeError(OSError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            errno.EFBIG,
            f"more than {MAX_INPUT_BYTES // (1024 * 1024)} MiB, not a file of this kind",
            str(path),
        )


def read_input_text(path: Path) -> str:
    """The file as UTF-8 text; OSError past the bound, UnicodeDecodeError if not text."""
    with path.expanduser().open("rb") as file:
        data = file.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputTooLargeError(path)
    return data.decode("utf-8")
