"""Keypoints from the network's heatmaps: the peak of each channel, refined to sub-pixel.

Works on a torch tensor (any device, any dtype) or a NumPy array without importing torch, so the
evaluation code stays usable where torch is not loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer.data.keypoints.table import NUM_KEYPOINTS

Size = tuple[int, int]  # (width, height)


def as_numpy(array: Any) -> np.ndarray:
    """A NumPy copy of a tensor (any device, any dtype) or array, without importing torch here."""
    if hasattr(array, "detach"):
        array = array.detach().float().cpu().numpy()
    return np.asarray(array, dtype=np.float64)


def _log_parabola_offset(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Sub-pixel offset of a peak from its argmax pixel, exact for a Gaussian.

    The log of a Gaussian is a parabola, so a parabola through the logs of the peak and its two
    neighbours has its vertex at the Gaussian's centre. A local weighted mean, by contrast, is
    pulled towards the argmax pixel by the window's truncation (by a quarter of a heatmap pixel
    at sigma 2). Where a neighbour is zero or the logs do not bend down, the offset is 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_l, log_c, log_r = np.log(left), np.log(centre), np.log(right)
        curvature = log_l - 2 * log_c + log_r
        offset = 0.5 * (log_l - log_r) / curvature
    usable = (left > 0) & (right > 0) & (centre > 0) & np.isfinite(offset) & (curvature < 0)
    return np.where(usable, np.clip(offset, -0.5, 0.5), 0.0)


def keypoints_from_heatmaps(
    probabilities: Any, stride: int, input_size: Size, out_size: Size = (960, 540)
) -> np.ndarray:
    """(B, 57, 3) x, y in pixels of ``out_size`` and the peak probability as confidence.

    ``probabilities`` is (B, 58, h, w) (the background channel last, ignored) as a torch tensor
    or array, from a network fed ``input_size`` (width, height) images at output ``stride``.
    Heatmap cell h covers input pixel (h + 0.5)·stride − 0.5, the mapping the targets were built
    with; input pixels are then scaled to ``out_size`` with the pixel-centre convention of
    cv2.resize, the one the loader used to bring keypoints to the input size.
    """
    maps = as_numpy(probabilities)[:, :NUM_KEYPOINTS]
    batch, channels, height, width = maps.shape
    flat = maps.reshape(batch, channels, -1)
    peak = flat.argmax(axis=-1)
    confidence = np.take_along_axis(flat, peak[..., None], axis=-1)[..., 0]
    ys, xs = np.divmod(peak, width)
    b, k = np.meshgrid(np.arange(batch), np.arange(channels), indexing="ij")

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        return np.where(inside, maps[b, k, np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)], 0.0)

    dx = _log_parabola_offset(at(ys, xs - 1), confidence, at(ys, xs + 1))
    dy = _log_parabola_offset(at(ys - 1, xs), confidence, at(ys + 1, xs))
    out = np.empty((batch, channels, 3), dtype=np.float64)
    for axis, (cells, offset) in enumerate(((xs, dx), (ys, dy))):
        input_px = (cells + offset + 0.5) * stride - 0.5
        out[..., axis] = (input_px + 0.5) * (out_size[axis] / input_size[axis]) - 0.5
    out[..., 2] = confidence
    return out
