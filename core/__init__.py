"""Hand Capture core: video -> hand keypoints -> MANO hands. Pure Python + numpy/torch, no bpy."""
