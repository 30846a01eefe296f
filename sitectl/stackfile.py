"""Read a `Pulumi.<stack>.yaml` into the config map the Python language host passes.

The Pulumi CLI hands a program its config as strings keyed `namespace:key`: structured
values as JSON text, scalars as their text, and `secure:` values decrypted. Offline nothing
can be decrypted, so `secure:` values are reported instead of read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sitectl.files import read_input_text


class StackFileError(ValueError):
    """The stack file cannot be read; the message is one line."""


# What the Pulumi CLI allows in a stack name, and not a leading '.' (`..` would make the
# plan's default --out build/plan/.. and the stack file Pulumi...yaml).
_STACK_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def check_stack_name(name: str) -> str:
    """The SITE argument of plan and verify, or StackFileError: it names the stack file
    and the plan's directory, and becomes the owner recorded by the node scripts."""
    if _STACK_NAME.fullmatch(name) is None:
        raise StackFileError(
            f"site {name!r}: is not a stack name (letters, digits, '_', '.' and '-', starting "
            "with a letter, digit or '_', at most 100 characters)"
        )
    return name


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML as the Pulumi CLI reads it: a date-like scalar stays text. libyaml's parser
    where PyYAML has it: about 7x faster on a stack with hundreds of nodes."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _unsupported_tag(loader: yaml.constructor.SafeConstructor, node: yaml.Node) -> Any:
    # These make bytes, dates and sets, which config (JSON text) cannot carry: refused
    # where they are written rather than failing later as an unprintable value.
    raise yaml.constructor.ConstructorError(
        None, None, f"{node.tag.rsplit(':', 1)[-1]!r} values are not supported here; "
        "write plain text", node.start_mark
    )  # fmt: skip


for _tag in ("binary", "timestamp", "set"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _unsupported_tag)


def _construct_int(loader: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> Any:
    # Python reads no integer of more than 4300 digits (sys.get_int_max_str_digits):
    # a ValueError without a line, which is no YAMLError.
    try:
        return loader.construct_yaml_int(node)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, "a number too long to read", node.start_mark
        ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _construct_mapping(loader: yaml.constructor.SafeConstructor, node: yaml.Node) -> Any:
    # PyYAML keeps the last of two equal keys without a word; the YAML spec requires keys
    # to be unique. A key written twice is refused, naming both lines (a `<<` merge may
    # still be overridden: that is what merging is for).
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key]})",
                    key_node.start_mark,
                )  # fmt: skip
            seen[key] = line
    return loader.construct_yaml_map(node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


@dataclass
class StackFile:
    path: Path
    config: dict[str, str] = field(default_factory=dict)
    secret_keys: list[str] = field(default_factory=list)
    encrypted: list[str] = field(default_factory=list)
    """Keys whose value is `secure:` ciphertext, which only the Pulumi CLI can decrypt."""
    raw: dict[str, Any] = field(default_factory=dict)
    """Each key's value as the YAML holds it (`secure:` maps included)."""


def _has_secure(value: Any) -> bool:
    return _secure_at(value, "") is not None


def _secure_at(value: Any, where: str) -> str | None:
    """Where the first `secure:` value is, as the key is written (hub.oauth.clientId)."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return where
        for key, inner in value.items():
            found = _secure_at(inner, f"{where}.{key}")
            if found is not None:
                return found
    if isinstance(value, list):
        for i, inner in enumerate(value):
            found = _secure_at(inner, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def check_readable(stack: StackFile, project: str, secrets: Sequence[str]) -> None:
    """StackFileError if a setting of `project` other than `secrets` is encrypted.

    Offline nothing decrypts, so such a setting could only be left out, and a site without
    it is told it lacks hub (or that hub is a placeholder), the wrong thing to fix."""
    for key in stack.encrypted:
        namespace, _, name = key.rpartition(":")
        if namespace == project and name not in secrets:
            where = _secure_at(stack.raw.get(key), name) or name
            raise StackFileError(
                f"{where}: is encrypted (secure:), which only the Pulumi CLI can decrypt, and "
                f"only {' and '.join(secrets)} are secrets: set it in plain text"
            )


def _as_config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _yaml_error_where(err: yaml.YAMLError) -> str:
    """ " at line N: problem" for a YAML error, N being the line the mistake is on.

    The parser notices a key without its colon, an unclosed quote or an unclosed `[` only
    on a later line (its problem mark); the context mark is where the token it could not
    finish began, which is the line the operator must fix."""
    problem = getattr(err, "problem", None) or "invalid YAML"
    context = getattr(err, "context", None) or ""
    mark = getattr(err, "problem_mark", None)
    start = getattr(err, "context_mark", None)
    if start is not None and context.startswith(("while scanning a", "while parsing a flow")):
        return f" at line {start.line + 1}: {problem} ({context} that starts there)"
    return f" at line {mark.line + 1}: {problem}" if mark is not None else f": {problem}"


def _config_section(path: Path) -> dict[Any, Any]:
    """The stack file's `config:` map, or StackFileError saying what is wrong, where."""
    try:
        text = read_input_text(path)
    except OSError as err:
        raise StackFileError(f"{path}: cannot be read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise StackFileError(
            f"{path}: is not UTF-8 text (byte 0x{err.object[err.start]:02x} at line {line}); "
            "save it as UTF-8"
        ) from None
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        raise StackFileError(f"{path}: is not valid YAML{_yaml_error_where(err)}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise StackFileError(f"{path}: is not a map with a `config:` section")
    if "config" not in doc:
        # A namespace:key at the top: the settings lost their `config:` line.
        stray = next((k for k in doc if isinstance(k, str) and ":" in k), None)
        if stray is not None:
            raise StackFileError(
                f"{path}: {stray}: is at the top level; settings go under `config:`"
            )
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(f"{path}: `config:` is not a map of keys to values")
    return config


# More values than any site has (a thousand nodes are some ten thousand): what YAML
# aliases of aliases expand to when written out as JSON text, exponentially.
MAX_VALUES = 1_000_000


def _count_values(value: Any, budget: int) -> int:
    """How many values `value` holds, counting aliases as often as they occur; stops
    counting (returns more than `budget`) once past the budget."""
    count, stack = 0, [value]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_stack_file(path: Path, project: str) -> StackFile:
    out = StackFile(path=path)
    for key, value in _config_section(path).items():
        if _count_values(value, MAX_VALUES) > MAX_VALUES:
            raise StackFileError(
                f"{path}: {key}: expands to more than {MAX_VALUES} values (YAML aliases?)"
            )
        if not isinstance(key, str) or not key:
            raise StackFileError(f"{path}: config key {key!r} is not a string")
        namespace, colon, name = key.rpartition(":")
        if colon and not (namespace and name):
            # `jupyterhub-platform:` alone would reach the program as a setting named "".
            raise StackFileError(f"{path}: config key {key!r} is not of the form namespace:name")
        full = key if ":" in key else f"{project}:{key}"
        out.raw[full] = value
        if _has_secure(value):
            out.encrypted.append(full)
            out.secret_keys.append(full)
            continue
        if value is None:
            continue
        out.config[full] = _as_config_text(value)
    return out
