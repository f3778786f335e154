"""Data set spec strings: one line that names a data set in a config or on the command line.

Grammar (square brackets are optional parts)::

    KIND:PATH[:IMAGE_DIR][@START:END][?KEY=VALUE[&KEY=VALUE...]]

``KIND`` is one of ``mpii``, ``lsp``, ``lspet``, ``coco``, ``frames``. ``IMAGE_DIR`` is only accepted after
a ``.json`` path (``mpii`` and ``coco``), so a Windows drive letter is never mistaken for it.
``@START:END`` is a Python slice over the file's entries (0-based, END exclusive, either side may be
empty or negative), taken before any filtering, so indices always refer to the file. ``?`` options:

- ``val=N``: the last N entries are the validation split, the rest the training split;
- ``layout=lsp|lspet``: force the joints.mat layout (``lsp``/``lspet`` kinds);
- ``category=NAME``: the keypoint category to read (``coco`` kind);
- ``boxes=FILE.json``: person boxes for unlabelled frames (``frames`` kind).

Examples: ``lspet:data/lspet@8500:9000``, ``lspet:data/lspet?val=1000``,
``mpii:mpii/annot/valid.json:mpii/images``, ``coco:venue/annotations/person_keypoints_default.json``,
``frames:venue/frames?boxes=venue/boxes.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stagepose.errors import DataError

Kind = Literal["mpii", "lsp", "lspet", "coco", "frames"]
Split = Literal["train", "val"]
KINDS: tuple[str, ...] = ("mpii", "lsp", "lspet", "coco", "frames")
SPLITS: tuple[str, ...] = ("train", "val")

# Options each kind accepts, and what "an entry" is for that kind (for messages and docs).
OPTIONS: dict[str, tuple[str, ...]] = {
    "mpii": ("val",),
    "lsp": ("val", "layout"),
    "lspet": ("val", "layout"),
    "coco": ("val", "category"),
    "frames": ("val", "boxes"),
}
ENTRY_UNIT: dict[str, str] = {
    "mpii": "persons (items of the JSON list)",
    "lsp": "images (joints.mat order)",
    "lspet": "images (joints.mat order)",
    "coco": "images (order of the file's 'images' list)",
    "frames": "image files (sorted by name)",
}

SPEC_FORMS = (
    "mpii:ANNOTATIONS.json[:IMAGE_DIR]",
    "lsp:DIR",
    "lspet:DIR",
    "coco:ANNOTATIONS.json[:IMAGE_DIR]",
    "frames:DIR",
)
SPEC_HELP = (
    "data set specs: " + ", ".join(SPEC_FORMS) + "; each may end in @START:END (a slice of the file's "
    "entries) and ?val=N (last N entries are the val split), ?layout=lsp|lspet, ?category=NAME (coco), "
    "?boxes=FILE.json (frames)"
)

_RANGE = re.compile(r"^(-?\d*):(-?\d*)$")
_JSON_WITH_DIR = re.compile(r"^(.+?\.json):(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed spec string.

    Attributes:
        kind: the loader to use.
        path: annotation file (mpii, coco) or data set folder (lsp, lspet, frames).
        image_dir: image folder given in the spec, or None for the loader's default.
        start, end: the ``@START:END`` slice bounds (None where not given).
        has_range: whether ``@START:END`` was given (it then wins over the split).
        options: the ``?key=value`` options, validated against the kind.
        text: the original string, for messages.
    """

    kind: Kind
    path: Path
    image_dir: Path | None = None
    start: int | None = None
    end: int | None = None
    has_range: bool = False
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def option_int(self, key: str, default: int | None) -> int | None:
        """Integer option ``key`` (>= 0), or ``default`` when absent.

        Raises:
            DataError: the value is not a non-negative integer.
        """
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise DataError(f"data spec {self.text!r}: option {key}={raw!r} must be a whole number >= 0")
        return value

    def select(self, count: int, split: Split, default_val: int | None) -> range:
        """The entry indices of ``split`` among ``count`` entries in the file.

        An explicit ``@START:END`` is used as given, for either split. Otherwise, with a validation
        size N (option ``val``, else ``default_val``), val is the last N entries and train the rest;
        with no validation size the file is the split, and both splits take all entries.

        Raises:
            DataError: the range or validation size selects nothing.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if self.has_range:
            if any(v is not None and abs(v) > count for v in (self.start, self.end)):
                raise DataError(
                    f"data spec {self.text!r}: range @{_fmt(self.start)}:{_fmt(self.end)} goes past the {count} "
                    f"{ENTRY_UNIT[self.kind]} in the file"
                )
            selected = range(count)[slice(self.start, self.end)]
            if not selected:
                raise DataError(
                    f"data spec {self.text!r}: range @{_fmt(self.start)}:{_fmt(self.end)} selects no "
                    f"entries of {count} {ENTRY_UNIT[self.kind]}; use 0-based START:END with START < END"
                )
            return selected
        val = self.option_int("val", default_val)
        if not val:
            return range(count)
        if val >= count:
            raise DataError(
                f"data spec {self.text!r}: val={val} leaves no training entries ({count} "
                f"{ENTRY_UNIT[self.kind]} in all); give a smaller ?val=N"
            )
        return range(count - val, count) if split == "val" else range(count - val)


def _fmt(value: int | None) -> str:
    return "" if value is None else str(value)


def parse_spec(text: str) -> DatasetSpec:
    """Parse ``KIND:PATH[:IMAGE_DIR][@START:END][?KEY=VALUE&...]`` (see the module docstring).

    Raises:
        DataError: unknown kind, malformed range or option, or an option the kind does not take; the
            message lists the allowed forms.
    """
    if not isinstance(text, str) or ":" not in text:
        raise DataError(f"data spec {text!r}: expected KIND:PATH; {SPEC_HELP}")
    kind, rest = text.split(":", 1)
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError(f"data spec {text!r}: unknown kind {kind!r}; {SPEC_HELP}")
    options: dict[str, str] = {}
    if "?" in rest:
        rest, query = rest.rsplit("?", 1)
        for item in filter(None, query.split("&")):
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                raise DataError(f"data spec {text!r}: option {item!r} must be KEY=VALUE; {SPEC_HELP}")
            if key not in OPTIONS[kind]:
                raise DataError(
                    f"data spec {text!r}: unknown option {key!r} for {kind}; allowed: "
                    f"{', '.join(OPTIONS[kind])}"
                )
            options[key] = value
    start = end = None
    has_range = False
    if "@" in rest:
        head, tail = rest.rsplit("@", 1)
        match = _RANGE.match(tail.strip())
        if not match:
            raise DataError(
                f"data spec {text!r}: range {'@' + tail!r} must be @START:END with whole numbers, for "
                f"example @8500:9000 or @-500:"
            )
        rest, has_range = head, True
        start = int(match.group(1)) if match.group(1) not in ("", "-") else None
        end = int(match.group(2)) if match.group(2) not in ("", "-") else None
    image_dir = None
    if kind in ("mpii", "coco"):
        match = _JSON_WITH_DIR.match(rest)
        if match:
            rest, image_dir = match.group(1), Path(match.group(2))
    if not rest.strip():
        raise DataError(f"data spec {text!r}: the path is empty; {SPEC_HELP}")
    if has_range and "val" in options:
        raise DataError(f"data spec {text!r}: give either @START:END or ?val=N, not both")
    if "layout" in options and options["layout"] not in ("lsp", "lspet"):
        raise DataError(f"data spec {text!r}: layout must be lsp (3, 14, N) or lspet (14, 3, N)")
    spec = DatasetSpec(kind=kind, path=Path(rest), image_dir=image_dir, start=start, end=end,  # type: ignore[arg-type]
                       has_range=has_range, options=options, text=text)  # fmt: skip
    spec.option_int("val", None)  # validate early
    return spec
