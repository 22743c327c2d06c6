"""Photos: the EXIF focal-length reader (core/io/exif.py) and its use for a folder's intrinsics."""
from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.io.exif import fov_from_exif, read_exif


def _entry(endian: str, tag: int, typ: int, count: int, value: bytes) -> bytes:
    return struct.pack(endian + "HHI", tag, typ, count) + value.ljust(4, b"\x00")


def exif_app1(endian: str = "<", *, f35: int | None = 26, focal_mm: tuple | None = None,
              plane_res: tuple | None = None, unit: int | None = None, orientation: int | None = 1) -> bytes:
    """A minimal APP1 Exif segment: TIFF header, IFD0 (Orientation, ExifIFD pointer), the Exif IFD.
    Rationals are stored after the Exif IFD."""
    ifd0_n = 1 + (orientation is not None)
    ifd0_at = 8
    exif_at = ifd0_at + 2 + 12 * ifd0_n + 4
    exif_entries = []
    rationals = b""
    exif_n = sum(x is not None for x in (f35, focal_mm, plane_res, unit))
    data_at = exif_at + 2 + 12 * exif_n + 4

    def rational(pair):
        nonlocal rationals
        at = data_at + len(rationals)
        rationals += struct.pack(endian + "II", *pair)
        return struct.pack(endian + "I", at)

    if focal_mm is not None:
        exif_entries.append(_entry(endian, 0x920A, 5, 1, rational(focal_mm)))
    if plane_res is not None:
        exif_entries.append(_entry(endian, 0xA20E, 5, 1, rational(plane_res)))
    if unit is not None:
        exif_entries.append(_entry(endian, 0xA210, 3, 1, struct.pack(endian + "H", unit)))
    if f35 is not None:
        exif_entries.append(_entry(endian, 0xA405, 3, 1, struct.pack(endian + "H", f35)))
    ifd0 = []
    if orientation is not None:
        ifd0.append(_entry(endian, 0x0112, 3, 1, struct.pack(endian + "H", orientation)))
    ifd0.append(_entry(endian, 0x8769, 4, 1, struct.pack(endian + "I", exif_at)))
    tiff = (b"II" if endian == "<" else b"MM") + struct.pack(endian + "HI", 42, ifd0_at)
    tiff += struct.pack(endian + "H", len(ifd0)) + b"".join(ifd0) + b"\x00" * 4
    tiff += struct.pack(endian + "H", len(exif_entries)) + b"".join(exif_entries) + b"\x00" * 4 + rationals
    body = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def with_app1(jpeg: bytes, app1: bytes) -> bytes:
    """``jpeg`` with ``app1`` inserted right after SOI."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + app1 + jpeg[2:]


def jpeg_bytes(w: int = 64, h: int = 48) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("endian", ["<", ">"])
def test_reader_finds_35mm_focal_in_either_byte_order(tmp_path, endian):
    p = tmp_path / "a.jpg"
    p.write_bytes(with_app1(jpeg_bytes(), exif_app1(endian, f35=26, orientation=6)))
    info = read_exif(p)
    assert info == {"focal_35mm": 26.0, "orientation": 6}
    assert cv2.imdecode(np.fromfile(str(p), np.uint8), cv2.IMREAD_COLOR) is not None  # still a valid JPEG
    # the 36 mm long-side convention
    assert fov_from_exif(info, 640, 480) == pytest.approx(math.degrees(2 * math.atan(18 / 26)))


def test_reader_focal_plane_resolution_when_35mm_is_missing():
    # 4.25 mm lens, 1000 px per cm across the sensor's x: f = 425 px in the camera's pixels
    info = read_exif(with_app1(jpeg_bytes(), exif_app1(">", f35=None, focal_mm=(425, 100),
                                                      plane_res=(1000, 1), unit=3)))
    assert info["focal_mm"] == pytest.approx(4.25) and info["focal_plane_unit_mm"] == 10.0
    fov = fov_from_exif(info, 640, 480)
    assert 0.5 * 640 / math.tan(math.radians(fov) / 2) == pytest.approx(425.0)


@pytest.mark.parametrize("damage", ["truncated", "short_segment", "garbage_tiff", "bad_offset", "no_exif", "not_jpeg", "empty"])
def test_reader_returns_none_on_damaged_files(tmp_path, damage):
    good = exif_app1("<", f35=26)
    if damage == "truncated":  # the segment's length runs past the end of the file
        data = jpeg_bytes()[:2] + good[:30]
    elif damage == "short_segment":  # the segment ends inside IFD0
        cut = good[4:24]
        data = with_app1(jpeg_bytes(), b"\xff\xe1" + struct.pack(">H", len(cut) + 2) + cut)
    elif damage == "garbage_tiff":
        data = with_app1(jpeg_bytes(), good[:10] + b"\x5a" * (len(good) - 10))
    elif damage == "bad_offset":  # IFD0 offset far outside the segment
        body = bytearray(good)
        body[14:18] = struct.pack("<I", 0x7FFFFFF0)
        data = with_app1(jpeg_bytes(), bytes(body))
    elif damage == "no_exif":
        data = jpeg_bytes()
    elif damage == "not_jpeg":
        data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    else:
        data = b""
    p = tmp_path / "x.jpg"
    p.write_bytes(data)
    assert read_exif(p) is None
    assert fov_from_exif(read_exif(p), 640, 480) is None
    assert read_exif(tmp_path / "missing.jpg") is None


# ------------------------------------------------------------------------------------- captures of photos

from core.eval.reproj import reprojection  # noqa: E402
from core.io.clip import load_clip  # noqa: E402
from core.solve.camera import DEFAULT_FOV_DEG  # noqa: E402
from tests.test_cli import run_cli  # noqa: E402


def hand_photos(data_dir: Path, folder: Path, sizes, frames=(40, 200, 360)) -> list[Path]:
    """Frames of single_hand.mp4 (1280x720) centre-cropped to each size's aspect and resized, as JPEGs."""
    cap = cv2.VideoCapture(str(data_dir / "video" / "single_hand.mp4"))
    folder.mkdir()
    out = []
    try:
        for k, (i, (w, h)) in enumerate(zip(frames, sizes)):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, img = cap.read()
            assert ok, f"single_hand.mp4 frame {i}"
            ih, iw = img.shape[:2]
            cw = min(iw, int(round(ih * w / h)))
            ch = min(ih, int(round(cw * h / w)))
            x0, y0 = (iw - cw) // 2, (ih - ch) // 2
            img = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
            p = folder / f"photo{k}.jpg"
            assert cv2.imwrite(str(p), img)
            out.append(p)
    finally:
        cap.release()
    return out


