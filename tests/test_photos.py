"""Photos: the EXIF focal-length reader (core/io/exif.py) and its use for a folder's intrinsics."""
from __future__ import annotations

import math
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


@pytest.mark.parametrize("damage", ["truncated", "garbage_tiff", "bad_offset", "no_exif", "not_jpeg", "empty"])
def test_reader_returns_none_on_damaged_files(tmp_path, damage):
    good = exif_app1("<", f35=26)
    if damage == "truncated":  # the segment's length runs past the end of the file
        data = jpeg_bytes()[:2] + good[:30]
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
    info = read_exif(p)
    assert info is None or "focal_35mm" not in info
    assert fov_from_exif(info, 640, 480) is None
    assert read_exif(tmp_path / "missing.jpg") is None
