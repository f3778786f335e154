"""Reading annotation JSON files and finding their images, with errors that name the file and place."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from stagepose.errors import DataError


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file.

    Raises:
        DataError: missing, unreadable or not JSON (with line and column).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None


def image_dir_candidates(json_path: Path) -> list[tuple[Path, bool]]:
    """Where images usually lie relative to an annotation file, and whether to search that folder's
    subfolders: beside it, in ``images/`` beside it, in ``../images`` (HRNet's ``mpii/annot`` +
    ``mpii/images``; CVAT's ``annotations/`` + ``images/<subset>/``), or one folder up."""
    here = json_path.parent
    return [(here, False), (here / "images", True), (here.parent / "images", True), (here.parent, False)]


# Label Studio stores uploads as "<8 hex digits>-<original name>"; the frames on disk keep the original.
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")


class ImageResolver:
    """Finds an annotation's image file: ``DIR/name``, then ``DIR/basename(name)``, then by base name
    anywhere under ``DIR`` (CVAT exports put images in ``images/<subset>/``), and last without Label
    Studio's upload prefix (``images/1a2b3c4d-frame.jpg`` -> ``frame.jpg``)."""

    def __init__(self, image_dir: Path, recursive: bool = True) -> None:
        self.image_dir = image_dir
        self.recursive = recursive
        self._by_name: dict[str, list[Path]] | None = None

    def resolve(self, name: str) -> Path | None:
        """The file for ``name``, or None when none (or more than one with that base name) exists."""
        found = self._resolve(name)
        if found is None:
            upload = _UPLOAD_PREFIX.match(Path(name.replace("\\", "/")).name)
            if upload:
                found = self._resolve(upload.group(1))
        return found

    def _resolve(self, name: str) -> Path | None:
        direct = self.image_dir / name
        if direct.is_file():
            return direct
        base = Path(name.replace("\\", "/")).name
        flat = self.image_dir / base
        if flat.is_file():
            return flat
        if not self.recursive:
            return None
        found = self._index().get(base, [])
        return found[0] if len(found) == 1 else None

    def _index(self) -> dict[str, list[Path]]:
        if self._by_name is None:
            self._by_name = {}
            if self.image_dir.is_dir():
                for folder, _dirs, files in os.walk(self.image_dir):
                    for file in files:
                        self._by_name.setdefault(file, []).append(Path(folder) / file)
        return self._by_name


def choose_image_dir(json_path: Path, explicit: Path | None, sample_names: list[str], spec_form: str) -> ImageResolver:
    """A resolver for the explicit image folder, or for the first candidate folder that holds any of the
    first images named in the file.

    Raises:
        DataError: an explicit folder does not exist, or no candidate holds any of the images.
    """
    if explicit is not None:
        if not explicit.is_dir():
            raise DataError(f"image folder {explicit} does not exist (from {spec_form})")
        return ImageResolver(explicit)
    candidates = image_dir_candidates(json_path)
    probe = sample_names[:20]
    for folder, recursive in candidates:
        if folder.is_dir():
            resolver = ImageResolver(folder, recursive)
            if any(resolver.resolve(name) is not None for name in probe):
                return resolver
    if not probe:
        return ImageResolver(json_path.parent, recursive=False)
    raise DataError(
        f"{json_path}: cannot find images such as {probe[0]!r} in {', '.join(str(c) for c, _ in candidates)}; "
        f"give the image folder as {spec_form}"
    )