def focal_for(fov_deg: float, w: int, h: int) -> float:
    return 0.5 * max(w, h) / math.tan(math.radians(fov_deg) / 2)


def test_folder_of_mixed_sizes_and_exif_focal(data_dir, tmp_path):
    sizes = [(640, 360), (360, 640), (480, 360)]
    photos = hand_photos(data_dir, tmp_path / "photos", sizes)
    # the first photo carries a 35 mm-equivalent focal length of 26 mm; the second a damaged Exif segment
    photos[0].write_bytes(with_app1(photos[0].read_bytes(), exif_app1("<", f35=26)))
    cut = exif_app1(">", f35=26)[4:24]  # the segment ends inside IFD0 (its length says so: a valid JPEG)
    photos[1].write_bytes(with_app1(photos[1].read_bytes(), b"\xff\xe1" + struct.pack(">H", len(cut) + 2) + cut))
    assert read_exif(photos[0]) == {"focal_35mm": 26.0, "orientation": 1} and read_exif(photos[1]) is None

    r = run_cli("capture", tmp_path / "photos", "--out", tmp_path / "c.npz", "--hands", "1")
    assert r.returncode == 0, r.stderr
    assert "intrinsics: 1 of 3 photos from EXIF focal length, the others guessed" in r.stderr
    clip = load_clip(tmp_path / "c.npz")
    assert clip.image_sizes.tolist() == [list(s) for s in sizes] and clip.image_size.tolist() == [640, 360]
    assert clip.mixed_sizes and clip.K_guessed and clip.K_exif.tolist() == [True, False, False]
    for k, (w, h) in enumerate(sizes):
        fov = math.degrees(2 * math.atan(18 / 26)) if k == 0 else DEFAULT_FOV_DEG
        assert clip.K[k, 0, 0] == pytest.approx(focal_for(fov, w, h)) == pytest.approx(clip.K[k, 1, 1])
        assert clip.K[k, :2, 2].tolist() == pytest.approx([(w - 1) / 2, (h - 1) / 2])
    h = 0
    assert clip.valid[h].all(), "the hand is found on every photo"
    rep = reprojection(clip.joints[h], clip.K, clip.landmarks_px[h], clip.valid[h])
    per_photo = np.nanmedian(rep.dist, axis=1)
    assert (per_photo < 0.1).all(), per_photo  # the keyed hand sits on the detected hand in every photo

    # no EXIF anywhere: every K guessed from each photo's own size; no intrinsics line
    photos[0].write_bytes(cv2.imencode(".jpg", cv2.imread(str(photos[0])))[1].tobytes())
    r = run_cli("capture", tmp_path / "photos", "--out", tmp_path / "d.npz", "--hands", "1", "--no-vae")
    assert r.returncode == 0, r.stderr
    assert "intrinsics:" not in r.stderr
    clip = load_clip(tmp_path / "d.npz")
    assert clip.K_exif is None and clip.K_guessed
    assert [clip.K[k, 0, 0] for k in range(3)] == pytest.approx([focal_for(DEFAULT_FOV_DEG, *s) for s in sizes])


def test_clip_per_frame_sizes_round_trip_and_validation(tmp_path):
    import dataclasses

    from core.errors import CaptureError
    from core.io.clip import save_clip
    from tests.test_hostile import _tiny_clip

    old = _tiny_clip(np.random.default_rng(0), t=3)  # a clip without the optional keys loads as before
    got = load_clip(save_clip(old, tmp_path / "old.npz"))
    assert got.image_sizes is None and got.K_exif is None and not got.mixed_sizes
    assert got.frame_sizes().tolist() == [[64, 48]] * 3
    new = dataclasses.replace(old, image_sizes=np.array([[64, 48], [48, 64], [40, 30]]),
                              K_exif=np.array([True, False, False]))
    got = load_clip(save_clip(new, tmp_path / "new.npz"))
    assert got.mixed_sizes and got.image_sizes.tolist() == [[64, 48], [48, 64], [40, 30]]
    assert got.K_exif.tolist() == [True, False, False]
    with np.load(tmp_path / "new.npz") as z:
        arrays = {k: z[k] for k in z.files}
    for key, bad, words in (("image_sizes", np.zeros((2, 2), np.int64), "image_sizes has shape (2, 2), expected (3, 2)"),
                            ("image_sizes", np.array([[64, 48], [0, 64], [40, 30]]), "image_sizes holds sizes"),
                            ("image_sizes", np.ones((3, 2), np.float32), "image_sizes has dtype float32"),
                            ("K_exif", np.ones(4, bool), "K_exif has shape (4,), expected (3,)")):
        p = tmp_path / "bad.npz"
        np.savez(p, **{**arrays, key: bad})
        with pytest.raises(CaptureError, match=re.escape(words)):
            load_clip(p)
