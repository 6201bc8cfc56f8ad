"""OWNER: align helper. encode_jpeg(rgb, quality) -> bytes (no metadata, deterministic)."""
