"""Face cropping on real clips and photos: detection rate, boxes on the face, crop geometry, odd images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dldfd_hf.media.face_detector import FaceDetections
from dldfd_hf.media.faces import Face, FaceCropper, square_crop_box
from dldfd_hf.media.image import load_image
from dldfd_hf.media.mtcnn import MTCNNDetector
from dldfd_hf.media.video_reader import sample_frames

CLIPS = (
    "videos/LipNet_GRID/evaluation_samples_GRID_lbax4n.mpg",
    "videos/LivePortrait/assets_examples_driving_d19.mp4",
    "videos/video-retalking/examples_face_5.mp4",
)
ASTRONAUT = "faces/scikit-image_pkg/astronaut.png"  # one face, 512x512
MULTIFACE = "faces/facenet-pytorch/data_multiface.jpg"  # a group photo


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # MTCNN: see conftest


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper(crop_size=64)


@pytest.fixture(scope="module")
def astronaut(shared_data: Path) -> Image.Image:
    return load_image(shared_data / ASTRONAUT)


def _inside(points: np.ndarray, box) -> bool:
    x1, y1, x2, y2 = box
    return bool(((points[:, 0] >= x1) & (points[:, 0] <= x2) & (points[:, 1] >= y1) & (points[:, 1] <= y2)).all())


@pytest.mark.parametrize("clip", CLIPS)
def test_faces_found_on_talking_face_clips(shared_data, cropper, clip):
    frames = sample_frames(shared_data / clip, num_frames=8)
    results = cropper([frame.image for frame in frames])
    assert len(results) == len(frames)
    assert sum(len(faces) == 1 for faces in results) / len(frames) >= 0.95
    for frame, faces in zip(frames, results):
        height, width = frame.image.shape[:2]
        for face in faces:
            assert isinstance(face, Face) and face.score >= 0.9
            x1, y1, x2, y2 = face.box
            assert 0 <= x1 < x2 <= width + 1 and 0 <= y1 < y2 <= height + 1
            # Eyes, nose and mouth corners lie inside the face box: the box is on the face.
            assert face.landmarks.shape == (5, 2) and _inside(face.landmarks, face.box)
            left_eye, right_eye, nose = face.landmarks[0], face.landmarks[1], face.landmarks[2]
            assert left_eye[0] < nose[0] < right_eye[0] and nose[1] > max(left_eye[1], right_eye[1])
            # The crop: 1.3x the box around its centre, always square and in the frame, resized to crop_size.
            cx1, cy1, cx2, cy2 = face.crop_box
            assert cx1 <= x1 and cy1 <= y1 and cx2 >= x2 and cy2 >= y2
            assert cx2 - cx1 == cy2 - cy1 and 0 <= cx1 and 0 <= cy1 and cx2 <= width and cy2 <= height
            assert face.crop_box == square_crop_box(face.box, width, height, 1.3)
            assert face.crop.size == (64, 64) and face.crop.mode == "RGB"


def _check_square(crop_box, width, height):
    left, top, right, bottom = crop_box
    assert all(isinstance(v, int) for v in crop_box)
    assert right - left == bottom - top > 0, crop_box  # square: the resize keeps the face's aspect ratio
    assert 0 <= left and 0 <= top and right <= width and bottom <= height, crop_box  # inside the frame
    return right - left


def _contains(crop_box, box) -> bool:
    return crop_box[0] <= box[0] and crop_box[1] <= box[1] and crop_box[2] >= box[2] and crop_box[3] >= box[3]


def test_square_crop_box_geometry():
    # 100x80 box centred at (200, 150): side 130, centred.
    assert square_crop_box((150, 110, 250, 190), 640, 480) == (135, 85, 265, 215)
    assert square_crop_box((10, 10, 20, 20), 640, 480, scale=1.0) == (10, 10, 20, 20)
    # At the borders the square is shifted inside the frame, not clipped to a rectangle.
    assert square_crop_box((0, 5, 40, 45), 640, 480) == (0, 0, 52, 52)
    assert square_crop_box((600, 440, 640, 480), 640, 480) == (588, 428, 640, 480)
    # Larger than the frame's shorter side: the largest square that fits, centred on the face
    # horizontally as far as the frame allows.
    assert square_crop_box((100, 50, 500, 450), 640, 480) == (60, 0, 540, 480)
    assert square_crop_box((500, 50, 900, 450), 1000, 480) == (460, 0, 940, 480)
    assert square_crop_box((600, 50, 1000, 450), 1000, 480) == (520, 0, 1000, 480)


@pytest.mark.parametrize("width, height", [(640, 480), (360, 640), (200, 200)])
def test_square_crop_boxes_near_every_border_are_square_in_the_frame_and_hold_the_face(width, height):
    rng = np.random.default_rng(width * height)
    for _ in range(400):
        size = float(rng.uniform(4, 1.5 * max(width, height)))
        w, h = size * rng.uniform(0.6, 1.0), size * rng.uniform(0.6, 1.0)
        # Boxes anywhere, many touching or crossing a border or a corner.
        x1 = float(rng.choice([rng.uniform(-0.3 * w, 2.0), rng.uniform(0, width - w) if width > w else 0.0,
                               width - w + rng.uniform(-2.0, 0.3 * w)]))
        y1 = float(rng.choice([rng.uniform(-0.3 * h, 2.0), rng.uniform(0, height - h) if height > h else 0.0,
                               height - h + rng.uniform(-2.0, 0.3 * h)]))
        box = (x1, y1, x1 + w, y1 + h)
        for scale in (1.0, 1.3, 2.0):
            crop = square_crop_box(box, width, height, scale)
            side = _check_square(crop, width, height)
            wanted = int(np.ceil(scale * max(w, h) - 1e-9))
            assert min(wanted, width, height) <= side <= min(wanted + 1, width, height), (box, scale, crop)
            in_frame = box[0] >= 0 and box[1] >= 0 and box[2] <= width and box[3] <= height
            if in_frame and max(w, h) <= min(width, height):  # the face fits: it is never cut
                assert _contains(crop, box), (box, scale, crop)
            if side >= wanted:  # not shrunk: the square covers the face's centre with the full margin
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                assert crop[0] <= max(cx, 0) and crop[2] >= min(cx, width), (box, scale, crop)
                assert crop[1] <= max(cy, 0) and crop[3] >= min(cy, height), (box, scale, crop)


def test_select_modes_and_min_score(shared_data):
    photo = load_image(shared_data / MULTIFACE)
    everyone = FaceCropper(crop_size=32, select="all")([photo])[0]
    assert len(everyone) >= 3
    areas = [face.area for face in everyone]
    assert areas == sorted(areas, reverse=True)
    assert len({face.crop_box for face in everyone}) == len(everyone)
    largest = FaceCropper(crop_size=32, select="largest")([photo])[0]
    assert len(largest) == 1 and largest[0].box == everyone[0].box
    confident = FaceCropper(crop_size=32, select="confident")([photo])[0]
    assert len(confident) == 1 and confident[0].score == max(face.score for face in everyone)
    strict = FaceCropper(crop_size=32, select="all", min_score=0.9999)([photo])[0]
    assert all(face.score >= 0.9999 for face in strict) and len(strict) <= len(everyone)
    with pytest.raises(ValueError, match="select"):
        FaceCropper(select="biggest")
    with pytest.raises(ValueError, match="min_score"):
        FaceCropper(min_score=1.5)


def test_large_photo_is_downscaled_for_detection_and_boxes_map_back(cropper, astronaut):
    reference = cropper([astronaut])[0][0]
    big = Image.new("RGB", (4000, 3000), (90, 90, 90))  # a 4000x3000 photo: the face upscaled 5.86x
    big.paste(astronaut.resize((3000, 3000), Image.Resampling.BICUBIC), (500, 0))
    faces = cropper([big])[0]  # detected at 640x480, cropped from the 4000x3000 frame
    assert len(faces) == 1
    scale = 3000 / 512
    expected = np.array(reference.box) * scale + [500, 0, 500, 0]
    assert np.allclose(faces[0].box, expected, atol=0.05 * (expected[2] - expected[0]))
    assert _inside(faces[0].landmarks, faces[0].box)
    assert faces[0].crop.size == (64, 64)
    # The crop is cut from the full-resolution frame: 1.3x the mapped-back box.
    x1, y1, x2, y2 = faces[0].box
    assert faces[0].crop_box[2] - faces[0].crop_box[0] == pytest.approx(1.3 * max(x2 - x1, y2 - y1), abs=2)


def test_frames_without_face_give_empty_lists(cropper, astronaut):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    gradient = np.broadcast_to(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 320, 3)).copy()
    tiny = np.zeros((8, 8, 3), dtype=np.uint8)  # smaller than the smallest face MTCNN looks for
    results = cropper([noise, astronaut, gradient, tiny, np.asarray(astronaut)])
    assert [len(faces) for faces in results] == [0, 1, 0, 0, 1]  # order kept across sizes
    assert results[1][0].box == results[4][0].box


def test_grayscale_rgba_palette_and_arrays(cropper, astronaut):
    reference = cropper([astronaut])[0][0]
    rgba = astronaut.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 255).point(lambda _: 200))
    variants = [
        astronaut.convert("L"),
        rgba,
        astronaut.convert("P", palette=Image.Palette.ADAPTIVE, colors=256),
        astronaut.convert("I;16"),
        np.asarray(astronaut.convert("L")),  # HxW
        np.asarray(astronaut.convert("RGBA")),  # HxWx4
    ]
    for variant, faces in zip(variants, cropper(variants)):
        assert len(faces) == 1, getattr(variant, "mode", getattr(variant, "shape", None))
        assert np.allclose(faces[0].box, reference.box, atol=12)
        assert faces[0].crop.mode == "RGB" and faces[0].crop.size == (64, 64)
    with pytest.raises(TypeError, match="uint8"):
        cropper([np.zeros((64, 64, 3), dtype=np.float32)])


def test_native_size_crops(astronaut):
    face = FaceCropper(crop_size=None)([astronaut])[0][0]
    x1, y1, x2, y2 = face.crop_box
    assert face.crop.size == (x2 - x1, y2 - y1)
    np.testing.assert_array_equal(np.asarray(face.crop), np.asarray(astronaut)[y1:y2, x1:x2])


class OneFaceDetector:
    """A face detector of one's own: the same face, at a fixed place, in every image."""

    BOX = (40.0, 30.0, 80.0, 90.0)  # 40 wide, 60 high
    MARKS = [[52, 50], [68, 50], [60, 62], [54, 75], [66, 75]]  # eyes, nose, mouth corners

    def __init__(self) -> None:
        self.calls = []

    def __call__(self, images):
        self.calls.append([image.shape for image in images])
        return [FaceDetections.of([self.BOX, (0, 0, 4, 4)], [0.99, 0.5], [self.MARKS, self.MARKS]) for _ in images]


