"""Heatmap codec: encode against the analytic Gaussian, decode round trips (argmax / DARK), flip."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posenas_core.data.codec import HeatmapCodec, default_sigma, flip_back, flip_test
from posenas_core.data.geometry import flip_keypoints, heatmap_to_input, input_to_heatmap
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.errors import ConfigError, DataError


def random_kps(rng, n, codec, margin=0.0):
    """(n, 17, 3) visible keypoints uniformly inside the crop (heatmap margin in cells)."""
    h, w = codec.heatmap_size
    hm = np.stack([rng.uniform(margin - 0.5, w - 0.5 - margin, (n, 17)),
                   rng.uniform(margin - 0.5, h - 0.5 - margin, (n, 17))], -1)
    xy = heatmap_to_input(hm, codec.stride)
    return np.concatenate([xy, np.full((n, 17, 1), 2.0)], -1).astype(np.float32)


def test_construction():
    c = HeatmapCodec((256, 192), 4, 2.0)
    assert c.heatmap_size == (64, 48)
    assert HeatmapCodec((128, 96), 4, 1.0).heatmap_size == (32, 24)
    assert default_sigma(64) == 2.0 and default_sigma(32) == 1.0
    with pytest.raises(ConfigError, match="stride"):
        HeatmapCodec((130, 96), 4)
    with pytest.raises(ConfigError, match="sigma"):
        HeatmapCodec((128, 96), 4, 0.0)


def test_encode_matches_analytic_gaussian():
    c = HeatmapCodec((64, 48), 4, 1.5)
    kp = np.zeros((17, 3), np.float32)
    kp[:, 2] = 2
    kp[0, :2] = [21.3, 37.9]                 # sub-pixel, not rounded
    kp[1, :2] = heatmap_to_input(np.array([5.0, 7.0]), 4)  # exactly on a cell centre
    kp[2, 2] = 0                             # unlabelled
    kp[3, :2] = [-0.6, 10]                   # just outside the crop (x < -0.5)
    kp[4, :2] = [47.5, 63.5]                 # exactly on the far edge: inside
    kp[5, :2] = [np.nan, 3]                  # garbage
    hm, w = c.encode(kp)
    assert hm.shape == (17, 16, 12) and hm.dtype == np.float32 and w.dtype == np.float32
    mx, my = input_to_heatmap(kp[0, :2].astype(np.float64), 4)
    yy, xx = np.mgrid[0:16, 0:12]
    np.testing.assert_allclose(hm[0], np.exp(-((xx - mx) ** 2 + (yy - my) ** 2) / (2 * 1.5 ** 2)), atol=1e-6)
    assert hm[1, 7, 5] == pytest.approx(1.0) and hm[1].max() == hm[1, 7, 5]
    np.testing.assert_array_equal(w[:6], [1, 1, 0, 0, 1, 0])
    for j in (2, 3, 5):
        assert not hm[j].any()
    assert np.isfinite(hm).all()
    # No float32 denormals (they make the loss 3x slower).
    tiny = hm[(hm != 0)]
    assert tiny.min() >= np.finfo(np.float32).tiny


def test_encode_batched_equals_single():
    c = HeatmapCodec((64, 48), 4, 1.0)
    kps = random_kps(np.random.default_rng(0), 3, c)
    hm, w = c.encode(kps)
    assert hm.shape == (3, 17, 16, 12) and w.shape == (3, 17)
    np.testing.assert_array_equal(hm[1], c.encode(kps[1])[0])
    with pytest.raises(DataError, match="K, 3"):
        c.encode(np.zeros((17, 2)))


def test_round_trip_argmax_and_dark(capsys):
    c = HeatmapCodec((256, 192), 4, 2.0)
    rng = np.random.default_rng(0)
    kps = random_kps(rng, 120, c)                        # 2040 points anywhere in the heatmap
    hm, w = c.encode(kps)
    assert w.all()
    truth = input_to_heatmap(kps[..., :2].astype(np.float64), 4)
    errs = {}
    for m in ("argmax", "dark"):
        coords, scores = c.decode(hm, m)
        assert coords.shape == (120, 17, 2) and scores.shape == (120, 17)
        errs[m] = np.linalg.norm(input_to_heatmap(coords.astype(np.float64), 4) - truth, axis=-1)
        np.testing.assert_allclose(scores, hm.reshape(120, 17, -1).max(-1))
    inner = ((truth >= 8) & (truth <= np.array([47 - 8, 63 - 8]))).all(-1)
    with capsys.disabled():
        print(f"\n[codec round trip, heatmap px, 64x48 sigma 2] argmax mean {errs['argmax'].mean():.4f} "
              f"max {errs['argmax'].max():.4f} | dark mean {errs['dark'].mean():.5f} max {errs['dark'].max():.4f}"
              f" (interior mean {errs['dark'][inner].mean():.2e})")
    assert errs["argmax"].mean() <= 0.3 and errs["argmax"].max() <= np.sqrt(0.5)
    # Where both neighbours exist, the quarter step bounds the error by 0.25 per axis.
    has_nb = ((truth >= 0.5) & (truth <= np.array([47 - 1.5, 63 - 1.5]))).all(-1)
    assert errs["argmax"][has_nb].max() <= np.sqrt(2) * 0.25 + 1e-4
    # DARK: exact away from the borders; within ~1.75 sigma of a border it keeps the quarter step.
    assert errs["dark"].mean() < 0.25 * errs["argmax"].mean() and errs["dark"].max() <= np.sqrt(0.5)
    assert errs["dark"][has_nb].max() <= np.sqrt(2) * 0.25 + 1e-4
    assert errs["dark"][inner].max() < 1e-3


def test_decode_torch_and_3d_input_and_errors():
    c = HeatmapCodec((64, 48), 4, 1.0)
    kps = random_kps(np.random.default_rng(1), 2, c, margin=2)
    hm, _ = c.encode(kps)
    a, sa = c.decode(hm, "dark")
    b, sb = c.decode(torch.from_numpy(hm).requires_grad_(), "dark")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa, sb)
    one, _ = c.decode(hm[0])
    assert one.shape == (17, 2)
    with pytest.raises(ConfigError, match="'argmax', 'dark'"):
        c.decode(hm, "soft")
    with pytest.raises(DataError, match="N, K, h, w"):
        c.decode(hm[0, 0])


def test_decode_degenerate_maps():
    c = HeatmapCodec((32, 32), 4, 1.0)
    z = np.zeros((1, 3, 8, 8), np.float32)
    z[0, 1] = -1.0          # negative predictions
    z[0, 2, 0, 7] = 1.0     # a corner peak
    for m in ("argmax", "dark"):
        coords, scores = c.decode(z, m)
        assert np.isfinite(coords).all()
        np.testing.assert_allclose(scores[0], [0, -1, 1])
        np.testing.assert_allclose(coords[0, 2], heatmap_to_input(np.array([7.0, 0.0]), 4))


def test_quarter_offset_rule():
    hm = np.zeros((1, 1, 5, 5), np.float32)
    hm[0, 0, 2, 2] = 1.0
    hm[0, 0, 2, 3] = 0.5   # right neighbour higher -> +0.25 in x
    hm[0, 0, 1, 2] = 0.2   # upper neighbour higher -> -0.25 in y
    coords, _ = HeatmapCodec((20, 20), 4, 1.0).decode(hm)
    np.testing.assert_allclose(coords[0, 0], heatmap_to_input(np.array([2.25, 1.75]), 4))


def test_flip_back_of_flipped_encoding_is_the_encoding():
    c = HeatmapCodec((64, 48), 4, 1.5)
    kps = random_kps(np.random.default_rng(2), 4, c)
    kps[:, 3, 2] = 0
    hm, w = c.encode(kps)
    hmf, wf = c.encode(flip_keypoints(kps, 48, FLIP_INDEX))
    np.testing.assert_allclose(flip_back(hmf, FLIP_INDEX), hm, atol=1e-5)
    np.testing.assert_array_equal(wf[:, list(FLIP_INDEX)], w)
    t = flip_back(torch.from_numpy(hmf), FLIP_INDEX)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), hm, atol=1e-5)
    with pytest.raises(DataError, match="flip_index"):
        flip_back(hmf[:, :5], FLIP_INDEX)


class PoolModel(torch.nn.Module):
    """Channel k = (k + 1) * 4x4 average pool of the red channel (flip-equivariant up to the channel swap)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.arange(1.0, 18.0).view(1, 17, 1, 1))

    def forward(self, x):
        return F.avg_pool2d(x[:, :1], 4) * self.a


def test_flip_test_averages_with_the_unflipped_prediction():
    x = torch.randn(2, 3, 32, 24)
    model = PoolModel()
    out = flip_test(model, x)
    assert out.shape == (2, 17, 8, 6) and not out.requires_grad
    base = F.avg_pool2d(x[:, :1], 4)
    factor = 0.5 * (torch.arange(1.0, 18.0) + torch.tensor(FLIP_INDEX, dtype=torch.float32) + 1)
    torch.testing.assert_close(out, base * factor.view(1, 17, 1, 1))
