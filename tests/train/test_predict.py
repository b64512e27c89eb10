"""predict(): crop heatmaps -> image coordinates, flip test, scores, COCO results, make_val_fn."""

import numpy as np
import pytest
import torch
from torch import nn

from posenas_core.data.codec import HeatmapCodec
from posenas_core.data.geometry import apply_affine, box_to_center_size, crop_affine, flip_keypoints
from posenas_core.data.keypoints import FLIP_INDEX, NUM_KEYPOINTS
from posenas_core.data.types import PersonRecord
from posenas_core.train.predict import (heatmap_fn_from_checkpoint, heatmap_fn_from_model, make_val_fn,
                                        output_stride_of, predict)

K = NUM_KEYPOINTS
H, W = 64, 48                   # crop input; heatmaps 16 x 12 at stride 4
STRIDE = 4



pytestmark = pytest.mark.usefixtures("one_torch_thread")

class KnownCropSet:
    """Val-mode items whose crop keypoints are known. The item index is written into pixel (0, 0) of
    channel 0, so a stub model can tell which person (and whether the crop was flipped: the marker
    moves to column W-1)."""

    def __init__(self, n=5, seed=0):
        rng = np.random.default_rng(seed)
        self.codec = HeatmapCodec((H, W), STRIDE, sigma=2.0)
        # Crop keypoints on heatmap cell centres (x_in = (i + 0.5) * 4 - 0.5): argmax decoding is exact there.
        cells = np.stack([rng.integers(1, W // STRIDE - 1, (n, K)), rng.integers(1, H // STRIDE - 1, (n, K))], -1)
        self.crop_kps = ((cells + 0.5) * STRIDE - 0.5).astype(np.float64)               # (n, K, 2)
        self.gains = rng.uniform(0.3, 1.0, (n, K))                                      # joint confidences
        self.gains[0, :3] = 0.1                                                         # below the 0.2 threshold
        self.records, self.affines = [], []
        for i in range(n):
            bbox = np.array([20 + 7 * i, 30 + 3 * i, 60 + 5 * i, 90], np.float32)
            self.records.append(PersonRecord(image_id=100 + i, file_name=f"{i}.png", width=300, height=400,
                                              bbox=bbox, keypoints=np.zeros((K, 3)), score=0.5 + 0.1 * i))
            c, s = box_to_center_size(bbox, (H, W))
            self.affines.append(crop_affine(c, s, (H, W), rotation_deg=15.0 * i))      # image -> crop
        self.image_kps = np.stack([apply_affine(crop_affine(*box_to_center_size(r.bbox, (H, W)), (H, W),
                                                            rotation_deg=15.0 * i, inverse=True), self.crop_kps[i])
                                   for i, r in enumerate(self.records)])                # (n, K, 2)

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        image = torch.zeros(3, H, W)
        image[0, 0, 0] = i + 1
        return {"image": image, "target": torch.zeros(K, H // 4, W // 4), "target_weight": torch.ones(K),
                "affine": torch.from_numpy(self.affines[i].astype(np.float32)), "index": i, "flipped": False}


class StubModel(nn.Module):
    """Outputs Gaussian heatmaps of the item's known crop keypoints (scaled by per-joint gains); for a
    flipped crop, the flipped keypoints (x -> W-1-x, left/right swapped), times `flip_gain`."""

    def __init__(self, ds: KnownCropSet, flip_gain: float = 1.0):
        super().__init__()
        self.ds, self.flip_gain = ds, flip_gain
        self.dummy = nn.Parameter(torch.zeros(1))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        out = []
        for img in x:
            left, right = int(img[0, 0, 0]), int(img[0, 0, -1])
            i = (left or right) - 1
            kps = np.concatenate([self.ds.crop_kps[i], np.full((K, 1), 2.0)], -1)
            gains = self.ds.gains[i]
            if right:                                             # the crop was flipped
                kps = flip_keypoints(kps, W, FLIP_INDEX)
                gains = gains[list(FLIP_INDEX)] * self.flip_gain
            hm, _ = self.ds.codec.encode(kps)
            out.append(torch.from_numpy(hm) * torch.tensor(gains, dtype=torch.float32)[:, None, None])
        return torch.stack(out)


@pytest.mark.parametrize("flip_test", [False, True])
def test_predict_maps_known_heatmaps_back_to_image(flip_test):
    ds = KnownCropSet()
    model = StubModel(ds)
    model.train()
    results, kps = predict(model, ds, batch_size=2, flip_test=flip_test)
    assert kps.shape == (len(ds), K, 3)
    np.testing.assert_allclose(kps[..., :2], ds.image_kps, atol=2e-3)
    np.testing.assert_allclose(kps[..., 2], ds.gains, rtol=1e-5)
    assert model.training and model.modes and not any(model.modes)     # eval inside, mode restored after
    assert [r["image_id"] for r in results] == [100 + i for i in range(len(ds))]
    for i, r in enumerate(results):
        assert r["category_id"] == 1 and len(r["keypoints"]) == 3 * K
        np.testing.assert_allclose(np.reshape(r["keypoints"], (K, 3)), kps[i], rtol=1e-6)
        g = ds.gains[i]
        assert r["score"] == pytest.approx(ds.records[i].score * g[g > 0.2].mean(), rel=1e-5)


def test_flip_test_averages_unflipped_maps():
    ds = KnownCropSet()
    _, kps = predict(StubModel(ds, flip_gain=0.0), ds, batch_size=3, flip_test=True)
    np.testing.assert_allclose(kps[..., 2], 0.5 * ds.gains, rtol=1e-5)
    np.testing.assert_allclose(kps[..., :2], ds.image_kps, atol=2e-3)


def test_dark_decode_and_score_zero_when_no_confident_joint():
    ds = KnownCropSet(n=2)
    ds.gains[1] = 0.1
    results, kps = predict(StubModel(ds), ds, decode="dark", flip_test=False)
    # DARK is exact in the interior and biased by up to ~1 cell near the border (see the codec doc).
    err = np.abs(kps[..., :2] - ds.image_kps).max(-1)
    assert np.median(err) < 0.01 and err.max() < 2.0 and err.max() > 0.01     # dark, not argmax, was used
    assert results[1]["score"] == 0.0


def test_make_val_fn_perfect_predictions_give_ap_1():
    ds = KnownCropSet()
    anns = []
    for i, r in enumerate(ds.records):
        kp = np.concatenate([ds.image_kps[i], np.full((K, 1), 2.0)], -1)
        anns.append({"id": i + 1, "image_id": r.image_id, "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                     "num_keypoints": K, "bbox": r.bbox.tolist(), "area": float(r.bbox[2] * r.bbox[3]), "iscrowd": 0})
    gt = {"images": [{"id": r.image_id, "width": r.width, "height": r.height, "file_name": r.file_name}
                     for r in ds.records],
          "annotations": anns, "categories": [{"id": 1, "name": "person"}]}
    val_fn = make_val_fn(ds, gt, batch_size=4)
    metrics = val_fn(StubModel(ds))
    assert metrics["AP"] == pytest.approx(1.0)
    # Shift every prediction by 15 px: AP drops.
    ds.crop_kps = ds.crop_kps + np.array([12.0, 12.0])
    assert val_fn(StubModel(ds))["AP"] < 0.5


def test_with_real_topdown_dataset_train_then_predict(tmp_path):
    """Interface check against the real data pipeline: TopDownDataset items train and predict."""
    from posenas_core.data.dataset import TopDownDataset
    from posenas_core.data.types import MemoryImageSource
    from posenas_core.models.baselines import BaselineSpec
    from posenas_core.train.trainer import TrainConfig, train

    rng = np.random.default_rng(0)
    images, records = {}, []
    for i in range(4):
        images[f"{i}.png"] = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
        kp = np.concatenate([rng.uniform(30, 70, (K, 2)), np.full((K, 1), 2.0)], -1)
        records.append(PersonRecord(image_id=i, file_name=f"{i}.png", width=100, height=120,
                                    bbox=[25, 25, 50, 50], keypoints=kp, score=1.0))
    src = MemoryImageSource(images)
    spec = BaselineSpec(stem_channels=8, stages=((1, 8, 1), (1, 16, 2), (1, 16, 2)), head_channels=16, head_layers=2)
    res = train(spec, TopDownDataset(records, src, (64, 48), HeatmapCodec((64, 48), spec.output_stride), train=True), tmp_path,
                TrainConfig(epochs=1, batch_size=2, progress=False, log_every=1))
    assert res.completed and res.step == 2
    val = TopDownDataset(records, src, (64, 48), HeatmapCodec((64, 48), spec.output_stride), train=False)
    results, kps = predict(res.model, val, batch_size=3)
    assert kps.shape == (4, K, 3) and np.isfinite(kps).all() and len(results) == 4


# ---------------------------------------------------------------------------------------------
# heatmap_fn_from_model / _checkpoint: the PoseViewer's heatmap_fn(index) -> (K, h, w)


def _person_set(n=3, seed=0):
    from types import SimpleNamespace

    from posenas_core.data.types import MemoryImageSource

    rng = np.random.default_rng(seed)
    images, records = {}, []
    for i in range(n):
        images[f"{i}.png"] = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
        kp = np.concatenate([rng.uniform(30, 70, (K, 2)), np.full((K, 1), 2.0)], -1)
        records.append(PersonRecord(image_id=i, file_name=f"{i}.png", width=100, height=120,
                                    bbox=[20 + 3 * i, 25, 50, 60], keypoints=kp, score=1.0))
    return SimpleNamespace(records=records, image_source=MemoryImageSource(images))


class PoolModel(nn.Module):
    """Heatmap of joint j = (j + 1) x the crop's red channel average-pooled by the output stride."""

    output_stride = STRIDE

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.modes = []

    def forward(self, x):
        self.modes.append(self.training)
        pooled = nn.functional.avg_pool2d(x[:, :1], STRIDE)                   # (B, 1, h, w)
        return pooled * torch.arange(1, K + 1, dtype=x.dtype)[None, :, None, None]


def test_output_stride_comes_from_the_model_or_its_spec_and_is_never_guessed():
    from posenas_core.errors import ConfigError
    from posenas_core.models.baselines import BaselineSpec
    from posenas_core.models.registry import build_model

    spec = BaselineSpec(stem_channels=8, stages=((1, 8, 1), (1, 16, 2), (1, 16, 2)), head_channels=16, head_layers=3)
    assert output_stride_of(spec) == spec.output_stride == output_stride_of(build_model(spec)) == 2
    assert output_stride_of(PoolModel()) == STRIDE
    with pytest.raises(ConfigError, match="Linear has no output stride"):
        output_stride_of(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="no output stride"):
        heatmap_fn_from_model(nn.Linear(2, 2), _person_set(), (H, W))


def test_heatmap_fn_runs_the_model_on_the_val_crop_of_the_person():
    from posenas_core.data.dataset import TopDownDataset

    ps = _person_set()
    model = PoolModel().train()
    fn = heatmap_fn_from_model(model, ps, (H, W))
    val = TopDownDataset(ps.records, ps.image_source, (H, W), HeatmapCodec((H, W), STRIDE), train=False)
    for i in (2, 0):
        hm = fn(i)
        assert isinstance(hm, np.ndarray) and hm.dtype == np.float32 and hm.shape == (K, H // STRIDE, W // STRIDE)
        expect = nn.functional.avg_pool2d(val[i]["image"][None, :1], STRIDE)[0, 0].numpy()
        np.testing.assert_allclose(hm[0], expect, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(hm[5], 6 * expect, rtol=1e-5, atol=1e-5)
    assert not np.allclose(fn(0), fn(1))                                      # another person, another crop
    assert model.modes == [False] * 4 and model.training                      # eval inside, mode restored
    with pytest.raises(IndexError):
        fn(3)


def test_heatmap_fn_flip_test_and_from_a_checkpoint(tmp_path):
    from posenas_core.models.baselines import BaselineSpec
    from posenas_core.models.registry import build_model

    ps = _person_set()
    # flip test: the flipped crop's maps are flipped back and their left / right channels swapped, so the
    # pooling model's nose map (channel 0, its own mirror) is unchanged and the left eye's (channel 1, gain 2)
    # is averaged with the right eye's (gain 3)
    plain, flipped = heatmap_fn_from_model(PoolModel(), ps, (H, W)), heatmap_fn_from_model(PoolModel(), ps, (H, W),
                                                                                            flip_test=True)
    a, b = plain(1), flipped(1)
    assert FLIP_INDEX[1] == 2
    np.testing.assert_allclose(b[0], a[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b[1], 2.5 * a[0], rtol=1e-5, atol=1e-6)

    spec = BaselineSpec(stem_channels=8, stages=((1, 8, 1), (1, 16, 2), (1, 16, 2)), head_channels=16, head_layers=2)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    path = tmp_path / "ckpt.pt"
    torch.save({"spec": spec.to_dict(), "model": model.state_dict()}, path)
    fn = heatmap_fn_from_checkpoint(path, ps, (H, W))
    hm = fn(1)
    assert hm.shape == (K, H // 4, W // 4) and np.isfinite(hm).all()
    np.testing.assert_allclose(hm, heatmap_fn_from_model(model, ps, (H, W))(1), rtol=1e-5, atol=1e-6)
    from posenas_core.errors import CheckpointError

    with pytest.raises(CheckpointError, match="not found"):
        heatmap_fn_from_checkpoint(tmp_path / "missing.pt", ps, (H, W))
