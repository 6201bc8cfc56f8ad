"""Similarity alignment of a face to FFHQ-style framings.

OWNER: align helper. Contract:

    FRAMINGS / framings(output_size) -> tuple[Framing, ...]   # 1:1, 4:3, 3:4
    face_transform(points, framing) -> np.ndarray (2, 3) float64, upright source -> output
    warp(rgb, matrix, framing) -> (out (h, w, 3) uint8, filled_ratio)
"""
