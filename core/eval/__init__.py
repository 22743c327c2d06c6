"""Evaluation: metrics, scoring a clip against ground truth, plausibility of a clip."""
