"""Make every file in sample_images/ from six public-domain / CC0 originals.

    .venv/bin/python sample_images/make_samples.py [--originals DIR]

The originals are kept byte-identical under their sample names (checked by
sha256); when one is missing it is copied from DIR (default: the evaluation set
in ../shared/faces/images). Everything else is derived from them here, with
fixed parameters and a fixed noise seed, so running this again rewrites the
same pixels (see README.md for each recipe).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
DEFAULT_ORIGINALS = HERE.parent.parent / "shared" / "faces" / "images"

# sample name -> (file in the evaluation set, its sha256). Rights: see README.md.
ORIGINALS = {
    "accept_portrait.jpg": (
        "d012.jpg",
        "593ae76f7fdafe582535e288751e665f0533d5c9d5dc7264db24d7e6b6ce4730",
    ),
    "accept_astronaut.png": (
        "d008.png",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ),
    "reject_no_face.png": (
        "d015.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    ),
    "reject_multiple_faces.jpg": (
        "d028.jpg",
        "536b29cd513fb618e4d5aa79d51a279948daa804ce359463449cce5f9dc68aa7",
    ),
    "reject_not_frontal.png": (
        "d001.png",
        "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
    ),
    "not_a_photo.png": (
        "d026.png",
        "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
    ),
}

# The portrait's face, measured by eye on the 1200x1200 original: the frame edge of
# reject_cut_off.jpg runs through the nose.
PORTRAIT_NOSE_X = 600
# The detector's face box of the portrait (x 420..878, y 247..771), cut to its width
# and from the hairline to below the chin: reject_tight_crop.jpg.
PORTRAIT_TIGHT_CROP = (420, 64, 878, 850)


# --- Display P3 ICC profile -------------------------------------------------
# ImageCms can create only sRGB, LAB and XYZ profiles, so this writes a small ICC
# v4 matrix/TRC display profile: P3 primaries, D65 white, the sRGB tone curve
# (which is what Apple's "Display P3" is), colorants Bradford-adapted to the D50
# profile connection space as ICC.1:2022 section 6.3 requires.

_D50 = np.array([0.9642, 1.0, 0.8249])
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
D65_WHITE = (0.3127, 0.3290)
# sRGB curve as ICC parametric function type 3: g, a, b, c, d.
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)


def _xyz(xy: tuple[float, float]) -> np.ndarray:
    x, y = xy
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]):
    """Linear RGB -> XYZ (white Y = 1) for these chromaticities."""
    columns = np.stack([_xyz(p) for p in primaries], axis=1)
    return columns * np.linalg.solve(columns, _xyz(white))


def _s15f16(values) -> bytes:
    return b"".join(struct.pack(">i", round(float(v) * 65536)) for v in values)


def _mluc(text: str) -> bytes:
    encoded = text.encode("utf-16-be")
    return (
        b"mluc"
        + bytes(4)
        + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(encoded), 28)
        + encoded
    )


def display_p3_profile() -> bytes:
    """ICC v4 Display P3 profile bytes (matrix/TRC), deterministic."""
    white = _xyz(D65_WHITE)
    to_cone = _BRADFORD
    adapt = np.linalg.inv(to_cone) @ np.diag((to_cone @ _D50) / (to_cone @ white)) @ to_cone
    colorants = adapt @ rgb_to_xyz_matrix(P3_PRIMARIES, D65_WHITE)
    curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + _s15f16(SRGB_CURVE)
    tags = [
        (b"desc", _mluc("Display P3 (avatar-prep sample)")),
        (b"cprt", _mluc("No copyright, CC0")),
        (b"wtpt", b"XYZ " + bytes(4) + _s15f16(_D50)),
        (b"chad", b"sf32" + bytes(4) + _s15f16(adapt.flatten())),
        (b"rXYZ", b"XYZ " + bytes(4) + _s15f16(colorants[:, 0])),
        (b"gXYZ", b"XYZ " + bytes(4) + _s15f16(colorants[:, 1])),
        (b"bXYZ", b"XYZ " + bytes(4) + _s15f16(colorants[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data + bytes(-len(data) % 4)  # tag data starts on 4-byte boundaries
    size = offset + len(body)
    header = (
        struct.pack(">I4sI4s4s4s", size, b"", 0x04300000, b"mntr", b"RGB ", b"XYZ ")
        + struct.pack(">6H", 2025, 1, 1, 0, 0, 0)
        + b"acsp"
        + bytes(4 + 4 + 4 + 4 + 8)  # platform, flags, manufacturer, model, attributes
        + struct.pack(">I", 0)  # rendering intent: perceptual
        + _s15f16(_D50)
        + bytes(4 + 16 + 28)  # creator, profile ID (optional), reserved
    )
    return header + struct.pack(">I", len(tags)) + table + body


# --- recipes ----------------------------------------------------------------


def _save(im: Image.Image, fmt: str, **options) -> bytes:
    """The encoded file; JPEGs at quality 90 unless told, like a phone's."""
    if fmt == "JPEG":
        options.setdefault("quality", 90)
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def ycck_jpeg(im: Image.Image) -> bytes:
    """An Adobe YCCK JPEG, the way Photoshop saves CMYK: no encoder here writes one, so
    this writes the YCCK numbers through Pillow's CMYK encoder and flips the Adobe
    marker's transform flag from 0 (CMYK) to 2 (YCCK).

    A YCCK decoder turns Y/Cb/Cr into R/G/B by JFIF, stores 255 - R/G/B as the (Adobe,
    inverted) C/M/Y and passes K through; Pillow inverts those again. So the JFIF
    colour that encodes the ink amounts c, m, y is (R, G, B) = (c, m, y); K is stored
    inverted. Pillow inverts what it writes, hence the 255 - x below."""
    ink = np.asarray(im.convert("CMYK")).astype(float)
    r, g, b, k = ink[..., 0], ink[..., 1], ink[..., 2], ink[..., 3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    planes = np.stack([255 - y, 255 - cb, 255 - cr, k], axis=-1)
    data = bytearray(
        _save(Image.fromarray(np.clip(planes.round(), 0, 255).astype(np.uint8), "CMYK"), "JPEG")
    )
    marker = data.index(b"Adobe")
    assert data[marker + 11] == 0, "expected Pillow's Adobe marker with transform 0"
    data[marker + 11] = 2  # Adobe APP14: "Adobe", version, flags0, flags1, transform
    return bytes(data)


def _ellipse_mask(size: tuple[int, int], inset: float, feather: float) -> Image.Image:
    """An L mask: 255 inside an ellipse `inset` (share of each side) from the edges,
    blurred by `feather` px so the edge is soft; the corners stay exactly 0."""
    w, h = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).ellipse((w * inset, h * inset, w * (1 - inset), h * (1 - inset)), 255)
    return mask.filter(ImageFilter.GaussianBlur(feather)) if feather else mask


