"""MediaPipe Pose as an offline teacher: run it on an image, map its 33 landmarks onto MPII's 16 joints.

Why this version: ``mediapipe==0.10.21`` is the last release whose wheel CARRIES the pose models
(``pose_detection.tflite`` and ``pose_landmark_full.tflite``, BlazePose GHUM "full"); 0.10.30 and later
dropped the legacy solutions and need a ``.task`` file downloaded from the internet, which a venue
machine may not have and this project never does at run time. Only model complexity 1 is in the wheel:
the legacy ``Pose(model_complexity=0 or 2)`` downloads the lite/heavy model at construction, so it is
never asked for here.

Install it without its declared dependencies (``make install-teacher``, or ``pip install --no-deps
mediapipe==0.10.21 absl-py attrs``): its metadata pins ``numpy<2`` and ``protobuf<5`` and pulls jax,
jaxlib and opencv-contrib-python, and a normal install would downgrade the show's numpy, OpenCV, ONNX
and protobuf. The pose graph itself runs with numpy 2 and protobuf 7 (tested); only
``mp.solutions.pose.Pose.__init__`` breaks there (it reads ``FieldDescriptor.label``, which protobuf 6
removed, to set two thresholds), so the same graph is built through ``SolutionBase`` with the same side
packets, and the graph's own thresholds, 0.5 and 0.5, which are ``Pose``'s defaults too. Its C++ bindings
print one harmless ``AttributeError: 'MessageFactory' object has no attribute 'GetPrototype'`` at import.

The mapping (``landmarks_to_mpii``), measured against LSPET's ground truth in ``training/README.md``:

- shoulders, elbows, wrists, hips, knees, ankles: the landmark of the same name (MediaPipe's "left" is
  the person's left, as MPII's);
- pelvis and thorax: the hip and shoulder mid-points (as every loader here derives them);
- upper neck: the point ``NECK_FRACTION`` of the way from the thorax to the ear mid-point. MPII's and LSP's
  "neck" is the top of the neck, below the chin: between the shoulders and the head centre;
- head top: the ear mid-point moved ``HEAD_TOP_SCALE`` x the eye-to-mouth distance along the face's
  up axis (mouth mid-point -> eye mid-point). The face axis follows a tilted or bowed head, where the
  thorax -> ears direction does not; the eye-mouth distance scales with the head in any view.

The two constants were fitted on LSPET training images 200..1199 (not on the images the accuracy is
reported on). A derived joint's confidence is the least visibility of the landmarks it is made from:
MediaPipe always places all 33 landmarks, guessing hidden ones, and says how sure it is in ``visibility``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from stagepose.errors import EngineError
from stagepose.skeleton import NUM_JOINTS, Joint

MEDIAPIPE_VERSION = "0.10.21"
MODEL_NAME = "mediapipe-pose-full"
NUM_LANDMARKS = 33
INSTALL_HINT = (
    "install it with `make install-teacher` (or: pip install --no-deps mediapipe==0.10.21 absl-py attrs; "
    "not a plain `pip install mediapipe`: newer releases carry no pose model, and 0.10.21's declared "
    "dependencies would downgrade numpy, OpenCV and ONNX)"
)
_GRAPH = "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb"
_MODELS = ("mediapipe/modules/pose_detection/pose_detection.tflite",
           "mediapipe/modules/pose_landmark/pose_landmark_full.tflite")  # fmt: skip

# MediaPipe Pose landmark indices (mediapipe.solutions.pose.PoseLandmark), the ones used here.
NOSE, L_EYE, R_EYE, L_EAR, R_EAR, MOUTH_L, MOUTH_R = 0, 2, 5, 7, 8, 9, 10
DIRECT: dict[Joint, int] = {
    Joint.l_shoulder: 11, Joint.r_shoulder: 12, Joint.l_elbow: 13, Joint.r_elbow: 14,
    Joint.l_wrist: 15, Joint.r_wrist: 16, Joint.l_hip: 23, Joint.r_hip: 24,
    Joint.l_knee: 25, Joint.r_knee: 26, Joint.l_ankle: 27, Joint.r_ankle: 28,
}  # fmt: skip
NECK_FRACTION = 0.35
HEAD_TOP_SCALE = 1.6


def landmarks_to_mpii(landmarks: np.ndarray) -> np.ndarray:
    """MPII keypoints from MediaPipe's landmarks (see the module docstring for the rules).

    Args:
        landmarks: (33, 3) [x, y, visibility] in image pixels, visibility 0..1.

    Returns:
        (16, 3) [x, y, confidence] in the same pixels, MPII joint order; NaN / 0 where a landmark
        needed is not finite.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (NUM_LANDMARKS, 3):
        raise ValueError(f"expected (33, 3) landmarks [x, y, visibility], got shape {lm.shape}")
    xy, vis = lm[:, :2], np.clip(np.nan_to_num(lm[:, 2]), 0.0, 1.0)
    out = np.full((NUM_JOINTS, 3), np.nan)
    out[:, 2] = 0.0

    def put(joint: Joint, point: np.ndarray, sources: list[int]) -> None:
        if np.isfinite(point).all():
            out[joint, :2] = point
            out[joint, 2] = float(min(vis[s] for s in sources))

    for joint, index in DIRECT.items():
        put(joint, xy[index], [index])
    put(Joint.pelvis, (xy[23] + xy[24]) / 2.0, [23, 24])
    thorax = (xy[11] + xy[12]) / 2.0
    put(Joint.thorax, thorax, [11, 12])
    ears = (xy[L_EAR] + xy[R_EAR]) / 2.0
    put(Joint.upper_neck, thorax + NECK_FRACTION * (ears - thorax), [11, 12, L_EAR, R_EAR])
    eyes = (xy[L_EYE] + xy[R_EYE]) / 2.0
    up = eyes - (xy[MOUTH_L] + xy[MOUTH_R]) / 2.0
    put(Joint.head_top, ears + HEAD_TOP_SCALE * up, [L_EAR, R_EAR, L_EYE, R_EYE, MOUTH_L, MOUTH_R])
    return out


