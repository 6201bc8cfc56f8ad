"""OWNER: align helper. Draws face box, landmarks, crop outlines and the verdict."""
