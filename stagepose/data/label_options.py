"""The choices of ``stagepose data label``, apart from ``stagepose.data.label`` so that the command line can
list them in ``--help`` without importing OpenCV and NumPy."""

from __future__ import annotations

from typing import Literal

LabelMode = Literal["both", "crop", "image"]
MODES: tuple[str, ...] = ("both", "crop", "image")
TEACHERS: tuple[str, ...] = ("mediapipe",)
