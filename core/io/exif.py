"""A small EXIF reader for JPEG photos: the few tags that give a camera's focal length (no dependencies).

`read_exif(path_or_bytes)` walks the JPEG markers to the APP1 "Exif" segment, reads its TIFF header
(either byte order: "II" little-endian or "MM" big-endian), IFD0 (Orientation 0x0112, the ExifIFD pointer
0x8769) and the Exif IFD (FocalLength 0x920A, FocalLengthIn35mmFilm 0xA405, FocalPlaneXResolution 0xA20E,
FocalPlaneResolutionUnit 0xA210, PixelXDimension 0xA002). It never raises for what a file holds:
anything unreadable (not a JPEG, no Exif, truncated or garbage segment, offsets out of range) gives None,
or leaves that tag out.

`fov_from_exif(info, width, height)` turns the tags into a field of view across the image's longer side.
"""
from __future__ import annotations

import math
import os
import struct

# The most of a file that is read: the APP1 segment sits before the image data, within its first 64 KiB
# plus the markers before it.
_HEAD_BYTES = 256 * 1024

TAG_ORIENTATION = 0x0112
TAG_EXIF_IFD = 0x8769
TAG_FOCAL_LENGTH = 0x920A
TAG_FOCAL_35MM = 0xA405
TAG_FOCAL_PLANE_X_RES = 0xA20E
TAG_FOCAL_PLANE_UNIT = 0xA210
TAG_PIXEL_X_DIMENSION = 0xA002

# FocalPlaneResolutionUnit -> millimetres per unit (2 inch, 3 cm; 4 mm and 5 um are used by some makers).
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
# TIFF field types -> byte size of one value.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 9: 4, 10: 8}


def _exif_segment(data: bytes) -> bytes | None:
    """The TIFF bytes of the first APP1 Exif segment of a JPEG, or None."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no Exif before the image data
            return None
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if length < 2 or i + 2 + length > len(data):
            return None
        body = data[i + 4:i + 2 + length]
        if marker == 0xE1 and body[:6] == b"Exif\x00\x00":
            return body[6:]
        i += 2 + length
    return None


def _read_ifd(tiff: bytes, offset: int, endian: str) -> dict[int, object]:
    """Tags of the IFD at ``offset``: int for SHORT/LONG, float for (S)RATIONAL, first value only."""
    out: dict[int, object] = {}
    if offset < 8 or offset + 2 > len(tiff):
        return out
    (count,) = struct.unpack(endian + "H", tiff[offset:offset + 2])
    for k in range(min(count, 512)):
        e = offset + 2 + 12 * k
        if e + 12 > len(tiff):
            break
        tag, typ, n = struct.unpack(endian + "HHI", tiff[e:e + 8])
        size = _TYPE_SIZE.get(typ)
        if size is None or n < 1:
            continue
        if size * n <= 4:
            pos = e + 8
        else:
            (pos,) = struct.unpack(endian + "I", tiff[e + 8:e + 12])
        if pos + size > len(tiff):
            continue
        raw = tiff[pos:pos + size]
        if typ == 3:
            value: object = struct.unpack(endian + "H", raw)[0]
        elif typ in (4, 9):
            value = struct.unpack(endian + ("I" if typ == 4 else "i"), raw)[0]
        elif typ in (5, 10):
            num, den = struct.unpack(endian + ("II" if typ == 5 else "ii"), raw)
            if den == 0:
                continue
            value = num / den
        elif typ in (1, 7):
            value = raw[0]
        else:
            continue
        out[tag] = value
    return out


def _parse(tiff: bytes) -> dict | None:
    if len(tiff) < 8:
        return None
    endian = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if endian is None or struct.unpack(endian + "H", tiff[2:4])[0] != 42:
        return None
    (ifd0_at,) = struct.unpack(endian + "I", tiff[4:8])
    ifd0 = _read_ifd(tiff, ifd0_at, endian)
    exif_at = ifd0.get(TAG_EXIF_IFD)
    exif = _read_ifd(tiff, int(exif_at), endian) if isinstance(exif_at, int) else {}
    info: dict = {}
    orientation = ifd0.get(TAG_ORIENTATION)
    if isinstance(orientation, int) and 1 <= orientation <= 8:
        info["orientation"] = orientation
    for key, tag in (("focal_35mm", TAG_FOCAL_35MM), ("focal_mm", TAG_FOCAL_LENGTH),
                     ("focal_plane_x_res", TAG_FOCAL_PLANE_X_RES), ("pixel_x_dimension", TAG_PIXEL_X_DIMENSION)):
        v = exif.get(tag)
        if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:
            info[key] = float(v)
    unit = exif.get(TAG_FOCAL_PLANE_UNIT)
    if isinstance(unit, int) and unit in _UNIT_MM:
        info["focal_plane_unit_mm"] = _UNIT_MM[unit]
    return info


def read_exif(source: str | os.PathLike | bytes) -> dict | None:
    """The focal-length tags of a JPEG (a path or its bytes) as a dict, or None when it has no readable Exif.

    Keys, each present only where the file has a usable value: ``orientation`` (1..8), ``focal_35mm``
    (FocalLengthIn35mmFilm, mm), ``focal_mm`` (FocalLength, mm), ``focal_plane_x_res`` (pixels per unit),
    ``focal_plane_unit_mm`` (mm per that unit), ``pixel_x_dimension`` (image width the camera wrote).
    Never raises: an unreadable file, a missing or damaged segment, a segment without any of these tags all
    give None.
    """
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source[:_HEAD_BYTES])
        else:
            with open(source, "rb") as f:
                data = f.read(_HEAD_BYTES)
        tiff = _exif_segment(data)
        return (_parse(tiff) or None) if tiff is not None else None  # no usable tag: None
    except Exception:  # noqa: BLE001 - garbage in a file is never an error here: no EXIF
        return None


def fov_from_exif(info: dict | None, width: int, height: int) -> float | None:
    """Field of view in degrees across the image's longer side from EXIF tags, or None.

    FocalLengthIn35mmFilm first: the usual convention takes the 35 mm frame's long side, 36 mm, across the
    image's longer side (some makers define the equivalence on the diagonal, 43.3 mm; the long-side
    convention is the common one and what we use), so fov = 2 * atan(18 / f35). Else FocalLength with
    FocalPlaneXResolution/Unit: the focal length in sensor pixels, scaled to this image's width where the
    camera wrote its own width (PixelXDimension; photos resized since keep their tags).
    """
    if not info:
        return None
    f35 = info.get("focal_35mm")
    if f35:
        return math.degrees(2.0 * math.atan(18.0 / f35))
    fmm, res, unit = info.get("focal_mm"), info.get("focal_plane_x_res"), info.get("focal_plane_unit_mm")
    if fmm and res and unit:
        f_px = fmm * res / unit  # in the camera's own pixels across its sensor's x
        cam_w = info.get("pixel_x_dimension")
        # The tags describe the sensor's x; an upright-turned portrait photo has its x along the height.
        f_px *= (max(width, height) / cam_w) if cam_w else 1.0
        if f_px > 0 and math.isfinite(f_px):
            return math.degrees(2.0 * math.atan(0.5 * max(width, height) / f_px))
    return None
