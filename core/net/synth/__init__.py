"""Training images of the open hand model rendered by the project itself (issue 13, item 1).

    python -m core.net.synth --out DIR --chunks 0:4 --per-chunk 64 [--size 224 --samples 8 --seed 0]

`sample` draws what each image shows (no bpy), ``blender_addon/synth_render.py`` renders it with Cycles in a
subprocess, `augment` adds motion blur, noise and JPEG, `labels` holds the projection and the detector's ROI,
`generate` writes resumable chunks. See docs/synth.md.
"""
from .sample import SynthSettings, chunk_seed, sample_chunk  # noqa: F401
