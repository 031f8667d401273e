"""A layers x experts heatmap of each domain's mean router probability, one panel per domain, written atomically.

Only routed experts are drawn, each panel on its own colour scale: a shared or always-active expert
gets probability ~1.0 on every token and would flatten every difference between routed experts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emo_prune.errors import OutputError
from emo_prune.io.atomic import atomic_write
from emo_prune.profile.store import Profile


def heatmap_matrix(profile: Profile, domain: str, routed_only: bool = True) -> np.ndarray:
    """[L, E_max] mean probability; NaN where a layer has no such expert (dense layers, narrower layers)
    and, with `routed_only`, at the shared / always-active experts."""
    matrix = np.full((profile.num_layers, profile.max_experts), np.nan, dtype=np.float64)
    for lay in profile.layouts:
        if not lay.is_dense:
            matrix[lay.index, : lay.num_experts] = profile.mean_probability(domain, lay.index)
            if routed_only and lay.fixed_ids:
                matrix[lay.index, list(lay.fixed_ids)] = float("nan")
    return matrix


def plot_heatmaps(profile: Profile, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    domains = sorted(profile.domains)
    fig, axes = plt.subplots(
        len(domains), 1, figsize=(max(6.0, profile.max_experts * 0.12), 1.0 + 2.2 * len(domains)), squeeze=False
    )
    for ax, domain in zip(axes[:, 0], domains, strict=True):
        image = ax.imshow(heatmap_matrix(profile, domain), aspect="auto", interpolation="nearest", cmap="viridis")
        ax.set_title(f"{domain}: mean router probability of the routed experts ({profile.domains[domain].num_tokens} tokens)")
        ax.set_xlabel("expert")
        ax.set_ylabel("layer")
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    image_format = path.suffix.lstrip(".").lower() or "png"
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=image_format))
    except ValueError as exc:  # an image format matplotlib does not know
        raise OutputError(f"cannot write the heatmap {path}: {exc}") from exc
    finally:
        plt.close(fig)
    return path
