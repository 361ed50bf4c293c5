"""
A RealSense D400 depth model: what a stereo depth camera reports instead of exact depth.

Applied to the cell's exact planar depth (metres, aligned to the colour image) it gives the
16UC1 millimetres realsense2_camera publishes, with the sensor's imperfections:

- **Noise growing with distance.** Intel's RMS depth error of a D400 camera is
  ``z² · subpixel / (f · B)`` (z depth, f focal length of the depth imagers in pixels,
  B baseline, subpixel the RMS disparity error, typically 0.08 px on a textured target): Intel,
  "Tuning depth cameras for best performance" (RealSense white paper, §"Depth RMS error") and
  "Subpixel linearity improvement for Intel RealSense depth cameras" (depth = f·B/disparity).
  D415: B = 55 mm, HFOV 65° at 1280 px (f ≈ 1005 px); D435: B = 50 mm, HFOV ≈ 90° at 848 px
  (f ≈ 424 px) (Intel RealSense D400 series datasheet). At the cell's 0.85 m that is about
  1.0 mm RMS for a D415 and 2.7 mm for a D435. The noise is drawn per pixel (the real one is
  correlated over the matching window; not modelled).
- **Stereo shadows.** Depth is computed in the left imager; points it sees that the right
  imager (B along +x of the image) cannot see have no match and read 0. That is a band, on
  the left of every object, as wide as the disparity step at its edge (a 50 mm block seen
  from 0.85 m: about 3 px). Computed per image row from the disparities (a point is hidden
  when a nearer point to its right lands left of it in the right imager). The depth imagers
  are taken to sit at the colour camera (the ~15 mm colour-to-depth offset and its alignment
  holes are not modelled).
- **Dark surfaces.** Surfaces that return little light give the matcher no texture: pixels
  darker than ``dark_luminance`` read 0 with probability ``dark_invalid``. The cell's
  colour image stands in for the infrared one.
- **Quantisation** to the driver's depth unit (1 mm in 16UC1), and 0 outside the camera's
  range.

Pure numpy, no ROS. ``PROFILES`` holds the two cameras; ``ideal`` is exact depth (only
quantised), as the cell gave before this model.
"""

from dataclasses import dataclass
import math

import numpy as np


def _focal_px(width, hfov_deg):
    return 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)