class MediaPipePose:
    """MediaPipe Pose (full model, static images) as a context manager: ``with MediaPipePose() as pose``.

    The graph is built on ``__enter__`` (a few hundred ms) and closed on ``__exit__``; nothing is
    downloaded. ``pose(image_rgb)`` returns the 33 landmarks of the most prominent person in pixels.

    Raises:
        EngineError: mediapipe is not installed, is another version, or its wheel lacks the models.
    """

    def __init__(self) -> None:
        self._graph: Any = None
        self.version = MEDIAPIPE_VERSION

    def __enter__(self) -> MediaPipePose:
        try:
            import mediapipe
            from mediapipe.python.solution_base import SolutionBase
        except ImportError as exc:
            raise EngineError(f"the MediaPipe teacher needs mediapipe=={MEDIAPIPE_VERSION} ({exc}); "
                              f"{INSTALL_HINT}") from None  # fmt: skip
        self.version = str(getattr(mediapipe, "__version__", "unknown"))
        root = Path(mediapipe.__file__).resolve().parent.parent
        missing = [m for m in _MODELS if not (root / m).is_file()]
        if missing:
            raise EngineError(f"mediapipe {self.version} at {root / 'mediapipe'} has no {', '.join(missing)} "
                              f"(releases after 0.10.21 ship no pose model); {INSTALL_HINT}")  # fmt: skip
        side_inputs = {"model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": False,
                       "smooth_segmentation": False, "use_prev_landmarks": False}  # fmt: skip
        self._graph = SolutionBase(binary_graph_path=_GRAPH, side_inputs=side_inputs, outputs=["pose_landmarks"])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the graph (idempotent)."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray | None:
        """Landmarks of the most prominent person.

        Args:
            image_rgb: (H, W, 3) uint8 RGB image.

        Returns:
            (33, 3) float64 [x, y, visibility] in pixels of ``image_rgb``, or None when nobody is found.
        """
        if self._graph is None:
            raise RuntimeError("use MediaPipePose as a context manager: with MediaPipePose() as pose: ...")
        image = np.ascontiguousarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        result = self._graph.process(input_data={"image": image})
        found = result.pose_landmarks  # type: ignore[attr-defined]
        if not found:
            return None
        height, width = image.shape[:2]
        return np.array([[lm.x * width, lm.y * height, lm.visibility] for lm in found.landmark], dtype=np.float64)
