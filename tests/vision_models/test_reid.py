"""Person re-identification embeddings with the real model on real footage (PETS09-S2L1 ground truth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import PETS_DIR
from vision_models.evaluation import load_mot_truth_rows
from vision_models.registry import MODELS, ModelError, UnknownModelError
from vision_models.reid import ReidEmbedder
from vision_models.video import read_frames

GT_SCALE = 480 / 768  # ground truth is in 768x576 pixels, the video is 480x360
EVERY = 20  # frames 1, 21, 41, ...: ~220 people, ~3 s of embedding


@dataclass(frozen=True)
class PeopleEmbeddings:
    """Ground-truth people of sampled frames: embeddings (N, 256), their person ids and frame numbers (N,)."""

    emb: npt.NDArray[np.float32]
    track_id: npt.NDArray[np.int64]
    frame: npt.NDArray[np.int64]


@pytest.fixture(scope="module")
def embedder() -> ReidEmbedder:
    return ReidEmbedder()


@pytest.fixture(scope="module")
def first_frame() -> npt.NDArray[np.uint8]:
    if not (PETS_DIR / "vtest_480x360.avi").exists():
        pytest.fail(f"test footage missing: {PETS_DIR}")
    return next(read_frames(PETS_DIR / "vtest_480x360.avi"))


@pytest.fixture(scope="module")
def pets_people(embedder: ReidEmbedder) -> PeopleEmbeddings:
    """Every annotated (flag 1) person of every 20th frame, embedded from the ground-truth box."""
    if not (PETS_DIR / "gt.txt").exists():
        pytest.fail(f"test footage missing: {PETS_DIR}")
    truth = load_mot_truth_rows(PETS_DIR / "gt.txt", scale=GT_SCALE)
    embs, ids, frames = [], [], []
    for index, frame in enumerate(read_frames(PETS_DIR / "vtest_480x360.avi")):
        number = index + 1
        if index % EVERY:
            continue
        sel = (truth.frame == number) & ~truth.ignore
        embs.append(embedder.embed(frame, truth.xyxy[sel]))
        ids.append(truth.track_id[sel])
        frames.append(np.full(int(sel.sum()), number, np.int64))
    return PeopleEmbeddings(np.concatenate(embs), np.concatenate(ids), np.concatenate(frames))


def test_same_person_far_apart_in_time_is_more_similar_than_another_person_in_the_same_frame(
    pets_people: PeopleEmbeddings,
) -> None:
    """Mean cosine of one person with themselves >= 20 frames (~3 s) later, against two different people in
    the same frame. Measured on this sample (frames 1, 21, 41, ..., 223 boxes): same 0.877 (1,594 pairs),
    different 0.764 (558 pairs), margin 0.113; AUC 0.807. The thresholds leave headroom."""
    emb, ids, frames = pets_people.emb, pets_people.track_id, pets_people.frame
    similarity = emb @ emb.T
    upper = np.triu(np.ones_like(similarity, dtype=bool), k=1)
    same_id = ids[:, None] == ids[None, :]
    gap = np.abs(frames[:, None] - frames[None, :])
    same = similarity[upper & same_id & (gap >= 20)]
    different = similarity[upper & ~same_id & (gap == 0)]
    # Share of (same, different) pairs in which the same-person pair is the more similar one (ROC AUC).
    auc = float((same[:, None] > different[None, :]).mean())
    margin = float(same.mean() - different.mean())
    print(
        f"\nsame person >= 20 frames apart: mean {same.mean():.3f} ({same.size} pairs); different people, "
        f"same frame: mean {different.mean():.3f} ({different.size} pairs); margin {margin:.3f}; "
        f"AUC {auc:.3f}"
    )
    assert len(emb) >= 200 and same.size >= 1000 and different.size >= 400
    assert margin >= 0.07
    assert auc >= 0.70


def test_rows_are_unit_length_float32(pets_people: PeopleEmbeddings, embedder: ReidEmbedder) -> None:
    assert pets_people.emb.dtype == np.float32 and pets_people.emb.shape[1] == embedder.dim == 256
    np.testing.assert_allclose(np.linalg.norm(pets_people.emb, axis=1), 1.0, atol=1e-5)


def test_identity_and_timing(embedder: ReidEmbedder, first_frame: npt.NDArray[np.uint8]) -> None:
    assert embedder.model_id == "person-reid-0288"
    assert embedder.sha256 in MODELS["person-reid-0288"].sha256
    assert embedder.input_size_wh == (128, 256)
    embedder.embed(first_frame, np.array([[300, 90, 335, 150]], np.float32))
    assert embedder.last_ms > 0.0


def test_boxes_are_clipped_and_degenerate_boxes_give_nan_rows(
    embedder: ReidEmbedder, first_frame: npt.NDArray[np.uint8]
) -> None:
    h, w = first_frame.shape[:2]
    boxes = np.array(
        [
            [300.0, 90.0, 335.0, 150.0],  # a person, inside the frame
            [w - 20.0, h - 40.0, w + 30.0, h + 60.0],  # partly outside: clipped to the frame
            [w - 20.0, h - 40.0, float(w), float(h)],  # the same box, already clipped
            [100.0, 100.0, 101.5, 160.0],  # 1.5 px wide
            [500.0, 100.0, 540.0, 160.0],  # wholly right of the frame
            [200.0, 160.0, 150.0, 100.0],  # inverted
        ],
        np.float32,
    )
    emb = embedder.embed(first_frame, boxes)
    assert emb.shape == (6, 256) and emb.dtype == np.float32
    assert np.all(np.isfinite(emb[:3])) and np.all(np.isnan(emb[3:]))
    np.testing.assert_array_equal(emb[1], emb[2])
    none = embedder.embed(first_frame, np.zeros((0, 4), np.float32))
    assert none.shape == (0, 256) and none.dtype == np.float32


def test_wrong_inputs_raise_naming_expected_and_actual(
    embedder: ReidEmbedder, first_frame: npt.NDArray[np.uint8]
) -> None:
    box = np.array([[300, 90, 335, 150]], np.float32)
    with pytest.raises(ValueError, match="expected dtype uint8, got float32"):
        embedder.embed(first_frame.astype(np.float32), box)
    with pytest.raises(ValueError, match=r"expected shape \(H, W, 3\) with H, W >= 1, got \(360, 480\)"):
        embedder.embed(first_frame[:, :, 0], box)
    with pytest.raises(ValueError, match=r"got \(360, 480, 4\)"):
        embedder.embed(np.dstack([first_frame, first_frame[:, :, :1]]), box)
    with pytest.raises(ValueError, match="expected a numpy uint8 array"):
        embedder.embed([[0]], box)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"xyxy: expected shape \(K, 4\), got \(4,\)"):
        embedder.embed(first_frame, box[0])
    with pytest.raises(ValueError, match=r"xyxy: expected shape \(K, 4\), got \(1, 5\)"):
        embedder.embed(first_frame, np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="xyxy: expected finite pixel coordinates"):
        embedder.embed(first_frame, np.array([[np.nan, 0, 10, 10]], np.float32))
    with pytest.raises(ValueError, match="xyxy: expected numbers"):
        embedder.embed(first_frame, np.array([["a", "b", "c", "d"]]))  # type: ignore[arg-type]


def test_only_a_registered_reid_model_loads() -> None:
    with pytest.raises(
        ModelError,
        match=r"yolox-nano is a person detector, not a re-identification model; registered: person-reid-0288",
    ):
        ReidEmbedder("yolox-nano")
    with pytest.raises(UnknownModelError, match="unknown model id 'osnet'"):
        ReidEmbedder("osnet")
    with pytest.raises(ModelError, match="threads must be >= 1, got 0"):
        ReidEmbedder(threads=0)