def test_a_detector_of_ones_own_plugs_into_the_cropper():
    detector = OneFaceDetector()
    cropper = FaceCropper(crop_size=32, detector=detector, detect_max_size=None, batch_size=2)
    frame = np.arange(200 * 160 * 3, dtype=np.uint32).reshape(200, 160, 3).astype(np.uint8)
    results = cropper([frame, frame, frame, frame[:100]])
    # Detector calls: one size per call, at most batch_size images each.
    assert detector.calls == [[(200, 160, 3)] * 2, [(200, 160, 3)], [(100, 160, 3)]]
    for faces in results:
        (face,) = faces  # the 0.5-scored box is under min_score
        assert face.box == OneFaceDetector.BOX and face.score == pytest.approx(0.99)
        np.testing.assert_allclose(face.landmarks, OneFaceDetector.MARKS)
        assert face.crop_box == (21, 21, 99, 99)  # 1.3 x 60 = 78 pixels, centred on (60, 60)
        expected = Image.fromarray(frame[21:99, 21:99]).resize((32, 32), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(np.asarray(face.crop), np.asarray(expected))


def test_the_detector_boxes_are_mapped_back_from_the_detection_size():
    detector = OneFaceDetector()
    faces = FaceCropper(crop_size=None, detector=detector, detect_max_size=100).detect([np.zeros((400, 200, 3), np.uint8)])
    assert detector.calls == [[(100, 50, 3)]]  # detected at a quarter of the size
    assert faces[0][0].box == tuple(4 * v for v in OneFaceDetector.BOX)
    np.testing.assert_allclose(faces[0][0].landmarks, 4 * np.asarray(OneFaceDetector.MARKS))


def test_mtcnn_is_the_default_detector_and_takes_the_mtcnn_options():
    cropper = FaceCropper(min_face_size=40, thresholds=(0.5, 0.6, 0.6))
    assert isinstance(cropper.detector, MTCNNDetector)
    assert cropper.detector.min_face_size == 40 and cropper.detector.mtcnn.thresholds == [0.5, 0.6, 0.6]
    assert cropper.batch_size == 8  # MTCNN's choice on CPU
    with pytest.raises(ValueError, match="configure the default MTCNN"):
        FaceCropper(detector=OneFaceDetector(), min_face_size=40)
    with pytest.raises(ValueError, match="detect_max_size must be >= min_face_size"):
        FaceCropper(detect_max_size=10)


@pytest.mark.parametrize("batch_size", [0, -3, True, 2.5])
def test_the_cropper_refuses_a_batch_size_that_is_not_a_positive_integer(batch_size):
    with pytest.raises(ValueError, match=rf"^FaceCropper: batch_size must be a positive integer, got {batch_size!r}$"):
        FaceCropper(crop_size=32, detector=OneFaceDetector(), detect_max_size=None, batch_size=batch_size)
