"""Writing matplotlib figures as small PNG files.

matplotlib draws off-screen (the Agg backend), so no display is needed. Its PNGs are 32-bit RGBA;
a plot has a few dozen colours, so a 256-colour palette (Pillow's fast octree quantiser) keeps
what is seen at about a third of the bytes. That matters where pages inline their plots.
"""

from __future__ import annotations

import io
from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, output: str | Path, dpi: int) -> Path:
    """Write `figure` to `output` as an 8-bit palette PNG, creating its folder, and close it."""
    from PIL import Image

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    drawn = io.BytesIO()
    figure.savefig(drawn, format="png", dpi=dpi)
    pyplot().close(figure)
    with Image.open(drawn) as image:
        image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(output, format="png", optimize=True)
    return output
