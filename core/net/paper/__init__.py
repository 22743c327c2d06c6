"""The paper's network (Yu et al., CVPR 2023; issue 13): a frozen image trunk (MediaPipe's landmark network,
torch port), a non-parametric mesh decoder (coarse mesh + fixed up-sampling matrix) to the open hand model's
vertices, its J-regressor -> 21 joints -> the VAE joint refinement -> twist-swing IK -> MANO.

`data` turns the project's renders into cached trunk features, `model` is the network and its losses, `train`
trains it (``python -m core.net.paper.train``), `infer` runs it on the detector's crops (``capture --model paper``).
"""
from __future__ import annotations
