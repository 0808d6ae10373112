"""Video reading: metadata, evenly spaced seek sampling vs decoding everything, streaming, bad files."""

from __future__ import annotations

import gc
import inspect
import weakref
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from dldfd_hf._io import TEMPORARY_PATTERN
from dldfd_hf.data.video_writer import write_video
from dldfd_hf.media.video import Frame, VideoReadError, evenly_spaced_indices
from dldfd_hf.media.video_reader import VideoReader, iter_sampled_frames, probe, sample_frames
from dldfd_hf.media.video_stream import iter_frames

GRID_CLIP = "videos/LipNet_GRID/evaluation_samples_GRID_bbaf2n.mpg"  # MPEG-1 in MPEG-PS, 75 frames, GOP 12
PORTRAIT_CLIP = "videos/LivePortrait/assets_examples_driving_d6.mp4"  # H.264 mp4, 1008 frames, 30 fps
# H.264 mp4 at 29.97 fps, irregular GOPs (keyframes 0, 60, 120, 163, 211, 271), stream starts at pts > 0
HAMILTON_CLIP = "videos/face_recognition/examples_short_hamilton_clip.mp4"
# Pixel tolerance between a frame reached by seeking and the same frame decoded in sequence:
# identical decoders give identical pixels; allow rounding differences of the RGB conversion.
CODEC_TOLERANCE = 2


@pytest.fixture(scope="module")
def grid_clip(shared_data: Path) -> Path:
    return shared_data / GRID_CLIP


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory, shared_data: Path) -> Path:
    """48 s of real talking-face frames, H.264 (B-frames on) with a keyframe every 20 frames exactly."""
    frames = [np.asarray(Image.fromarray(f.image).resize((128, 96))) for f in iter_frames(shared_data / GRID_CLIP)]
    path = tmp_path_factory.mktemp("video") / "long_gop20.mp4"
    written = write_video(path, (frames[i % len(frames)] for i in range(1200)), fps=25, gop=20)
    assert written == 1200
    return path


def _keyframe_positions(path: Path) -> list:
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
    order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
    return [rank for rank, i in enumerate(order) if packets[i].is_keyframe]


def test_evenly_spaced_indices():
    assert evenly_spaced_indices(75, 8) == [4, 14, 23, 32, 42, 51, 60, 70]
    assert evenly_spaced_indices(5, 32) == [0, 1, 2, 3, 4]  # fewer frames than asked: all of them
    indices = evenly_spaced_indices(18000, 32)
    gaps = np.diff(indices)
    assert len(indices) == 32 and gaps.min() >= 562 and gaps.max() <= 563
    with pytest.raises(ValueError):
        evenly_spaced_indices(10, 0)


def test_probe_metadata(shared_data, grid_clip):
    info = probe(grid_clip)  # MPEG-PS carries no frame count: counted by demuxing
    assert (info.fps, info.frame_count, info.width, info.height) == (25.0, 75, 360, 288)
    assert info.duration == pytest.approx(2.98, abs=0.05) and info.codec == "mpeg1video"
    info = probe(shared_data / PORTRAIT_CLIP)
    assert (info.fps, info.frame_count, info.width, info.height) == (30.0, 1008, 480, 480)
    assert info.duration == pytest.approx(33.6, abs=0.1)


def test_write_video_fixes_the_gop(long_clip):
    info = probe(long_clip)
    assert (info.frame_count, info.fps, info.width, info.height) == (1200, 25.0, 128, 96)
    assert _keyframe_positions(long_clip) == list(range(0, 1200, 20))


