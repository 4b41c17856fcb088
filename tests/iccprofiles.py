"""Small ICC v2 profiles written from their published definitions, for tests (no profile files are
shipped: Pillow builds only sRGB, LAB and XYZ, and the licences of vendors' files vary).

- Display P3: the DCI-P3 primaries with the D65 white and the sRGB tone curve (Apple's definition).
- Adobe RGB (1998): primaries and gamma 563/256 from Adobe's specification.
- Grey: a gamma-1.8 grey (the curve of the classic "Gray Gamma 1.8"; 2.2 is nearly sRGB).
- CMYK: a simple printer profile: C, M, Y absorb sRGB's R, G, B with a dot gain (exponent 1.6), K
  darkens all three (A2B0); B2A0 is the plain complement with K = 0 (never used by Backdrop). Not a press profile, but a real LUT-based CMYK profile
  that LittleCMS converts through, so a CMYK original with a profile exercises the same path.

The layout follows ICC.1:2001-04 (version 2.1): a 128-byte header, a tag table, 4-byte aligned tags.
"""

from __future__ import annotations

import struct

import numpy as np

D50 = (0.9642, 1.0, 0.8249)
D65_XY = (0.3127, 0.3290)
_BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: tuple[float, float, float] | np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(float(v)) for v in xyz)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def _text(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _gamma(g: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(g * 256))


def _srgb_curve() -> bytes:
    # parametricCurveType function 3: Y = (aX + b)^g for X >= d, cX below
    params = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(p) for p in params)


def _profile(device_class: bytes, space: bytes, pcs: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    entries, data = [], b""
    for sig, body in tags:
        while (offset + len(data)) % 4:
            data += b"\0"
        entries.append(struct.pack(">4sII", sig, offset + len(data), len(body)))
        data += body
    while len(data) % 4:
        data += b"\0"
    size = 128 + table_size + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, device_class, space, pcs)
    header += struct.pack(">6H", 2026, 12, 8, 0, 0, 0) + b"acsp" + b"APPL" + b"\0" * 4
    header += b"\0" * 8 + b"\0" * 8 + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50) + b"\0" * 4
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + b"".join(entries) + data


def _to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_d50(primaries: tuple[tuple[float, float], ...], white: tuple[float, float] = D65_XY) -> np.ndarray:
    """The RGB → XYZ (D50, Bradford-adapted) matrix of a colour space: columns are the colorants."""
    cols = np.stack([_to_xyz(*p) for p in primaries], axis=1)
    w = _to_xyz(*white)
    m = cols * np.linalg.solve(cols, w)
    cone_src, cone_dst = _BRADFORD @ w, _BRADFORD @ np.array(D50)
    adapt = np.linalg.inv(_BRADFORD) @ np.diag(cone_dst / cone_src) @ _BRADFORD
    return adapt @ m


def rgb_profile(name: str, primaries: tuple[tuple[float, float], ...], curve: bytes) -> bytes:
    m = rgb_to_xyz_d50(primaries)
    return _profile(
        b"mntr",
        b"RGB ",
        b"XYZ ",
        [
            (b"desc", _desc(name)),
            (b"cprt", _text("No copyright, use freely")),
            (b"wtpt", _xyz_tag(D50)),
            (b"rXYZ", _xyz_tag(m[:, 0])),
            (b"gXYZ", _xyz_tag(m[:, 1])),
            (b"bXYZ", _xyz_tag(m[:, 2])),
            (b"rTRC", curve),
            (b"gTRC", curve),
            (b"bTRC", curve),
        ],
    )


SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))


def display_p3() -> bytes:
    return rgb_profile("Display P3 (test)", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), _srgb_curve())


def adobe_rgb() -> bytes:
    return rgb_profile(
        "Adobe RGB 1998 compatible (test)", ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06)), _gamma(563 / 256)
    )


def grey() -> bytes:
    return _profile(
        b"mntr",
        b"GRAY",
        b"XYZ ",
        [
            (b"desc", _desc("Grey gamma 1.8 (test)")),
            (b"cprt", _text("No copyright, use freely")),
            (b"wtpt", _xyz_tag(D50)),
            (b"kTRC", _gamma(1.8)),
        ],
    )


def _lut16(inputs: int, outputs: int, grid: int, clut: np.ndarray, matrix: np.ndarray | None = None) -> bytes:
    e = np.eye(3) if matrix is None else matrix
    body = b"mft2\0\0\0\0" + struct.pack(">BBBB", inputs, outputs, grid, 0)
    body += b"".join(_s15(float(v)) for v in e.reshape(-1))
    body += struct.pack(">HH", 2, 2)
    body += struct.pack(">HH", 0, 65535) * inputs  # identity input curves
    body += np.clip(np.round(clut), 0, 65535).astype(">u2").tobytes()
    body += struct.pack(">HH", 0, 65535) * outputs
    return body


def _srgb_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _srgb_gamma(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def cmyk() -> bytes:
    m = rgb_to_xyz_d50(SRGB_PRIMARIES)
    # A2B0: CMYK grid → PCS XYZ (lut16 XYZ encoding: 1.0 = 32768)
    g = 9
    axis = np.linspace(0, 1, g)
    c, mm, y, k = np.meshgrid(axis, axis, axis, axis, indexing="ij")  # C varies slowest, as the CLUT wants
    # ink spreads on paper (dot gain): a 50 % tint prints darker than half, as on a press
    gain = 1.6
    rgb = np.stack([(1 - c) ** gain, (1 - mm) ** gain, (1 - y) ** gain], axis=-1) * (1 - k[..., None]) ** gain
    xyz = _srgb_linear(rgb) @ m.T
    a2b = _lut16(4, 3, g, xyz.reshape(-1, 3) * 32768)
    # B2A0: PCS XYZ grid → CMYK with K = 0
    g3 = 17
    axis3 = np.linspace(0, 65535 / 32768, g3)
    xx, yy, zz = np.meshgrid(axis3, axis3, axis3, indexing="ij")
    lin = np.stack([xx, yy, zz], axis=-1) @ np.linalg.inv(m).T
    back = 1 - _srgb_gamma(lin)
    cmyk_ = np.concatenate([back, np.zeros(back.shape[:-1] + (1,))], axis=-1)
    b2a = _lut16(3, 4, g3, cmyk_.reshape(-1, 4) * 65535)
    return _profile(
        b"prtr",
        b"CMYK",
        b"XYZ ",
        [
            (b"desc", _desc("Simple CMYK (test)")),
            (b"cprt", _text("No copyright, use freely")),
            (b"wtpt", _xyz_tag(D50)),
            (b"A2B0", a2b),
            (b"B2A0", b2a),
        ],
    )
