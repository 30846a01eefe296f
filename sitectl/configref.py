"""The config reference, `docs/config.md`, generated from the site config model.

`python -m sitectl config-reference` writes it (`make docs`); `--check` exits 1 when the
file is not what the model gives, which a test runs so the reference cannot drift from the
model. What a key accepts is taken from its validator's own error message (the text after
"is not"), so the reference and the error an operator gets say the same thing.
"""

from __future__ import annotations

import argparse
import enum
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import AfterValidator, BaseModel
from pydantic.fields import FieldInfo

from components.config import PROJECT_DIR, SiteConfig

REFERENCE = PROJECT_DIR / "docs" / "config.md"

HEADER = """\
# Site config reference

Every key of a `Pulumi.<site>.yaml`, under `jupyterhub-platform:`. Generated from the site
config model (`components/config.py`) by `make docs`; a test fails when this file and the
model differ, so edit the model's descriptions, not this file.

Keys are written as in the stack file (camelCase); `hosts[]` means each item of the list.
"Accepts" is what the key's check expects, in the words of the error it gives otherwise.
"""

SECRETS = """\
## Secrets

Set with `pulumi config set --secret KEY ...`, never in plain text (the program refuses a
secret stored in plain text).

| Key | Required | Description |
| --- | --- | --- |
| `oauthClientSecret` | unless `secrets.source` is `vault` | the hub's client secret at the identity provider |
| `sshPrivateKey` | yes | private key of `nodes.sshUser` (no passphrase: the node steps cannot type one), e.g. `pulumi config set --secret sshPrivateKey < key-file` |
"""  # noqa: E501 (a Markdown table row is one line)

# Values that fail every check of their type, to read what the check expects.
_PROBES: dict[type, Any] = {str: "\x00", int: -1, float: -1.0}


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """(base type, Annotated metadata, may be null) of a field's annotation."""
    metadata: list[Any] = []
    nullable = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata += extra
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            nullable = nullable or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, metadata, nullable
            annotation = args[0]
        else:
            return annotation, metadata, nullable


def _accepts(base: Any, metadata: list[Any]) -> str:
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in base)
    probe = _PROBES.get(base)
    phrases = []
    for item in metadata:
        if not isinstance(item, AfterValidator) or probe is None:
            continue
        try:
            item.func(probe)  # type: ignore[call-arg]
        except ValueError as err:
            text = str(err)
            text = text[len("is not ") :] if text.startswith("is not ") else text
            phrases.append(f"a whole number {text}" if text.startswith("in ") else text)
    return "; ".join(phrases)


def _type_name(annotation: Any) -> str:
    base, _, _ = _unwrap(annotation)
    origin = typing.get_origin(base)
    if origin is list:
        item = _type_name(typing.get_args(base)[0])
        return "list of sections" if item == "section" else f"list of {item}"
    if origin is dict:
        key, value = typing.get_args(base)
        return f"map of {_type_name(key)} to {_type_name(value)}"
    if isinstance(base, type) and issubclass(base, BaseModel):
        return "section"
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return "string"
    names = {str: "string", int: "integer", float: "number", bool: "true/false"}
    return names.get(base, "any value") if isinstance(base, type) else "any value"


def _show_default(value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "its keys' defaults"
    if value in ([], {}):
        return "none"
    if isinstance(value, list):
        return "`[" + ", ".join(map(str, value)) + "]`"
    return f"`{value}`"


def _required(field: FieldInfo) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return _show_default(field.default_factory())  # type: ignore[call-arg]
    return "unset" if field.default is None else _show_default(field.default)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, list[str], type[BaseModel]]]:
    """(section key, table rows, model) for `model` and every section below it."""
    rows: list[str] = []
    below: list[tuple[str, list[str], type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        base, metadata, _ = _unwrap(field.annotation)
        # pydantic keeps the checks of a plain `x: Annotated[...]` field in field.metadata.
        metadata = [*field.metadata, *metadata]
        item = base
        if typing.get_origin(base) is list:
            item, metadata, _ = _unwrap(typing.get_args(base)[0])
        if isinstance(item, type) and issubclass(item, BaseModel):
            suffix = "[]." if item is not base else "."
            below += _rows(item, f"{key}{suffix}")
        rows.append(
            "| "
            + " | ".join(
                [
                    f"`{key}`",
                    _type_name(field.annotation),
                    _required(field),
                    _cell(_accepts(item, metadata)),
                    _cell(field.description or ""),
                ]
            )
            + " |"
        )
    return [(prefix.rstrip("."), rows, model), *below]


def render() -> str:
    listed = [line.split("`")[1] for line in SECRETS.splitlines() if line.startswith("| `")]
    if listed != list(SiteConfig.SECRET_KEYS):
        raise RuntimeError(
            f"the reference lists secrets {listed}, the model {SiteConfig.SECRET_KEYS}"
        )
    parts = [HEADER]
    for name, field in SiteConfig.model_fields.items():
        section_model = _unwrap(field.annotation)[0]
        for key, rows, model in _rows(section_model, f"{field.alias or name}."):
            about = (model.__doc__ or "").strip() if model.__doc__ != BaseModel.__doc__ else ""
            parts.append(f"## `{key}`\n")
            if about:
                parts.append(f"{about}\n")
            parts.append(
                "| Key | Type | Required / default | Accepts | Description |\n"
                "| --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n"
            )
    parts.append(SECRETS)
    return "\n".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the file differs from what the model gives, writing nothing",
    )
    parser.add_argument("--out", type=Path, default=REFERENCE, help="default: docs/config.md")


def run(args: argparse.Namespace) -> int:
    text = render()
    out: Path = args.out
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != text:
            print(
                f"{out}: is not current with the site config model; run `make docs`",
                file=sys.stderr,
            )
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
