"""Look at a data set before training on it: preview crops with their labels, and loading throughput."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from stagepose.data.dataset import PoseDataset
from stagepose.skeleton import FLIP_PAIRS, LIMBS
from stagepose.transforms import INPUT_MEAN, INPUT_STD, apply_affine

_LEFT = {int(left) for _, left in FLIP_PAIRS}
_RIGHT = {int(right) for right, _ in FLIP_PAIRS}


def render_sample(sample: dict[str, object]) -> np.ndarray:
    """(H, 2W, 3) uint8 BGR: the crop with its labelled skeleton (right joints red, left blue), and the
    crop under the summed heatmap targets."""
    image = sample["image"].numpy().transpose(1, 2, 0)  # type: ignore[attr-defined]
    crop = (np.clip(image * np.array(INPUT_STD) + np.array(INPUT_MEAN), 0, 1) * 255).astype(np.uint8)
    crop = np.ascontiguousarray(crop[..., ::-1])
    affine = sample["image_to_input"].numpy().astype(np.float64)  # type: ignore[attr-defined]
    points = apply_affine(sample["joints"].numpy(), affine)  # type: ignore[attr-defined]
    visible = sample["visible"].numpy() > 0  # type: ignore[attr-defined]
    for a, b in LIMBS:
        if visible[a] and visible[b]:
            cv2.line(crop, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), (0, 255, 0), 1)
    for k, (x, y) in enumerate(points):
        if visible[k]:
            colour = (0, 0, 255) if k in _RIGHT else (255, 0, 0) if k in _LEFT else (0, 255, 255)
            cv2.circle(crop, (int(x), int(y)), 3, colour, -1)
    heat = sample["heatmaps"].numpy().max(axis=0)  # type: ignore[attr-defined]
    heat = cv2.applyColorMap(cv2.resize((heat * 255).astype(np.uint8), crop.shape[1::-1]), cv2.COLORMAP_JET)
    return np.hstack([crop, cv2.addWeighted(crop, 0.5, heat, 0.5, 0)])


def write_previews(dataset: PoseDataset, out_dir: Path, count: int = 16) -> list[Path]:
    """Write ``count`` evenly spaced samples as PNGs (``render_sample``); returns the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for index in np.linspace(0, len(dataset) - 1, min(count, len(dataset))).astype(int):
        sample = dataset[int(index)]
        name = f"{int(index):06d}_{str(sample['source_id']).replace('/', '_').replace(':', '_')}.png"
        path = out_dir / name
        cv2.imwrite(str(path), render_sample(sample))
        files.append(path)
    return files


def measure_throughput(dataset: PoseDataset, samples: int = 256, workers: int = 1, batch_size: int = 16) -> float:
    """Samples per second through a torch DataLoader (after one warm-up batch)."""
    from torch.utils.data import DataLoader, Subset

    count = min(samples + batch_size, len(dataset))
    loader = DataLoader(Subset(dataset, range(count)), batch_size=batch_size, num_workers=workers)
    iterator = iter(loader)
    next(iterator)  # warm-up: worker start and first batch
    start = time.perf_counter()
    seen = 0
    for batch in iterator:
        seen += len(batch["source_id"])
    elapsed = time.perf_counter() - start
    return seen / elapsed if elapsed > 0 else float("nan")
