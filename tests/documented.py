"""What docs/api.md documents of every prepared avatar, written once for the many
tests that check it: the size of each aspect ratio's rendition, and the names of
the face's five landmarks."""

# Aspect ratio -> (width, height) of its rendition.
RENDITION_SIZES = {"1:1": (512, 512), "4:3": (640, 480), "3:4": (480, 640)}

LANDMARK_NAMES = {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
