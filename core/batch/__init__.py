"""Batch capture (``python -m core batch MANIFEST --out DIR``): many clips, resumable and idempotent.

`manifest` reads the list of clips and their options; `job.run_clip` is the one per-clip function, the same
wherever it runs (this process, a Ray task, a render-farm task); `run` drives a batch with an engine ("local":
one clip after another in this process; "ray": `ray_engine`, one Ray task per clip, Ray imported there only),
shows a progress bar and appends each finished clip to ``OUT/summary.jsonl``.
"""
