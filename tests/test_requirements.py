"""What `make plan` installs (requirements.txt, policy/requirements.txt) covers what the
program, the plan and the policy pack import: a fresh clone plans without the dev tools.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions

from tests.sites import ROOT

RUNTIME_CODE = [
    ROOT / "__main__.py",
    *sorted((ROOT / "components").glob("*.py")),
    *sorted((ROOT / "policy").glob("*.py")),
    *sorted((ROOT / "sitectl").glob("*.py")),
]
LOCAL = {"components", "sitectl", "policy", "rules", "chart_versions"}


def imported_modules() -> set[str]:
    names: set[str] = set()
    for path in RUNTIME_CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in LOCAL}


def declared() -> set[str]:
    names = set()
    for path in (ROOT / "requirements.txt", ROOT / "policy" / "requirements.txt"):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
            if match and not line.lstrip().startswith(("#", "-")):
                names.add(match.group(1).lower().replace("_", "-"))
    return names


def test_every_runtime_import_is_a_runtime_requirement() -> None:
    distributions = packages_distributions()
    missing = {}
    for module in imported_modules():
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & declared():
            missing[module] = sorted(dists)
    assert missing == {}, f"imported at run time but not in requirements.txt: {missing}"
