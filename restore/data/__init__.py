"""Built-in images (see ``README.md`` in this folder for provenance and licence)."""
from pathlib import Path

import torch

__all__ = ["FACE_PATH", "face"]

FACE_PATH = Path(__file__).with_name("face64.png")


def face() -> torch.Tensor:
    """The demo face (Eileen Collins, public domain, from ``skimage.data.astronaut``):
    ``(1, 3, 64, 64)`` float32 in [0, 1].

    >>> face().shape
    torch.Size([1, 3, 64, 64])
    """
    from ..io import load_image

    return load_image(FACE_PATH, channels=3, what="built-in face")
