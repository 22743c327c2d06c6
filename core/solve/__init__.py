"""Landmarks to plausible MANO over a clip: IK, fit, shape, camera, limits, collisions, smoothing, tracking."""
