"""The RealSense depth model: noise with distance, stereo shadows, holes, quantisation."""

import numpy as np
import pytest

from vpg_sim import depth_model
from vpg_sim.depth_model import D415, D435, IDEAL, stereo_shadow, StereoDepthModel


def test_ideal_model_only_quantises_to_millimetres_and_clips_the_range():
    depth = np.full((10, 10), 0.8004)
    depth[0, 0] = 0.05  # nearer than the camera sees
    depth[0, 1] = np.nan
    depth[0, 2] = np.inf
    out = IDEAL.apply(depth)
    assert out.dtype == np.uint16
    assert out[5, 5] == 800
    assert out[0, 0] == out[0, 1] == out[0, 2] == 0


def test_rms_error_follows_the_stereo_formula():
    # z^2 * subpixel / (f * B): D415 at 0.85 m is about 1 mm, a D435 about 2.7 mm.
    assert D415.rms_error(0.85) == pytest.approx(0.85 ** 2 * 0.08 / (1004.7 * 0.055), rel=1e-3)
    assert 0.0009 < D415.rms_error(0.85) < 0.0011
    assert 0.0025 < D435.rms_error(0.85) < 0.0029
    assert D415.rms_error(1.7) == pytest.approx(4 * D415.rms_error(0.85))


@pytest.mark.parametrize('distance', [1.0, 1.5, 2.5])
def test_measured_noise_matches_the_model(distance):
    model = StereoDepthModel(baseline=0.055, focal_length_px=1004.7, subpixel_rms=0.08)
    rng = np.random.default_rng(1)
    out = model.apply(np.full((200, 200), distance), rng=rng).astype(np.float64) / 1000.0
    expected = model.rms_error(distance)
    # 1 mm quantisation adds 1/12 mm^2 of variance (Sheppard; holds where sigma >~ 1 mm).
    measured = np.sqrt(max(out.var() - 1e-6 / 12.0, 0.0))
    assert measured == pytest.approx(expected, rel=0.1)
    assert abs(out.mean() - distance) < 0.0005


def test_a_raised_block_casts_a_shadow_on_its_left_as_wide_as_the_disparity_step():
    focal, baseline = 615.0, 0.055
    depth = np.full((4, 200), 0.85)
    depth[:, 100:140] = 0.80  # a block top 5 cm nearer
    shadow = stereo_shadow(depth, baseline, focal)
    width = focal * baseline * (1 / 0.80 - 1 / 0.85)  # about 2.5 px
    hidden = np.flatnonzero(shadow[0])
    assert hidden.size == pytest.approx(width, abs=1)
    assert hidden.max() < 100 and hidden.min() > 100 - width - 2  # just left of the block
    assert not shadow[:, 100:].any()  # the block and the table right of it are seen


def test_flat_and_slanted_surfaces_cast_no_shadow():
    columns = np.arange(300)
    flat = np.full((3, 300), 0.85)
    slanted = np.tile(0.7 + 0.001 * columns, (3, 1))
    assert not stereo_shadow(flat, 0.055, 615.0).any()
    assert not stereo_shadow(slanted, 0.055, 615.0).any()
    assert not stereo_shadow(slanted[:, ::-1], 0.055, 615.0).any()


def test_dark_surfaces_lose_pixels_and_bright_ones_do_not():
    model = StereoDepthModel(dark_luminance=0.1, dark_invalid=0.5)
    rgb = np.full((100, 100, 3), 200, dtype=np.uint8)
    rgb[:, :50] = 10
    out = model.apply(np.full((100, 100), 0.85), rgb, np.random.default_rng(0))
    assert 0.4 < np.mean(out[:, :50] == 0) < 0.6
    assert np.all(out[:, 50:] == 850)


def test_d415_frame_of_a_block_scene_has_shadows_noise_and_depth_scale():
    depth = np.full((120, 160), 0.85)
    depth[40:80, 60:100] = 0.80
    rgb = np.full((120, 160, 3), 150, dtype=np.uint8)
    out = D415.apply(depth, rgb, np.random.default_rng(2), image_focal_px=615.0)
    assert np.mean(out[40:80, 56:60] == 0) > 0.4      # shadow band left of the block
    assert np.mean(out[:, 120:] == 0) < 0.01         # plain table: almost every pixel valid
    scaled = D415.apply(depth, rgb, np.random.default_rng(2), 615.0, depth_scale=1.01)
    valid = (out > 0) & (scaled > 0)
    assert np.median(scaled[valid].astype(float) - out[valid]) == pytest.approx(8.5, abs=1.0)


def test_bad_settings_and_a_missing_rng_are_refused():
    with pytest.raises(ValueError):
        StereoDepthModel(dark_invalid=1.5)
    with pytest.raises(ValueError):
        StereoDepthModel(baseline=-0.01)
    with pytest.raises(ValueError, match='rng'):
        D415.apply(np.full((4, 4), 0.8))
    with pytest.raises(ValueError, match='unknown depth model'):
        depth_model.profile('kinect')
    assert depth_model.profile('d435') is D435
