"""Rewrite an old show file (``performer``/``zone`` on each camera) in the form with a ``performers`` section.

The old form still loads (read as one performer per camera, with a warning); this writes the file a
show should keep. Only the who-follows-whom part changes: each camera's ``performer`` and ``zone`` move
to a ``performers`` entry (``zone`` absent = ``anywhere``). YAML comments are not carried over (the
loader does not keep them), so the command says so and the old file is left untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from stagepose.config import load_yaml
from stagepose.errors import ConfigError


def convert_show_data(data: Any, name: str) -> dict[str, Any]:
    """The new-form mapping of an old-form show mapping (a new dict; ``data`` is not changed).

    Raises:
        ConfigError: ``data`` is not a show mapping, already has ``performers``, or a camera lacks
            ``performer``.
    """
    if not isinstance(data, dict) or not isinstance(data.get("cameras"), list):
        raise ConfigError(f"{name}: not a show file (no 'cameras' list)")
    if "performers" in data:
        raise ConfigError(f"{name}: already has a 'performers' section; nothing to convert")
    cameras, performers = [], []
    for i, camera in enumerate(data["cameras"]):
        if not isinstance(camera, dict) or "performer" not in camera:
            raise ConfigError(f"{name}: cameras[{i}] has no 'performer' to convert")
        kept = {k: v for k, v in camera.items() if k not in ("performer", "zone")}
        cameras.append(kept)
        performers.append({"name": camera["performer"], "cameras": {kept.get("id"): camera.get("zone", "anywhere")}})
    out: dict[str, Any] = {}
    for key, value in data.items():
        out[key] = cameras if key == "cameras" else value
        if key == "cameras":
            out["performers"] = performers
    return out


def convert_show_file(source: Path, target: Path) -> int:
    """Write the new form of show file ``source`` to ``target`` and check that it loads the same cast.

    Returns:
        The number of performers written.

    Raises:
        ConfigError: the source is not an old-form show, ``target`` is the source, or the result does not load.
    """
    from stagepose.show.config import load_show

    if target.resolve() == source.resolve():
        raise ConfigError(f"--out {target}: is the show file itself; write the new form beside it and compare")
    if target.resolve().parent != source.resolve().parent:
        raise ConfigError(f"--out {target}: paths in a show file are relative to its folder; write the new form "
                          f"in {source.resolve().parent}")  # fmt: skip
    data, _ = load_yaml(source)
    new = convert_show_data(data, str(source))
    before = load_show(source, replay_inputs=len(data["cameras"])).cast
    try:
        target.write_text(yaml.safe_dump(new, sort_keys=False, allow_unicode=True, default_flow_style=None))
    except OSError as exc:
        raise ConfigError(f"--out {target}: cannot write: {exc.strerror or exc}") from None
    after = load_show(target, replay_inputs=len(new["cameras"])).cast
    if after != before:
        raise ConfigError(f"{target}: the converted show does not follow the same performers; report this")
    return len(new["performers"])
