"""Pixels of any mode and colour space to 8-bit sRGB RGB on an opaque background.

Phones tag photos with Display P3, cameras with Adobe RGB, print workflows
send CMYK: shown untagged those look dull or wrong, and the face models and
the stored avatars assume sRGB. Transparent pixels become mid grey, not the
black their RGB often holds, so no dark halo frames a cut-out portrait.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

BACKGROUND = 128  # neutral mid grey (sRGB), behind transparent pixels

_SIXTEEN_BIT_GRAY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})


def to_rgb(im: Image.Image, icc_profile: bytes | None) -> np.ndarray:
    """A loaded Pillow image -> (H, W, 3) uint8 sRGB RGB, C-contiguous, alpha
    composited on `BACKGROUND`. `icc_profile` is the image's embedded profile."""
    if im.mode in _SIXTEEN_BIT_GRAY:
        return _gray16_to_rgb(im)
    if im.mode == "CMYK":
        transform = _srgb_transform(icc_profile, "CMYK") if icc_profile else None
        rgb_im = ImageCms.applyTransform(im, transform) if transform else im.convert("RGB")
        return np.asarray(rgb_im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = np.asarray(im.convert("RGBA"))
        rgb = to_srgb(np.ascontiguousarray(rgba[..., :3]), icc_profile)
        return composite_on_background(rgb, rgba[..., 3])
    # An RGB image converts to itself: skip that copy of the whole image.
    return to_srgb(np.asarray(im if im.mode == "RGB" else im.convert("RGB")), icc_profile)


def to_srgb(rgb: np.ndarray, icc_profile: bytes | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB in the colour space of `icc_profile` -> the same in sRGB.
    Returned as is when there is no profile, it is sRGB already, or it cannot be used
    (broken, or not an RGB profile): a bad tag must not cost a good photo."""
    transform = _srgb_transform(icc_profile, "RGB") if icc_profile else None
    if transform is None:
        return rgb
    im = Image.fromarray(rgb, "RGB")
    transform.apply_in_place(im)
    return np.asarray(im)


def composite_on_background(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight (not premultiplied) `alpha` (H, W) uint8 over `BACKGROUND` -> (H, W, 3) uint8.
    Exact at the ends: alpha 255 keeps `rgb`, alpha 0 gives `BACKGROUND`."""
    a = alpha[..., None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + BACKGROUND * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _gray16_to_rgb(im: Image.Image) -> np.ndarray:
    """16-bit grey scaled to 8 bit by value * 255 / 65535 (Pillow's own conversion clips
    everything above 255 to white)."""
    values = np.asarray(im).clip(0, 65535).astype(np.uint32)  # mode "I" is signed 32-bit
    gray = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))


@lru_cache(maxsize=32)
def _srgb_transform(icc_profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform from `icc_profile` to sRGB for pixels of `mode` ("RGB" or "CMYK"),
    made once per distinct profile (building one costs far more than applying it);
    None when there is nothing to do or the profile is unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        space = source.profile.xcolor_space.strip()
        description = (source.profile.profile_description or "").lower()
    except (OSError, ValueError, ImageCms.PyCMSError):
        return None  # not a profile, or one with garbled fields
    if space != mode:
        return None  # e.g. a grey profile on a grey JPEG that libjpeg expanded to RGB
    if mode == "RGB" and "srgb" in description:
        return None  # already sRGB: skip a full pass over the pixels
    try:
        # Relative colorimetric: matrix/TRC profiles such as Display P3 define only
        # that intent; out-of-gamut colours clip, as browsers show them.
        return ImageCms.buildTransform(
            source,
            ImageCms.createProfile("sRGB"),
            mode,
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        )
    except ImageCms.PyCMSError:
        return None