@dataclass(frozen=True)
class StereoDepthModel:
    """
    Imperfections of a stereo depth camera (see the module docstring for sources).

    baseline: m between the imagers (0 = no stereo shadows).
    focal_length_px: focal length of the depth imagers at the resolution whose subpixel
        error is quoted.
    subpixel_rms: RMS disparity error (px); 0 = no noise.
    dark_luminance, dark_invalid: pixels with colour luminance (0..1) below the first read 0
        with the second's probability.
    random_invalid: probability that any pixel reads 0.
    depth_unit: m per count of the 16-bit output.
    min_depth, max_depth: m; depth outside reads 0.
    """

    baseline: float = 0.0
    focal_length_px: float = 1.0
    subpixel_rms: float = 0.0
    dark_luminance: float = 0.0
    dark_invalid: float = 0.0
    random_invalid: float = 0.0
    depth_unit: float = 0.001
    min_depth: float = 0.1
    max_depth: float = 6.5

    def __post_init__(self):
        for name in ('baseline', 'subpixel_rms', 'dark_luminance'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be finite and >= 0, got {value}')
        for name in ('dark_invalid', 'random_invalid'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'{name} must lie in 0..1, got {getattr(self, name)}')
        if not (self.focal_length_px > 0 and self.depth_unit > 0
                and 0 < self.min_depth < self.max_depth):
            raise ValueError('focal_length_px and depth_unit must be > 0 and '
                             '0 < min_depth < max_depth')
        if self.max_depth / self.depth_unit > np.iinfo(np.uint16).max:
            raise ValueError('max_depth does not fit 16 bits at this depth_unit')

    def rms_error(self, depth):
        """RMS depth error (m) at depth (m): z² · subpixel / (f · B)."""
        if self.baseline == 0.0:
            return np.zeros_like(np.asarray(depth, dtype=np.float64))
        return np.asarray(depth, dtype=np.float64) ** 2 * self.subpixel_rms / (
            self.focal_length_px * self.baseline)

    def apply(self, depth, rgb=None, rng=None, image_focal_px=None, depth_scale=1.0):
        """
        Exact planar depth (H, W) metres -> uint16 depth units as the camera reports it.

        rgb: the aligned colour image (H, W, 3) uint8, for dark surfaces (None: skipped).
        rng: numpy Generator, needed when the model draws noise or invalid pixels.
        image_focal_px: fx of the image depth is aligned to, for the stereo shadows (None:
            no shadows).
        depth_scale: multiplies every depth before the noise (a scale error of the sensor).
        """
        depth = np.asarray(depth, dtype=np.float64) * float(depth_scale)
        valid = np.isfinite(depth) & (depth >= self.min_depth) & (depth <= self.max_depth)
        if self.baseline > 0.0 and image_focal_px is not None:
            valid &= ~stereo_shadow(np.where(valid, depth, np.inf), self.baseline,
                                    image_focal_px)
        noisy = self.subpixel_rms > 0.0 and self.baseline > 0.0
        needs_rng = noisy or self.random_invalid > 0.0 or (self.dark_invalid > 0.0
                                                           and rgb is not None)
        if needs_rng and rng is None:
            raise ValueError('this depth model draws random numbers: pass rng')
        if noisy:
            depth = depth + rng.standard_normal(depth.shape) * self.rms_error(
                np.where(valid, depth, 0.0))
        if rgb is not None and self.dark_invalid > 0.0:
            luminance = np.asarray(rgb, dtype=np.float32) @ np.array(
                [0.299, 0.587, 0.114], dtype=np.float32) / 255.0
            dark = luminance < self.dark_luminance
            valid &= ~(dark & (rng.random(depth.shape) < self.dark_invalid))
        if self.random_invalid > 0.0:
            valid &= rng.random(depth.shape) >= self.random_invalid
        counts = np.rint(np.where(valid, depth, 0.0) / self.depth_unit)
        counts[~valid | (counts < 0)] = 0
        return np.minimum(counts, np.iinfo(np.uint16).max).astype(np.uint16)


def stereo_shadow(depth, baseline, focal_px):
    """
    Pixels the left imager sees and the right one (baseline m along +x) does not.

    depth: (H, W) metres, inf where there is no surface. A pixel at column u appears in the
    right imager at u - f·B/z; it is hidden when some pixel to its right lands further left.
    """
    depth = np.asarray(depth, dtype=np.float64)
    disparity = np.where(np.isfinite(depth) & (depth > 0), focal_px * baseline / depth, 0.0)
    columns = np.arange(depth.shape[1], dtype=np.float64)
    right = columns[None, :] - disparity
    # Smallest right-image column among the pixels strictly to the right of each pixel.
    suffix_min = np.minimum.accumulate(right[:, ::-1], axis=1)[:, ::-1]
    next_min = np.concatenate([suffix_min[:, 1:], np.full((depth.shape[0], 1), np.inf)], axis=1)
    return (next_min < right) & np.isfinite(depth)


IDEAL = StereoDepthModel()
D415 = StereoDepthModel(baseline=0.055, focal_length_px=_focal_px(1280, 65.0), subpixel_rms=0.08,
                        dark_luminance=0.08, dark_invalid=0.5, random_invalid=0.002)
D435 = StereoDepthModel(baseline=0.050, focal_length_px=_focal_px(848, 90.0), subpixel_rms=0.08,
                        dark_luminance=0.08, dark_invalid=0.5, random_invalid=0.002)
PROFILES = {'ideal': IDEAL, 'd415': D415, 'd435': D435}


def profile(name):
    """Return the depth model called name (ideal, d415, d435); ValueError otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f'unknown depth model {name!r}; choose one of {sorted(PROFILES)}') \
            from None
