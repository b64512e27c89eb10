"""Torch datasets: item contents against the transforms / codec, determinism, clips, errors."""

import dataclasses

import numpy as np
import pytest
import torch

from posenas_core.data.codec import HeatmapCodec, default_sigma
from posenas_core.data.dataset import IMAGENET_MEAN, IMAGENET_STD, ClipDataset, TopDownDataset, make_clips
from posenas_core.data.geometry import apply_affine, box_to_center_size, crop_affine
from posenas_core.data.keypoints import FLIP_INDEX
from posenas_core.data.transforms import AugConfig, apply_transform, sample_params
from posenas_core.data.types import CachedImageSource, MemoryImageSource, PersonRecord
from posenas_core.errors import ConfigError, DataError

INPUT = (64, 48)
CODEC = HeatmapCodec(INPUT, 4, sigma=default_sigma(INPUT[0] // 4))  # the stride-4 codec of every test here
KEYS = {"image", "target", "target_weight", "keypoints", "affine", "flipped", "index"}


def person(rng, file_name="a.png", shift=(0.0, 0.0), **kw):
    x0, y0 = 50 + shift[0], 30 + shift[1]
    xy = np.stack([rng.uniform(x0 + 5, x0 + 55, 17), rng.uniform(y0 + 5, y0 + 85, 17)], 1)
    kp = np.concatenate([xy, np.full((17, 1), 2.0)], 1)
    kp[3, 2] = 0
    return PersonRecord(kw.pop("image_id", 1), file_name, 160, 120, [x0, y0, 60, 90], kp, **kw)


def dots(records, hw=(120, 160)):
    img = np.zeros(hw + (3,), np.uint8)
    img[..., 1] = 40
    for r in records:
        for x, y, v in r.keypoints:
            if v > 0:
                xi, yi = int(round(x)), int(round(y))
                img[yi - 1:yi + 2, xi - 1:xi + 2, 0] = 255
    return img


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    recs = [person(rng, ann_id=i) for i in range(6)]
    src = MemoryImageSource({"a.png": dots(recs)})
    return recs, src


def test_item_keys_shapes_and_consistency(data):
    recs, src = data
    ds = TopDownDataset(recs, src, INPUT, codec=CODEC, train=True, seed=3)
    assert len(ds) == 6 and ds.codec.heatmap_size == (16, 12) and ds.codec.sigma == 0.5  # 2 * 16 / 64
    flips = set()
    for i in range(len(ds)):
        it = ds[i]
        assert set(it) == KEYS and it["index"] == i
        assert it["image"].shape == (3, 64, 48) and it["image"].dtype == torch.float32
        assert it["target"].shape == (17, 16, 12) and it["target"].dtype == torch.float32
        assert it["target_weight"].shape == (17,) and it["affine"].shape == (2, 3)
        assert isinstance(it["flipped"], bool)
        flips.add(it["flipped"])
        # The item equals apply_transform + encode with the documented draw.
        params = sample_params(np.random.default_rng([3, 0, i]), ds.aug)
        crop, kps, M = apply_transform(src.load("a.png"), recs[i], params, INPUT, FLIP_INDEX)
        np.testing.assert_allclose(it["affine"].numpy(), M, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(it["keypoints"].numpy(), kps)
        hm, w = ds.codec.encode(kps)
        np.testing.assert_array_equal(it["target"].numpy(), hm)
        np.testing.assert_array_equal(it["target_weight"].numpy(), w)
        expect = (crop.astype(np.float32) / 255 - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        np.testing.assert_allclose(it["image"].numpy(), expect.transpose(2, 0, 1), atol=1e-5)
        # affine maps the record's joints (swapped if flipped) onto the item's keypoints.
        src_kp = recs[i].keypoints[list(FLIP_INDEX)] if it["flipped"] else recs[i].keypoints
        np.testing.assert_allclose(apply_affine(it["affine"].numpy(), src_kp[:, :2]), kps[:, :2], atol=1e-3)
        assert it["target_weight"][3 if not it["flipped"] else 4] == 0  # joint 3 unlabelled
    assert flips == {True, False}


def test_targets_peak_on_the_dots(data):
    recs, src = data
    ds = TopDownDataset(recs, src, INPUT, codec=CODEC, train=True, seed=1, aug=AugConfig(rotation_prob=1.0))
    for i in range(len(ds)):
        it = ds[i]
        coords, _ = ds.codec.decode(it["target"][None])
        img = it["image"].numpy()
        for j in np.flatnonzero(it["target_weight"].numpy()):
            assert np.abs(coords[0, j] - it["keypoints"][j, :2].numpy()).max() <= 0.5 * 4  # half a cell at most
            x, y = np.round(it["keypoints"][j, :2].numpy()).astype(int)
            if 0 <= x < 48 and 0 <= y < 64:
                assert img[0, y, x] > -1.0  # on a red dot (normalised 255 is 2.25; the background is -2.1)


def test_val_mode_is_the_plain_crop(data):
    recs, src = data
    ds = TopDownDataset(recs, src, INPUT, codec=CODEC, train=False)
    for e in (0, 5):
        ds.set_epoch(e)
        it = ds[2]
        assert it["flipped"] is False
        c, s = box_to_center_size(recs[2].bbox, INPUT)
        np.testing.assert_allclose(it["affine"].numpy(), crop_affine(c, s, INPUT), atol=1e-5)


def test_gt_free_records_give_zero_targets(data):
    _, src = data
    det = PersonRecord(1, "a.png", 160, 120, [40, 20, 50, 80], np.zeros((17, 3)), score=0.8)
    it = TopDownDataset([det], src, INPUT, codec=CODEC, train=False)[0]
    assert not it["target"].any() and not it["target_weight"].any()


def test_determinism_across_instances_order_epochs_and_workers(data):
    recs, src = data
    a = TopDownDataset(recs, src, INPUT, codec=CODEC, seed=7)
    b = TopDownDataset(recs, src, INPUT, codec=CODEC, seed=7)
    first = [a[i] for i in range(6)]
    for i in reversed(range(6)):
        for k in ("image", "target", "affine"):
            assert torch.equal(first[i][k], b[i][k])
    a.set_epoch(1)
    assert any(not torch.equal(a[i]["affine"], first[i]["affine"]) for i in range(6))
    c = TopDownDataset(recs, src, INPUT, codec=CODEC, seed=8)
    assert any(not torch.equal(c[i]["affine"], first[i]["affine"]) for i in range(6))
    # Any number of workers: same batches.
    b.set_epoch(1)
    outs = []
    for nw in (0, 2):
        dl = torch.utils.data.DataLoader(b, batch_size=3, num_workers=nw, shuffle=False)
        outs.append(torch.cat([batch["image"] for batch in dl]))
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0][4], a[4]["image"])


def test_errors(data):
    recs, src = data
    with pytest.raises(DataError, match="empty"):
        TopDownDataset([], src, INPUT, codec=CODEC)
    missing = dataclasses.replace(recs[0], file_name="missing.png")
    ds = TopDownDataset([missing], src, INPUT, codec=CODEC)
    with pytest.raises(DataError, match="missing.png"):
        ds[0]
    with pytest.raises(ConfigError, match="permutation"):
        TopDownDataset(recs, src, INPUT, codec=CODEC, flip_index=list(range(16)))
    with pytest.raises(ConfigError, match="divide the input size"):
        TopDownDataset(recs, src, (66, 48), codec=HeatmapCodec((66, 48), 4))
    with pytest.raises(ConfigError, match="codec must be a HeatmapCodec"):
        TopDownDataset(recs, src, INPUT, codec=None)
    with pytest.raises(ConfigError, match="codec input size"):
        TopDownDataset(recs, src, INPUT, codec=HeatmapCodec((128, 96), 4, 1.0))
    bad = MemoryImageSource({"a.png": np.zeros((10, 10), np.uint8)})
    with pytest.raises(DataError, match="HxWx3 uint8"):
        TopDownDataset(recs, bad, INPUT, codec=CODEC)[0]
    with pytest.raises(IndexError):
        TopDownDataset(recs, src, INPUT, codec=CODEC)[6]


def track(rng, video, tid, frames):
    return [person(rng, f"{video}/{f}.png", shift=(2.0 * f, 1.0 * f), video_id=video, track_id=tid, frame_index=f,
                   image_id=f) for f in frames]


def test_make_clips():
    rng = np.random.default_rng(0)
    recs = track(rng, "v1", 1, [0, 1, 2, 3, 5, 6]) + track(rng, "v1", 2, [2, 3, 4]) + track(rng, "v0", 1, [7, 8])
    recs.append(person(rng))  # no track: skipped
    rng.shuffle(recs)
    clips = make_clips(recs, 2)
    key = [(c[0].video_id, c[0].track_id, [r.frame_index for r in c]) for c in clips]
    assert key == [("v0", 1, [7, 8]), ("v1", 1, [0, 1]), ("v1", 1, [1, 2]), ("v1", 1, [2, 3]), ("v1", 1, [5, 6]),
                   ("v1", 2, [2, 3]), ("v1", 2, [3, 4])]
    assert [[r.frame_index for r in c] for c in make_clips(recs, 3)] == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert [[r.frame_index for r in c] for c in make_clips(recs, 2, stride=2)] == [[7, 8], [0, 1], [2, 3], [5, 6], [2, 3]]
    assert make_clips(recs, 5) == []
    with pytest.raises(ConfigError, match="length"):
        make_clips(recs, 0)
    with pytest.raises(ConfigError, match="stride"):
        make_clips(recs, 2, stride=0)
    with pytest.raises(DataError, match="two records at frame 1"):
        make_clips(recs + track(rng, "v1", 1, [1]), 2)


def test_clip_dataset_shares_the_transform():
    rng = np.random.default_rng(1)
    recs = track(rng, "v", 0, range(4))
    src = MemoryImageSource({r.file_name: dots([r]) for r in recs})
    clips = make_clips(recs, 3)
    ds = ClipDataset(clips, src, INPUT, codec=CODEC, seed=5, aug=AugConfig(rotation_prob=1.0, half_body_prob=1.0))
    assert len(ds) == 2
    for i in range(2):
        it = ds[i]
        assert set(it) == KEYS and it["index"] == i and isinstance(it["flipped"], bool)
        assert it["image"].shape == (3, 3, 64, 48) and it["target"].shape == (3, 17, 16, 12)
        assert it["target_weight"].shape == (3, 17) and it["affine"].shape == (3, 2, 3) and it["keypoints"].shape == (3, 17, 3)
        params = sample_params(np.random.default_rng([5, 0, i]), ds.aug)
        assert params.half_body  # every frame has 16 labelled joints (> 8): all frames use the half-body box
        half = slice(0, 11) if params.upper_body else slice(11, 17)
        for t, r in enumerate(clips[i]):
            _, kps, M = apply_transform(src.load(r.file_name), r, params, INPUT, FLIP_INDEX)
            np.testing.assert_allclose(it["affine"][t].numpy(), M, rtol=1e-6, atol=1e-5)
            np.testing.assert_allclose(it["keypoints"][t].numpy(), kps)
            kp = r.keypoints[half]
            centre = kp[kp[:, 2] > 0, :2].mean(0)
            np.testing.assert_allclose(apply_affine(M, centre), [23.5, 31.5], atol=1e-4)
    # Half-body is dropped for the whole clip when one frame does not qualify.
    recs2 = track(np.random.default_rng(2), "w", 0, range(3))
    recs2[1].keypoints[:12, 2] = 0
    src2 = MemoryImageSource({r.file_name: dots([r]) for r in recs2})
    ds2 = ClipDataset([recs2], src2, INPUT, codec=CODEC, aug=AugConfig(half_body_prob=1.0, rotation_prob=0.0, flip_prob=0.0,
                                                          scale_factor=0.0))
    it = ds2[0]
    for t, r in enumerate(recs2):
        c, s = box_to_center_size(r.bbox, INPUT)
        np.testing.assert_allclose(it["affine"][t].numpy(), crop_affine(c, s, INPUT), atol=1e-5)


def test_clip_dataset_rotation_scale_flip_shared():
    rng = np.random.default_rng(3)
    recs = track(rng, "v", 0, range(3))
    src = MemoryImageSource({r.file_name: dots([r]) for r in recs})
    ds = ClipDataset([recs], src, INPUT, codec=CODEC, seed=0, aug=AugConfig(rotation_prob=1.0))
    linear = []
    for e in range(4):
        ds.set_epoch(e)
        A = ds[0]["affine"][:, :, :2]
        assert torch.allclose(A, A[:1].expand_as(A), atol=1e-6)  # equal box sizes -> identical linear parts
        linear.append(A[0])
    assert not torch.allclose(linear[0], linear[1])  # but a new draw each epoch


def test_clip_dataset_errors():
    rng = np.random.default_rng(0)
    recs = track(rng, "v", 0, range(3))
    src = MemoryImageSource({})
    with pytest.raises(DataError, match="empty"):
        ClipDataset([], src, INPUT, codec=CODEC)
    with pytest.raises(DataError, match="same non-zero length"):
        ClipDataset([recs[:2], recs], src, INPUT, codec=CODEC)
    with pytest.raises(DataError, match=r"v/0\.png"):
        ClipDataset([recs], src, INPUT, codec=CODEC)[0]


class _CountingSource:
    def __init__(self, images):
        self.images, self.calls = images, []

    def load(self, file_name):
        self.calls.append(file_name)
        return self.images[file_name].copy()


def test_cached_image_source_decodes_once_within_its_budget(data):
    recs, src = data
    img = src.load("a.png")
    inner = _CountingSource({"a.png": img, "b.png": img + 1, "c.png": img + 2})
    cached = CachedImageSource(inner, max_bytes=2 * img.nbytes)
    for name in ("a.png", "b.png", "c.png", "a.png", "b.png", "c.png"):
        np.testing.assert_array_equal(cached.load(name), inner.images[name])
    assert inner.calls == ["a.png", "b.png", "c.png", "c.png"]  # c is over the budget: read through
    assert len(cached) == 2 and cached.nbytes == 2 * img.nbytes
    with pytest.raises(ValueError, match="read-only"):
        cached.load("a.png")[0, 0, 0] = 1
    # a dataset over the cache gives the same items as over the source
    a = TopDownDataset(recs, src, input_size_hw=INPUT, codec=HeatmapCodec(INPUT, 4), train=True, seed=3)
    b = TopDownDataset(recs, CachedImageSource(src), input_size_hw=INPUT, codec=HeatmapCodec(INPUT, 4), train=True,
                       seed=3)
    for i in range(len(recs)):
        torch.testing.assert_close(a[i]["image"], b[i]["image"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="max_bytes must be an integer >= 0"):
        CachedImageSource(src, max_bytes=-1)
