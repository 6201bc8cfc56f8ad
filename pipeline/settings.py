"""Every limit the pipeline applies, each with the reason it exists.

`PipelineSettings` is plain data: the service's one settings object embeds it
(env prefix `AVATAR_PREP_PIPELINE__`), the command line builds it from flags.
Nothing here reads the environment by itself.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PipelineSettings(BaseModel):
    """Limits and sizes of one pipeline run. Frozen: pass it, never patch it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- image limits, checked from the header before any pixel is decoded ---
    max_bytes: int = Field(
        20_000_000, description="Largest accepted file; a 12 MP phone JPEG is 3-6 MB."
    )
    max_pixels: int = Field(
        50_000_000, description="Largest width*height; bounds decode memory (decompression bombs)."
    )
    max_decoder_bytes: int = Field(
        135_000_000,
        ge=1_000_000,
        description="Most memory a decoder may hold whatever the output scale (the "
        "coefficients of a progressive JPEG, a WebP, HEIC or AVIF frame decoded whole, an "
        "interlaced PNG, a TIFF strip): an image needing more is too_many_pixels. With "
        "the process's own 160-185 MB (imports, models) and the pipeline's arrays, a file "
        "within the limits is prepared in under 350 MB. It lets a 24 MP iPhone HEIC "
        "through (122 MB), not a 48 MP one.",
    )
    min_side: int = Field(
        64, description="Smallest accepted short side in pixels; below it no face is usable."
    )

    # --- output ---
    output_size: int = Field(
        512, ge=256, le=1024, description="Side of the 1:1 crop; 4:3 and 3:4 scale from it."
    )
    jpeg_quality: int = Field(
        92, ge=50, le=100, description="Quality of stored renditions; 92 keeps skin texture."
    )

    # --- framing of the 4:3 and 3:4 (see pipeline/framing.py) ---
    max_framing_zoom: float = Field(
        2.4,
        ge=1.0,
        le=2.4,
        description="Most the head-and-shoulders framings may enlarge the face over their "
        "default size (0.625 of the 1:1's) to avoid fill. Only a photo cropped tighter than "
        "the frame takes more than 1x, and the eye line's range and the chin's room "
        "(min_chin_room) stop it first: about 2.1-2.2x on a typical face, a close-up from "
        "the hairline to below the chin, which reads as a photo where a quarter of "
        "invented blur does not.",
    )
    min_chin_room: float = Field(
        0.06,
        ge=0.0,
        le=0.3,
        description="Room the head-and-shoulders framings keep below the chin (landmark "
        "152), as a share of the frame height, when they zoom: a talking jaw drops by "
        "about a tenth of the face's length, 5-6% of the frame at the closest framing.",
    )
    max_face_offcentre: float = Field(
        0.1,
        ge=0.0,
        le=0.25,
        description="How far (share of the frame width) the face's centre may move off the "
        "middle when the window slides to stay inside the photo: a talking head addresses "
        "the camera, and a tenth of the width off still reads as centred.",
    )
    min_eye_line: float = Field(
        0.3,
        description="Highest the eyes may sit (share of the frame height from the top) "
        "when the window slides: above a third the head crowds the top edge.",
    )
    max_eye_line: float = Field(
        0.5,
        description="Lowest the eyes may sit (share of the frame height from the top): "
        "below the middle a head-and-shoulders frame looks like it is sinking. The default "
        "framings put them at about 0.42 (4:3) and 0.36 (3:4).",
    )
    min_headroom: float = Field(
        0.03,
        description="Room the framing keeps between the top of the head (see "
        "head_allowance) and the frame's top edge, as a share of the frame height, when it "
        "zooms or slides: a head touching the edge looks cropped.",
    )
    head_allowance: float = Field(
        0.35,
        description="The top of the head and hair above the mesh's forehead point (landmark "
        "10), in forehead-to-chin lengths: the skull's top is about a quarter of that "
        "length above the forehead point, and hair adds a tenth for short hair (looked at "
        "on the dev sets' sheets; big hair reaches further).",
    )
    warn_fill_ratio: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Share of any rendition filled (outside the photo) above which the "
        "fill is visible enough to say so.",
    )
    max_fill_ratio: float | None = Field(
        0.25,
        ge=0.0,
        le=0.25,
        description="Share of the default 4:3 rendition (the one the renderer animates) "
        "filled above which the photo is rejected (None: only warn). Once the framing may "
        "cut the hair and zoom to a close-up, the dev sets' clear accepts need at most "
        "15% (an extreme close-up whose face fills the width), the next 9%, most none; "
        "what needs more is a face cut by the photo's edge or a crop tighter than the face, "
        "where a quarter of the frame would be a smear next to it.",
    )

    # --- detection ---
    detect_side: int = Field(
        640,
        ge=192,
        description="Long side of the reduced image the detectors see; their input is "
        "128-192 px, so more only costs time.",
    )
    min_detection_score: float = Field(
        0.5,
        ge=0.3,
        le=1.0,
        description="Detector score below which a candidate is not a face (the landmark "
        "model then confirms each one); 0.3 is the graphs' own floor.",
    )
    min_unfitted_score: float = Field(
        0.7,
        ge=0.3,
        le=1.0,
        description="A detection this strong that the landmark model cannot fit (a face "
        "turned away or covered) still counts as a person for face_count; the dev set's "
        "false alarms score 0.6 or less.",
    )
    small_face_side: int = Field(
        1280,
        ge=640,
        description="Long side of the second, tiled look for faces when the first finds "
        "none (see detect_tiled and TILE_SIDE): faces of 30 px and up are found there, "
        "2-3% of the frame height; a 12 MP photo of no one then takes about 240 ms.",
    )
    min_small_face_score: float = Field(
        0.75,
        ge=0.3,
        le=1.0,
        description="Score a face of the tiled look needs to count as a person: the small "
        "faces of a team photo score 0.75-0.96; of the photos without people that reach the "
        "tiled look in either dev set, none gives more than 0.71 (carnival masks). Only the "
        "code is at stake there: a false find makes face.none face.too_small, still a reject.",
    )
    max_faces_checked: int = Field(
        12,
        ge=2,
        description="Most faces confirmed with landmarks, largest first; a crowd needs no "
        "more to be rejected, and each costs ~3 ms.",
    )

    # --- face rules (values measured on the labelled dev set, ../shared/faces) ---
    max_faces_ratio: float = Field(
        0.45,
        description="A second face whose forehead-to-chin length is at least this share of "
        "the main face's is 'comparable': two people, not a bystander (couples and "
        "groups measure 0.48-1.0).",
    )
    min_other_sharpness: float = Field(
        0.1,
        description="A second face less sharp than this share of the main face (compared "
        "at the same scale) is heavily blurred background and does not count, as the "
        "labels have it: second people measure 0.24 or more, a blurred reflection 0.02.",
    )
    max_drawn_share: float = Field(
        0.35,
        description="Most of the inner face that may be flat fill or hard line; above it "
        "the image is a drawing (photos measure up to 0.23, an anime drawing 0.47).",
    )
    min_face_proportions: float = Field(
        -2.0,
        description="Least mean z-score of the face's proportions against real faces' (see "
        "pipeline.proportions). Real faces of both dev sets read -1.4 or more (their own "
        "statistics left out: -1.5), the anime, 3D-character and doll faces -2.4 to -3.0; "
        "-2.0 is past two standard deviations on the average of all four proportions.",
    )
    max_upscale: float = Field(
        3.2,
        description="Most the face may be enlarged to fill the 1:1 output; accepted photos "
        "need up to 3.0x, a 112 px face thumbnail 3.6x and looks soft.",
    )
    min_face_height_ratio: float = Field(
        0.14,
        description="Forehead-to-chin over the frame height (along the face's axis). That "
        "length is about a ninth of a person's height, so a full-body shot, the person "
        "filling 80-100% of the frame, measures 0.11-0.13 (a runway photo 0.13) and a "
        "knee-up shot about 0.15 (the dev sets' loosest accepts 0.154 and up).",
    )
    max_yaw_degrees: float = Field(
        40.0,
        description="A head turned further cannot talk to the camera convincingly. Read as "
        "the larger of the mesh's turn and the detector's nose offset (see Face.pose), which "
        "keeps growing on profiles (near the limit read on the photo and its mirror image, see "
        "pipeline.mirrored): accepted turns judged 30-40 degrees by eye read 30-39, heads "
        "judged 55-65 read 44 and more, full profiles 48 and more.",
    )
    max_pitch_degrees: float = Field(
        40.0, description="Looking far up or down hides the mouth or eyes."
    )
    max_cut_off_ratio: float = Field(
        0.25,
        description="Largest share of the face's landmarks allowed outside the frame; "
        "beyond it the fill would have to invent a quarter of the face.",
    )
    min_human_score: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="The full-range detector, shown the aligned face alone (see "
        "pipeline.likeness), scores the human faces of both dev sets 0.75 or more (hands, "
        "masks and grayscale included) and finds no face at all (0) in the animals the "
        "first pass let through; 0.5 is the detection floor used everywhere else.",
    )
    sure_human_score: float = Field(
        0.75,
        ge=0.0,
        le=1.0,
        description="From this second-look score up the face counts as human on its own; "
        "below it (and from min_human_score) the person detector must find someone in the "
        "photo too (pipeline.people.second_opinion). Over both dev sets with every "
        "`eval --stability` variant and three more tilts, the animals' copies score at most "
        "0.70 (4 of them 0.5 or more, no person found in any), and 4 of 551 copies of "
        "accepted faces score under 0.75, the person detector missing 1 (with grain).",
    )
    min_sharpness: float = Field(
        4.0,
        description="Sharpness (see FaceQuality) below which the face is too blurred to "
        "animate. On the graded set (cli/degrade.py) camera shake of 15% of the face "
        "length reads 2.3-5.0 and a Gaussian blur of 3% under 3; the blurred sample 2; "
        "the softest accepted photo, a soft-focus video frame, 12.",
    )
    min_photo_sharpness: float = Field(
        20.0,
        description="Where no face is found, a whole photo (seen at 256 px on its long side) "
        "less sharp than this is too blurred to find one in, and is told so (face.too_blurry) "
        "instead of face.none: the graded set's strongest Gaussian blur and camera shake read "
        "0.8-4.7 there, the 24 photos of both dev sets in which no face is found (animals, "
        "objects, a landscape, clip-art, people far off) 110 and up.",
    )
    warn_sharpness: float = Field(
        30.0,
        description="Below it the face is soft enough to say so: sharp photos read 100 and "
        "up (median 195), a blur of 1% of the face length 4-17.",
    )
    min_brightness: float = Field(
        45.0,
        description="Brightness of the face's lit parts (98th percentile of its luma, 0-255) "
        "below which it is too dark to show: 5.6 stops under a good exposure reads 17-36, "
        "the dimmest accepted face (low light) 145.",
    )
    warn_brightness: float = Field(
        110.0,
        description="Below it the face is dim enough to say so: about two stops under where "
        "a camera's auto exposure puts a lit face (200-240). One stop under the accepted "
        "photos reads 104-182, 2.7 stops 57-104; very dark skin is read by the whites of "
        "its eyes (faces2 e2064 one stop under: 104 by its skin, 131 by its eyes). A dimmer "
        "face's sharpness is read as if it were lit to this (pipeline.quality.measure), so "
        "poor light is not told as blur.",
    )
    max_blown_share: float = Field(
        0.4,
        ge=0.0,
        le=1.0,
        description="Share of the inner face blown out (two or more colour channels at 250+, "
        "see pipeline.quality) above which the face has no detail left to animate: +1.3 EV "
        "over a good exposure blows out a median 0.35 (at most 0.68), +2.3 EV most of it.",
    )
    warn_blown_share: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Above it glare or flash is visible on the face; the photos both dev sets "
        "accept read 0.04 or less (most 0), +0.4 EV over them up to 0.15.",
    )
    min_jpeg_quality: int = Field(
        8,
        ge=1,
        le=100,
        description="JPEG quality (from the file's own tables) below which the face is "
        "8x8 blocks: quality 3-5 leaves no skin or lips to animate; 10 is blocky but a face.",
    )
    warn_jpeg_quality: int = Field(
        30,
        ge=1,
        le=100,
        description="Below it compression shows as blocks and ringing on the face; phones "
        "save at 85-95, messaging apps at 70-80.",
    )
    min_eye_openness: float = Field(
        0.12,
        description="Lid gap over eye width of the more open eye below which the eyes look "
        "closed or hidden (a warning: open eyes read 0.2-0.5, a downcast look 0.26).",
    )
    min_mouth_detail: float = Field(
        0.25,
        description="Detail around the mouth over detail around the eyes (mean gradient, "
        "pipeline.occlusion) below which the mouth looks covered by a mask or a hand (a "
        "warning: accepted faces read 0.48-1.5 and 0.40 and up degraded, a face mask 0.06-0.15; "
        "the limit sits near their geometric middle, a factor 1.6 from each).",
    )
    min_under_eye_light: float = Field(
        0.5,
        description="Light of the skin under the eyes over the cheeks' (the lighter side, "
        "pipeline.occlusion) below which dark glasses cover the eyes (a warning: every face "
        "of both dev sets reads 0.74 or more, accepted ones degraded 0.72 and up (tinted "
        "aviators four stops under), sunglasses 0.23; dark lenses painted on 43 of the 45 "
        "accepted faces 0.43 and under).",
    )
    max_mouth_openness: float = Field(
        0.35,
        description="Lips' gap over mouth width above which the mouth is wide open "
        "(a warning: accepted smiles and speech read up to 0.26).",
    )