def make_all(portrait: Image.Image, astronaut: Image.Image) -> dict[str, bytes]:
    """Every derived sample, name -> file bytes. `portrait` is the 1200x1200 official
    portrait, `astronaut` the 512x512 NASA photo, both RGB."""
    out: dict[str, bytes] = {}
    rng = np.random.default_rng(20250101)

    # --- face verdicts -----------------------------------------------------
    # Full-body scale: the portrait at 240 px on a 1500x2000 backdrop, face ~5% of height.
    canvas = Image.linear_gradient("L").resize((1500, 2000)).point(lambda v: 90 + v // 3)
    canvas = Image.merge("RGB", (canvas, canvas, canvas.point(lambda v: v + 20)))
    canvas.paste(portrait.resize((240, 240), Image.Resampling.LANCZOS), (630, 1760))
    out["reject_face_too_small.jpg"] = _save(canvas, "JPEG")
    out["reject_face_too_small_thumbnail.jpg"] = _save(
        portrait.resize((112, 112), Image.Resampling.LANCZOS), "JPEG"
    )
    # A team photo from far away: six copies of the portrait at 110 px (faces about
    # 3% of the height) in two rows on a 2400x1500 backdrop, too small for the
    # first, whole-image look; the tiled second look counts them.
    team = Image.linear_gradient("L").resize((2400, 1500)).point(lambda v: 120 + v // 4)
    team = Image.merge("RGB", (team.point(lambda v: v - 20), team, team))
    small = portrait.resize((110, 110), Image.Resampling.LANCZOS)
    for row, top in enumerate((520, 760)):
        for col in range(3):
            team.paste(small, (700 + 380 * col + 190 * row, top))
    out["reject_small_group.jpg"] = _save(team, "JPEG")
    out["reject_cut_off.jpg"] = _save(portrait.crop((PORTRAIT_NOSE_X, 0, 1200, 1200)), "JPEG")
    out["reject_tight_crop.jpg"] = _save(portrait.crop(PORTRAIT_TIGHT_CROP), "JPEG")
    out["reject_too_blurry.jpg"] = _save(portrait.filter(ImageFilter.GaussianBlur(12)), "JPEG")
    out["reject_too_dark.jpg"] = _save(portrait.point(lambda v: round(v * 0.12)), "JPEG")

    # --- EXIF orientation --------------------------------------------------
    # Orientation 6: stored turned 90 degrees counter-clockwise; shown turned back.
    # It also carries a made-up GPS position, for the test that outputs drop EXIF.
    upright = portrait.crop((150, 0, 1050, 1200))  # 900x1200, so width and height swap
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (51.0, 28.0, 40.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "W"
    gps[ExifTags.GPS.GPSLongitude] = (0.0, 0.0, 5.0)
    out["exif_rotated_6.jpg"] = _save(
        upright.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif
    )
    # Orientation 8 in a PNG eXIf chunk: stored turned 90 degrees clockwise.
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    small = astronaut.crop((64, 0, 448, 512))  # 384x512
    out["exif_rotated_8.png"] = _save(small.transpose(Image.Transpose.ROTATE_270), "PNG", exif=exif)

    # --- JPEG variants -----------------------------------------------------
    out["cmyk.jpg"] = _save(portrait.convert("CMYK"), "JPEG")  # Pillow writes Adobe (inverted) CMYK
    out["ycck.jpg"] = ycck_jpeg(portrait)
    out["gray.jpg"] = _save(portrait.convert("L"), "JPEG")
    out["progressive.jpg"] = _save(portrait, "JPEG", progressive=True, optimize=True)
    p3 = display_p3_profile()
    to_p3 = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"),
        ImageCms.ImageCmsProfile(io.BytesIO(p3)),
        "RGB",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )
    out["display_p3.jpg"] = _save(to_p3.apply(portrait), "JPEG", icc_profile=p3)
    # 12 MP like a phone's: 4:3 crop, Lanczos upscale, sensor-like noise (seeded).
    large = np.asarray(
        portrait.crop((0, 0, 1200, 900)).resize((4000, 3000), Image.Resampling.LANCZOS)
    )
    noisy = np.clip(large + rng.normal(0, 5.0, large.shape), 0, 255).astype(np.uint8)
    out["large_12mp.jpg"] = _save(Image.fromarray(noisy), "JPEG", quality=92)

    # --- PNG variants ------------------------------------------------------
    rgba = astronaut.convert("RGBA")
    mask = _ellipse_mask(astronaut.size, inset=0.04, feather=12)
    rgba.putalpha(mask)
    pixels = np.asarray(rgba).copy()
    pixels[pixels[..., 3] == 0, :3] = 0  # transparent corners hold black, as many tools write
    out["alpha.png"] = _save(Image.fromarray(pixels, "RGBA"), "PNG")
    # 255 colours plus index 255 fully transparent (tRNS) outside an ellipse.
    paletted = portrait.resize((600, 600), Image.Resampling.LANCZOS).quantize(
        255, dither=Image.Dither.NONE
    )
    indices = np.asarray(paletted).copy()
    indices[np.asarray(_ellipse_mask((600, 600), inset=0.02, feather=0)) == 0] = 255
    palette_im = Image.fromarray(indices, "P")
    palette_im.putpalette([*(paletted.getpalette() or [])[: 255 * 3], 0, 0, 0])
    out["palette.png"] = _save(palette_im, "PNG", transparency=255)
    # 16 bit: value * 257 maps 8-bit v exactly onto 16 bits, so a right decode returns v.
    small_portrait = np.asarray(portrait.resize((400, 400), Image.Resampling.LANCZOS))
    wide = small_portrait.astype(np.uint16) * 257
    out["16bit.png"] = cv2.imencode(".png", wide[..., ::-1])[1].tobytes()  # cv2 writes BGR
    gray16 = np.asarray(portrait.convert("L").resize((400, 400), Image.Resampling.LANCZOS))
    out["16bit_gray.png"] = _save(Image.fromarray(gray16.astype(np.uint16) * 257), "PNG")

    # --- other containers --------------------------------------------------
    out["webp.webp"] = _save(portrait, "WEBP", quality=85, method=4)
    out["avif.avif"] = _save(portrait, "AVIF", quality=70, max_threads=1)
    heif = io.BytesIO()
    pillow_heif.from_pillow(portrait).save(heif, quality=80)
    out["heic.heic"] = heif.getvalue()
    # Two frames; decoders must return the first (the astronaut, not the mirror).
    frames = [astronaut.quantize(256, dither=Image.Dither.NONE)]
    frames.append(frames[0].transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    out["gif.gif"] = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=500)
    out["bmp.bmp"] = _save(astronaut, "BMP")
    out["tiff.tiff"] = _save(
        portrait.resize((600, 600), Image.Resampling.LANCZOS), "TIFF", compression="tiff_lzw"
    )
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_originals(originals: Path) -> None:
    for name, (source, digest) in ORIGINALS.items():
        target = HERE / name
        if not target.exists():
            shutil.copyfile(originals / source, target)
        if _sha256(target) != digest:
            raise SystemExit(f"{target} is not byte-identical to {source} (sha256 differs)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=Path, default=DEFAULT_ORIGINALS)
    args = parser.parse_args(argv)
    ensure_originals(args.originals)
    with Image.open(HERE / "accept_portrait.jpg") as im:
        portrait = im.convert("RGB")
    with Image.open(HERE / "accept_astronaut.png") as im:
        astronaut = im.convert("RGB")
    made = make_all(portrait, astronaut)
    for name, data in sorted(made.items()):
        (HERE / name).write_bytes(data)
        print(f"{name:40s} {len(data):>10,d} bytes  {hashlib.sha256(data).hexdigest()[:12]}")
    total = sum(p.stat().st_size for p in HERE.iterdir() if p.is_file())
    print(f"sample_images/ holds {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
