"""Contact sheets: every rendition of a labelled set on one PNG, for people to
look at (`avatar-prep eval ... --sheet FILE.png`).

One cell per photo, in the labels' order, several cells a line: the file
name, its label and verdict (with the code of a rejection), then its 1:1, 4:3
and 3:4 side by side at one height, each captioned with its fill (the share
invented outside the photo). A rejected photo shows the photo itself instead,
with the fills its checks measured.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from pipeline.aspect import AspectRatio

THUMB_HEIGHT = 150  # px of every picture on the sheet
CELLS_PER_LINE = 3
GAP = 8
TEXT_LINE = 14  # px per line of Pillow's default bitmap font
BACKGROUND = (255, 255, 255)
REJECT_COLOUR = (190, 30, 30)
ACCEPT_COLOUR = (20, 110, 40)


@dataclass(frozen=True)
class SheetPhoto:
    """One photo of the sheet: `renditions` maps an aspect ratio to its JPEG
    bytes (empty when rejected), `fills` to its fill share (from the record or
    the checks), `source` is the photo file's bytes (shown when rejected)."""

    file: str
    expected: str
    code: str
    renditions: dict[str, bytes]
    fills: dict[str, float]
    source: bytes


def draw_sheet(photos: list[SheetPhoto], path: Path) -> None:
    """Write the contact sheet of `photos` to `path` (PNG)."""
    cells = [_cell(p) for p in photos]
    width = max((c.width for c in cells), default=1)
    height = max((c.height for c in cells), default=1)
    lines = -(-len(cells) // CELLS_PER_LINE)
    sheet = Image.new(
        "RGB",
        (CELLS_PER_LINE * (width + GAP) + GAP, max(lines, 1) * (height + GAP) + GAP),
        BACKGROUND,
    )
    for i, cell in enumerate(cells):
        line, column = divmod(i, CELLS_PER_LINE)
        sheet.paste(cell, (GAP + column * (width + GAP), GAP + line * (height + GAP)))
    sheet.save(path, format="PNG")


def _cell(photo: SheetPhoto) -> Image.Image:
    """One photo's cell: two lines of text over its pictures."""
    pictures: list[tuple[str, Image.Image]]
    if photo.renditions:
        pictures = [(ar.value, _thumb(photo.renditions[ar])) for ar in AspectRatio]
    else:
        pictures = [("photo", _thumb(photo.source))]
    width = sum(p.width for _, p in pictures) + GAP * (len(pictures) - 1)
    top = 2 * TEXT_LINE + 2
    cell = Image.new("RGB", (max(width, 300), top + THUMB_HEIGHT + TEXT_LINE + 2), BACKGROUND)
    draw = ImageDraw.Draw(cell)
    verdict = f"reject {photo.code}" if photo.code else "accept"
    draw.text((0, 0), f"{photo.file}  (label {photo.expected})", fill=(0, 0, 0))
    colour = REJECT_COLOUR if photo.code else ACCEPT_COLOUR
    fills = "  ".join(f"{ar} {photo.fills[ar]:.0%}" for ar in AspectRatio if ar in photo.fills)
    if not photo.renditions and fills:
        verdict += f"   fill {fills}"
    draw.text((0, TEXT_LINE), verdict, fill=colour)
    x = 0
    for name, picture in pictures:
        cell.paste(picture, (x, top))
        caption = f"{name} fill {photo.fills[name]:.0%}" if name in photo.fills else name
        draw.text((x, top + THUMB_HEIGHT + 1), caption, fill=(0, 0, 0))
        x += picture.width + GAP
    return cell


def _thumb(data: bytes) -> Image.Image:
    """The image in `data` (EXIF orientation applied) at THUMB_HEIGHT px high."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    width = max(round(image.width * THUMB_HEIGHT / image.height), 1)
    return image.resize((width, THUMB_HEIGHT), Image.Resampling.LANCZOS)
