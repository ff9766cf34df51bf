"""Figures written as PNG files: gradient-flow curves and grids of sampled images."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from rnnbench.reports.figures import pyplot, save_png
from rnnbench.reports.gradient_flow import GradientFlow, decay_per_step


def plot_gradient_flow(flows: list[GradientFlow], title: str, output: str | Path) -> Path:
    """Two panels, at initialisation and after training: ||dL_T / dx_t|| against the distance
    T - t on a log scale, one curve per architecture, each labelled with its fitted decay per step."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, phase, heading in zip(axes, ("init", "trained"), ("at initialisation", "after training")):
        for flow in flows:
            norms = getattr(flow, phase)
            shown = norms.masked_fill(norms <= 0, float("nan"))   # underflowed: no point
            axis.semilogy(range(norms.shape[0]), shown.numpy(),
                          label=f"{flow.architecture} (x{decay_per_step(norms):.3f} per step)")
        axis.set_title(heading)
        axis.set_xlabel("distance to the last step, T - t")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    axes[0].set_ylabel("||dL_T / dx_t|| (mean over a test batch)")
    figure.suptitle(title)
    figure.tight_layout()
    return save_png(figure, output, dpi=120)


def write_image_grid(images: Tensor, output: str | Path, columns: int = 8, scale: int = 4) -> Path:
    """(N, C, H, W) images with values in [0, 1] tiled row by row into one grey (C = 1) or
    colour (C = 3) PNG, each pixel drawn as a `scale` x `scale` block, with a one-pixel gap
    between tiles."""
    plt = pyplot()
    images = images.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    count, channels, height, width = images.shape
    rows = -(-count // columns)
    canvas = images.new_ones(channels, rows * (height + 1) + 1, columns * (width + 1) + 1) * 0.5
    for index in range(count):
        top, left = 1 + (index // columns) * (height + 1), 1 + (index % columns) * (width + 1)
        canvas[:, top:top + height, left:left + width] = images[index]
    picture = canvas[0] if channels == 1 else canvas.permute(1, 2, 0)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(output, picture.clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    return output
