"""Typed configuration: YAML (safe_load only) into frozen dataclasses, with errors that name file and line.

Shared by show configs and experiment configs. Unknown keys, wrong types and missing required fields are
rejected at load time with ``FILE:LINE: field 'a.b[0].c': what is wrong, what is allowed``. Dataclasses
may validate values further in ``__post_init__`` by raising ``ValueError``; the message is re-raised
with the file and line of that section.

Config files are hand-edited (or hostile), so loading is bounded: anchors and aliases are refused (an
alias bomb expands exponentially, a recursive anchor never ends), as are nesting deeper than
``MAX_DEPTH``, files over ``MAX_CONFIG_BYTES`` and duplicate keys (YAML would silently keep the last).
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
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
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # configs are hand-written; sidecars and calibrations are a few kB
MAX_DEPTH = 64  # nested collections; the deepest real config nests 4
MAX_PATH_CHARS = 1024  # longer is a paste accident, not a path (Linux's own limit is 4096 bytes)


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


class _Refused(Exception):
    """A construct the strict loader does not accept, at a 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` without anchors/aliases, deep nesting or duplicate keys (each refused with its line)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(line, "YAML anchors and aliases (&name, *name, <<) are not accepted in stagepose "
                                 "files; write the values out")  # fmt: skip
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(line, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(line, "a key must be a plain name, not a list or mapping")
            if key_node.value in seen:
                raise _Refused(line, f"duplicate key {key_node.value!r} (first on line {seen[key_node.value]}); "
                                     "keep one")  # fmt: skip
            seen[key_node.value] = line
        return node


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


def parse_yaml(text: str, name: str) -> tuple[Any, Source]:
    """Parse YAML ``text`` (named ``name`` in messages) strictly; see `load_yaml`."""
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # the reader checks for unprintable characters here
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise ConfigError(f"{name}:{exc.line}: {exc}") from None
    except yaml.reader.ReaderError as exc:  # a control character; it has a position, not a mark
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise ConfigError(f"{name}:{line}: not valid YAML: control character #x{exc.character:04x} is not "
                          "allowed; delete it") from None  # fmt: skip
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _line_index(node, (), lines)
    return data, Source(name, lines)


def load_yaml(path: str | Path) -> tuple[Any, Source]:
    """Read a YAML file with ``safe_load`` semantics and remember the line of every key.

    Anchors/aliases, duplicate keys, nesting deeper than ``MAX_DEPTH`` and files over
    ``MAX_CONFIG_BYTES`` are refused, so a hostile file costs bounded time and memory.

    Raises:
        ConfigError: the file is missing, unreadable, too large or not valid YAML (with the line).
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{_shown(path)}: file not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{_shown(path)}: cannot read: {_os_reason(exc)}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024 // 1024} MiB; not a config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text, str(path))


def _shown(path: str | Path, limit: int = 120) -> str:
    """A path for a one-line message (a 3,000-character path is cut in the middle)."""
    text = str(path)
    half = limit // 2
    return text if len(text) <= limit else f"{text[:half]}...{text[-half:]} ({len(text)} characters)"


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def resolve_path(value: str | Path, base: str | Path) -> Path:
    """A path from a config: ``~`` expanded, made absolute against ``base``, normalised (not followed).

    Raises:
        ValueError: an empty or over-long path, a control character, an unknown ``~user``, or a symlink loop
            (a plain message for the caller to put after the file, line and field).
    """
    text = str(value)
    if not text:
        raise ValueError("empty path")
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise ValueError(f"the path {text[:200]!r} contains a control character (a pasted line break or tab?)")
    if len(text) > MAX_PATH_CHARS:
        raise ValueError(f"path is {len(text)} characters long (at most {MAX_PATH_CHARS}): {_shown(text)}")
    if text.startswith("~"):
        try:
            expanded = os.path.expanduser(text)
        except (RuntimeError, KeyError, OSError):
            expanded = text
        if expanded.startswith("~"):
            user = text[1:].split("/", 1)[0] or "the current user"
            raise ValueError(f"{text!r}: cannot expand '~': no home folder for {user} on this machine; "
                             "write the full path")  # fmt: skip
        text = expanded
    path = Path(text)
    if not path.is_absolute():
        path = Path(base) / path
    path = Path(os.path.normpath(path))
    if any(len(os.fsencode(part)) > 255 for part in path.parts):
        raise ValueError(f"a folder or file name in {_shown(path)} is longer than 255 bytes")
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{_shown(path)}: symbolic link loop (a link points back to itself)") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise ValueError(f"{_shown(path)}: path too long for this file system") from None
    except ValueError as exc:
        raise ValueError(f"{_shown(path)}: {exc}") from None
    return path


def check_range(
    name: str, value: float, low: float | None = None, high: float | None = None, *, low_open: bool = False,
    unit: str = "",
) -> None:  # fmt: skip
    """Raise ValueError unless ``value`` is finite and in [low, high] ((low, high] with ``low_open``).

    For ``__post_init__`` range checks: NaN and inf are refused too, since ``nan < 0`` is False and a
    plain comparison lets them through to the show.
    """
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or value <= high
    if isinstance(value, (int, float)) and math.isfinite(value) and lo_ok and hi_ok:
        return
    left = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    right = "" if high is None else f"<= {high:g}"
    bounds = " and ".join(b for b in (left, right) if b)
    raise ValueError(f"{name} must be a finite number{' ' + bounds if bounds else ''}{unit}, got {value!r}")


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
    if isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields"):  # a NamedTuple, e.g. ImageSize
        hints = get_type_hints(tp)
        items = _convert(tuple[tuple(hints[f] for f in tp._fields)], value, source, path)  # type: ignore[misc]
        return tp(*items)
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
        try:
            return float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise _fail(source, path, "number too large") from None
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
        # "threads must be ..." is about field 'threads': point at its line when the file sets it
        named = str(exc).split(" ", 1)[0]
        if named in data and named in fields:
            raise _fail(source, (*path, named), str(exc)) from None
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


__all__ = [
    "Source", "load", "load_yaml", "parse_yaml", "resolve_path", "check_range", "from_dict", "apply_overrides",
    "to_dict", "format_path", "typing",
]  # fmt: skip