def test_write_video_is_atomic_with_recognisable_temporaries(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(6)]
    path = tmp_path / "clip.mkv"
    path.write_bytes(b"previous version")
    seen = []

    def frames(fail_at=None):
        for i, image in enumerate(images):
            seen.append(sorted(p.name for p in tmp_path.iterdir()))
            if i == fail_at:
                raise RuntimeError("the frame source broke")
            yield image

    # While encoding, the old file stays in place and the new one is a unique, attributable temporary
    # (<name>.tmp-<host>-<pid>-<random>, dldfd_hf._io): concurrent writers never share it.
    with pytest.raises(RuntimeError, match="frame source broke"):
        write_video(path, frames(fail_at=3), fps=25, codec="mpeg4")  # mpeg4: a packet per frame, no lookahead
    temporaries = {name for listing in seen[1:] for name in listing} - {"clip.mkv"}
    assert len(temporaries) == 1 and TEMPORARY_PATTERN.match(temporaries.pop()).group("name") == "clip.mkv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]  # a failed encode leaves nothing
    assert path.read_bytes() == b"previous version"
    # The container comes from the real name (the temporary has no video extension): Matroska here.
    assert write_video(path, frames(), fps=25) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]
    assert probe(path).frame_count == 6
    with av.open(str(path)) as container:
        assert "matroska" in container.format.name
    with pytest.raises(ValueError, match="cannot tell the video container"):
        write_video(tmp_path / "clip.unknown-extension", images, fps=25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


@pytest.mark.parametrize("clip,num_frames", [(GRID_CLIP, 16), (HAMILTON_CLIP, 12)])
def test_seek_sampling_matches_decoding_everything(shared_data, clip, num_frames):
    path = shared_data / clip
    everything = list(iter_frames(path))
    with VideoReader(path) as reader:
        sampled = reader.sample(num_frames)
        info = reader.info
    assert [f.index for f in sampled] == evenly_spaced_indices(len(everything), num_frames)
    for frame in sampled:
        reference = everything[frame.index]
        assert frame.image.shape == reference.image.shape == (info.height, info.width, 3)
        assert frame.image.dtype == np.uint8
        assert np.abs(frame.image.astype(int) - reference.image.astype(int)).max() <= CODEC_TOLERANCE
        assert frame.time == pytest.approx(reference.time, abs=1e-6)
        assert frame.time == pytest.approx(frame.index / info.fps, abs=1e-3)


def test_iter_sampled_frames_streams_the_sample(long_clip, tmp_path):
    expected = sample_frames(long_clip, 6)
    frames = iter_sampled_frames(long_clip, 6)
    first = next(frames)
    image = weakref.ref(first.image)
    del first
    gc.collect()
    assert image() is None  # the iterator holds no earlier frame: memory does not grow with the sample
    rest = list(frames)
    assert [f.index for f in rest] == [f.index for f in expected[1:]]
    assert all(np.array_equal(a.image, b.image) and a.time == b.time for a, b in zip(rest, expected[1:]))
    with pytest.raises(VideoReadError, match="no such file"):
        iter_sampled_frames(tmp_path / "missing.mp4", 6)  # at the call, not at the first next()
    partial = iter_sampled_frames(long_clip, 6)
    assert partial.warning is None and next(partial).index == expected[0].index
    partial.close()  # closes the file mid-sample: nothing more comes
    assert list(partial) == []


def test_seeking_is_sparse_on_a_long_clip(long_clip):
    everything = {f.index: f.image for f in iter_frames(long_clip)}
    # 8 frames 150 apart, GOP 20: one seek per frame, and only the GOP prefix before each is decoded.
    with VideoReader(long_clip) as reader:
        frames = reader.sample(8)
        assert [f.index for f in frames] == [75, 225, 375, 525, 675, 825, 975, 1125]
        assert reader.seeks == 8
        assert reader.frames_decoded <= 8 * 20  # decoding everything would be 1200
    for frame in frames:
        assert np.abs(frame.image.astype(int) - everything[frame.index].astype(int)).max() <= CODEC_TOLERANCE
    # 10 frames inside one GOP (keyframes at 100 and 120): one seek to 100, then forward decoding only.
    with VideoReader(long_clip) as reader:
        frames = reader.read(range(101, 120, 2))
        assert [f.index for f in frames] == list(range(101, 120, 2))
        assert reader.seeks == 1 and reader.frames_decoded <= 24
    for frame in frames:
        assert np.abs(frame.image.astype(int) - everything[frame.index].astype(int)).max() <= CODEC_TOLERANCE
    # Dense sampling (32 frames, ~2 per GOP) of the first 200 frames: forward decoding, no seek per frame.
    with VideoReader(long_clip) as reader:
        wanted = evenly_spaced_indices(200, 32)
        frames = reader.read(wanted)
        assert [f.index for f in frames] == wanted
        assert reader.seeks <= 200 // 20 and reader.frames_decoded <= 200 + 4


def test_consecutive_frames_survive_skipping_of_unreferenced_frames(long_clip):
    # Between wanted frames the decoder skips frames nothing references (B-frames); wanted ones,
    # even adjacent B-frames the decoder meets early (reordering), must all come out, exactly.
    everything = {f.index: f.image for f in iter_frames(long_clip)}
    with VideoReader(long_clip) as reader:
        frames = reader.read(range(230, 270))
    assert [f.index for f in frames] == list(range(230, 270))
    for frame in frames:
        np.testing.assert_array_equal(frame.image, everything[frame.index])


def test_read_out_of_order_and_out_of_range(long_clip):
    with VideoReader(long_clip) as reader:
        late = reader.read([1000])
        early = reader.read([5, 5, 3])  # behind the decoder: it must go back
        assert [f.index for f in late + early] == [1000, 3, 5]
        with pytest.raises(IndexError, match="1200"):
            reader.read([1200])


def test_iter_frames_streams_every_kth_frame(grid_clip):
    everything = list(iter_frames(grid_clip))
    assert [f.index for f in everything] == list(range(75))
    assert np.allclose([f.time for f in everything], np.arange(75) / 25.0)
    stream = iter_frames(grid_clip, step=10)
    assert inspect.isgenerator(stream)  # lazily decoded, one frame at a time
    every_10th = list(stream)
    assert [f.index for f in every_10th] == list(range(0, 75, 10))
    for frame in every_10th:
        assert isinstance(frame, Frame)
        np.testing.assert_array_equal(frame.image, everything[frame.index].image)
    with pytest.raises(ValueError):
        next(iter_frames(grid_clip, step=0))


# --- bad input ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_videos(tmp_path_factory, shared_data: Path) -> dict:
    folder = tmp_path_factory.mktemp("bad")
    frames = [f.image for f in iter_frames(shared_data / GRID_CLIP)]
    complete = folder / "complete.mp4"
    write_video(complete, frames, fps=25, gop=10)  # index (moov) at the end
    faststart = folder / "faststart.mp4"
    write_video(faststart, frames, fps=25, gop=10, container_options={"movflags": "+faststart"})
    paths = {
        "text": folder / "notes.mp4",
        "zero": folder / "zero.mp4",
        "truncated": folder / "truncated.mp4",
        "truncated_faststart": folder / "truncated_faststart.mp4",
        "audio_only": folder / "audio.m4a",
        "empty": folder / "empty.mkv",
        "missing": folder / "missing.mp4",
    }
    paths["text"].write_text("this is not a video\n")
    paths["zero"].write_bytes(b"")
    paths["truncated"].write_bytes(complete.read_bytes()[: complete.stat().st_size // 2])
    paths["truncated_faststart"].write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    with av.open(str(paths["audio_only"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        audio = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        audio.sample_rate = 16000
        for packet in list(stream.encode(audio)) + list(stream.encode()):
            container.mux(packet)
    container = av.open(str(paths["empty"]), "w")  # a header, a video stream, no frames
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    container.start_encoding()
    container.close()
    return paths


@pytest.mark.parametrize(
    "name,reason",
    [
        ("text", "not a video"),
        ("zero", "empty file (0 bytes)"),
        ("truncated", "truncated"),
        ("truncated_faststart", "truncated"),
        ("audio_only", "no video stream"),
        ("empty", "not a video"),
        ("missing", "no such file"),
    ],
)
def test_bad_files_raise_one_error_type_naming_file_and_reason(bad_videos, name, reason):
    path = bad_videos[name]
    for read in (probe, lambda p: sample_frames(p, 8), lambda p: list(iter_frames(p))):
        with pytest.raises(VideoReadError) as caught:
            read(path)
        assert str(caught.value).startswith(f"{path}: ")
        assert caught.value.path == str(path)
        assert reason in caught.value.reason


def test_truncated_faststart_reason_names_the_missing_frames(bad_videos):
    with pytest.raises(VideoReadError, match=r"lists 75 frames but only \d+ are present"):
        probe(bad_videos["truncated_faststart"])
