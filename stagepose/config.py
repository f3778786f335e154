"""Typed configuration: YAML (safe_load only) into frozen dataclasses, with errors that name file and line.

Shared by show configs and experiment configs. Unknown keys, wrong types and missing required fields are
rejected at load time with ``FILE:LINE: field 'a.b[0].c': what is wrong, what is allowed``. Dataclasses
may validate values further in ``__post_init__`` by raising ``ValueError``; the message is re-raised
with the file and line of that section.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from stagepose.errors import ConfigError

T = TypeVar("T")
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
KeyPath = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a config came from, for error messages: a file name and the line of each key path."""

    name: str
    lines: Mapping[KeyPath, int] = dataclasses.field(default_factory=dict)

    def where(self, path: KeyPath) -> str:
        """'file:line' of the deepest known prefix of ``path`` (1-based line)."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(path[:cut])
            if line is not None:
                return f"{self.name}:{line}"
        return self.name


def format_path(path: KeyPath) -> str:
    """('cameras', 0, 'uri') -> 'cameras[0].uri'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "<top level>"


def _line_index(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), lines)


def load_yaml(path: str | Path) -> tuple[Any, Source]:
    """Read a YAML file with ``safe_load`` semantics and remember the line of every key.

    Raises:
        ConfigError: the file is missing, unreadable or not valid YAML (with the line of the problem).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _line_index(node, (), lines)
    return data, Source(str(path), lines)


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _fail(source: Source, path: KeyPath, message: str) -> ConfigError:
    return ConfigError(f"{source.where(path)}: field '{format_path(path)}': {message}")


def _convert(tp: Any, value: Any, source: Source, path: KeyPath) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, source, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise _fail(source, path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise _fail(source, path, f"got {value!r}; allowed: {', '.join(repr(a) for a in allowed)}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value, source, path)
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, list):
            raise _fail(source, path, f"expected a list, got {type(value).__name__} {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _fail(source, path, f"expected a list of {len(args)} items, got {len(value)}")
            return tuple(_convert(a, v, source, (*path, i)) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, source, (*path, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise _fail(source, path, f"expected a mapping, got {type(value).__name__} {value!r}")
        args = get_args(tp) or (str, Any)
        return {str(k): _convert(args[1], v, source, (*path, str(k))) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot in the mantissa) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(source, path, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a string, got {type(value).__name__} {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise _fail(source, path, f"expected a file path (string), got {value!r}")
        return Path(value)
    raise TypeError(f"config type {tp!r} at {format_path(path)} is not supported")  # a bug, not input


def from_dict(cls: type[T], data: Any, source: Source | None = None, path: KeyPath = ()) -> T:
    """Build dataclass ``cls`` from plain data, checking every field.

    Args:
        cls: a dataclass type; nested dataclass, list, tuple, dict, Literal and Optional fields recurse.
        data: the mapping from YAML (None is an empty mapping).
        source: file name and line index for messages.
        path: key path of ``data`` within the file.

    Raises:
        ConfigError: unknown or missing keys, wrong types, or a value rejected by ``__post_init__``.
    """
    source = source or Source("<config>")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(source, path, f"expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        raise _fail(source, (*path, str(key)), f"unknown key; allowed keys: {', '.join(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], source, (*path, name))
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise _fail(source, (*path, name), f"required field is missing ({_type_name(hints[name])})")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{source.where(path)}: {format_path(path)}: {exc}") from None


def load(cls: type[T], path: str | Path, overrides: Sequence[str] = ()) -> T:
    """Load YAML file ``path`` into dataclass ``cls``, applying ``a.b=value`` overrides first."""
    data, source = load_yaml(path)
    if overrides:
        data = apply_overrides(data if data is not None else {}, overrides)
    return from_dict(cls, data, source)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``dotted.key=value`` set (value parsed as YAML).

    Raises:
        ConfigError: an override is not of the form key=value, or its value is not valid YAML.
    """
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, for example train.lr=1e-4")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(exc).splitlines()[0]}); quote "
                              "it, e.g. data.train='[\"frames:venue/x?boxes=venue/boxes.json\"]'") from None
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def to_dict(obj: Any) -> Any:
    """Plain data (for YAML/JSON) from a dataclass tree; Paths become strings, tuples lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


__all__ = ["Source", "load", "load_yaml", "from_dict", "apply_overrides", "to_dict", "format_path", "typing"]
