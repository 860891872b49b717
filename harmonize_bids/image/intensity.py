"""Step 5: robust clipping inside the brain, scaling to [0, 1] and white-matter anchoring.

Percentile scaling alone leaves the tissue intensities of a session at the mercy of its
brightest voxels (vessels, scalp fat left by skull stripping, noise), so the white matter
of the same brain lands 0.01-0.03 apart from session to session: several bins of the
paper's 255-bin histograms. Each brain is therefore rescaled so that its white-matter
class, found by a 3-class Gaussian mixture of the brain intensities, sits at
:data:`WHITE_MATTER_LEVEL`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..preprocessing import CLIP_PERCENTILES, WHITE_MATTER_LEVEL
from ._io import PathT, check_same_grid, load_image, save_like
from .errors import ImageError

#: Brain voxels the mixture is fitted on (an even subsample of larger brains).
_MIXTURE_SAMPLES = 150_000
#: Histogram bins the mixture is fitted on: EM over bins, not voxels, costs milliseconds.
_MIXTURE_BINS = 4096
#: Covariance floor, as scikit-learn's GaussianMixture.
_REG_VARIANCE = 1e-6
#: The least share of the brain the white-matter class holds (about a third in adults).
MIN_WHITE_MATTER_SHARE = 0.05
#: Bright tails left out before giving up on finding white matter.
_MAX_TAIL_TRIMS = 4


def tissue_mixture(data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and weights of 3 Gaussian classes of the brain intensities, darkest first
    (T1w: CSF, GM, WM).

    Expectation-maximisation on the histogram of the brain intensities, started as
    scikit-learn's GaussianMixture (k-means classes for weights and variances, the 10th,
    50th and 90th percentiles for means) and stopped by its rule. A brightest class holding
    under :data:`MIN_WHITE_MATTER_SHARE` of the brain is a bright tail (fat or vessels left
    by skull stripping, or voxels clipped at the top of the scale) that crowded the tissues
    below it into two classes: the voxels that class claims are left out and the mixture
    fitted again; the weights are shares of the voxels kept.
    """
    values = _brain_sample(data, mask)
    for _ in range(_MAX_TAIL_TRIMS + 1):
        means, weights, variances = _fit_mixture(values)
        if weights[-1] >= MIN_WHITE_MATTER_SHARE:
            return means, weights
        values = values[values < _tail_start(values, means, weights, variances)]
    raise ImageError(
        'no intensity class holds enough of the brain to be white matter. Check the brain '
        'mask (skull stripping) and the input.'
    )


def _brain_sample(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The brain intensities the mixture is fitted on, as float64."""
    values = np.asarray(data, np.float64)[np.asarray(mask) > 0]
    if values.size < 3:
        raise ImageError('brain mask has fewer than 3 voxels. Check the skull-stripping step.')
    return values[:: max(1, values.size // _MIXTURE_SAMPLES)]


def _fit_mixture(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means, weights and variances of 3 Gaussian classes of ``values``, darkest first."""
    from sklearn.cluster import KMeans

    counts, edges = np.histogram(values, bins=_MIXTURE_BINS)
    filled = counts > 0
    x = ((edges[:-1] + edges[1:]) / 2)[filled]
    counts = counts[filled].astype(np.float64)
    if x.size < 3:
        raise ImageError('fewer than 3 distinct intensities inside the brain. Check the input.')
    labels = KMeans(3, n_init=1, random_state=0).fit(x[:, None], sample_weight=counts).labels_
    resp = np.zeros((x.size, 3))
    resp[np.arange(x.size), labels] = counts
    weights, _, variances = _mixture_update(x, resp)
    means = np.percentile(values, [10, 50, 90])
    bound = -np.inf
    # a tight tolerance: stopped early (the default), the WM mean drifts by up to 0.02
    for _ in range(1000):
        log_density = _log_density(x, means, weights, variances)
        log_total = np.logaddexp.reduce(log_density, axis=1)
        resp = np.exp(log_density - log_total[:, None]) * counts[:, None]
        weights, means, variances = _mixture_update(x, resp)
        previous, bound = bound, float(counts @ log_total / counts.sum())
        if abs(bound - previous) < 1e-6:
            break
    order = np.argsort(means)
    return means[order], weights[order], variances[order]


def _log_density(x, means, weights, variances) -> np.ndarray:
    """Log of each class's weighted Gaussian density at each of ``x`` (rows)."""
    scaled_square = (x[:, None] - means) ** 2 / variances
    return -0.5 * (scaled_square + np.log(2 * np.pi * variances)) + np.log(weights)


def _mixture_update(x: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weights, means and variances from count-weighted responsibilities (M-step)."""
    totals = resp.sum(0) + 10 * np.finfo(np.float64).eps
    means = (resp * x[:, None]).sum(0) / totals
    variances = (resp * (x[:, None] - means) ** 2).sum(0) / totals + _REG_VARIANCE
    return totals / totals.sum(), means, variances


def white_matter_level(data: np.ndarray, mask: np.ndarray) -> float:
    """Mean intensity of the brightest of :func:`tissue_mixture`'s classes (T1w: WM)."""
    return float(tissue_mixture(data, mask)[0][-1])


def _tail_start(values, means, weights, variances) -> float:
    """The lowest of ``values`` above the second-brightest class's mean that the brightest
    class claims (its posterior above one half)."""
    above = np.unique(values[values > means[-2]])
    log_density = _log_density(above, means, weights, variances)
    claimed = log_density[:, -1] > np.logaddexp.reduce(log_density[:, :-1], axis=1)
    return float(above[claimed][0]) if claimed.any() else float(means[-1])


def anchor_white_matter(
    scaled: np.ndarray,
    mask: np.ndarray,
    *,
    level: float = WHITE_MATTER_LEVEL,
    current: float | None = None,
) -> np.ndarray:
    """Rescale a [0, 1] brain so its white matter sits at ``level``; clip to [0, 1].

    ``current`` is the white matter's level now, when already known. Voxels outside the
    mask are 0. Returns float32.
    """
    mask = np.asarray(mask) > 0
    if current is None:
        current = white_matter_level(scaled, mask)
    if not current > 0:
        raise ImageError('no white matter found above zero intensity. Check the input.')
    out = np.clip(np.asarray(scaled, np.float32) * np.float32(level / current), 0.0, 1.0)
    out[~mask] = 0.0
    return out


def clip_and_scale_array(
    data: np.ndarray,
    mask: np.ndarray,
    *,
    lower: float = CLIP_PERCENTILES[0],
    upper: float = CLIP_PERCENTILES[1],
    white_matter: float | None = WHITE_MATTER_LEVEL,
) -> np.ndarray:
    """Clip ``data`` at the [lower, upper] percentiles inside ``mask``, scale to [0, 1],
    then (unless ``white_matter`` is None) anchor white matter at ``white_matter``.

    Voxels outside the mask are 0. Returns float32.
    """
    mask = np.asarray(mask) > 0
    if not mask.any():
        raise ImageError('brain mask is empty. Check the skull-stripping step.')
    lo, hi = np.percentile(data[mask], [lower, upper])
    if not hi > lo:
        raise ImageError('intensities inside the brain mask are constant. Check the input.')
    out = np.clip((data - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    out[~mask] = 0.0
    if white_matter is not None:
        out = anchor_white_matter(out, mask, level=white_matter)
    return out


def _in_mask_file(function, in_file: PathT, mask_file: PathT, out_file: PathT, **options) -> Path:
    """Apply ``function(data, mask, **options)`` to files sharing a grid; save like input."""
    img, data = load_image(in_file)
    mask_img, mask = load_image(mask_file)
    check_same_grid(mask_img, img, mask_file, in_file)
    try:
        out = function(data, mask, **options)
    except ImageError as exc:
        raise ImageError(f'{in_file}: {exc}') from None
    return save_like(out, img, out_file)


def clip_and_scale(
    in_file: PathT,
    mask_file: PathT,
    out_file: PathT,
    *,
    lower: float = CLIP_PERCENTILES[0],
    upper: float = CLIP_PERCENTILES[1],
    white_matter: float | None = WHITE_MATTER_LEVEL,
) -> Path:
    """File variant of :func:`clip_and_scale_array`; mask and image must share a grid."""
    return _in_mask_file(
        clip_and_scale_array,
        in_file,
        mask_file,
        out_file,
        lower=lower,
        upper=upper,
        white_matter=white_matter,
    )


def anchor_white_matter_file(
    in_file: PathT, mask_file: PathT, out_file: PathT, *, level: float = WHITE_MATTER_LEVEL
) -> Path:
    """File variant of :func:`anchor_white_matter`; mask and image must share a grid."""
    return _in_mask_file(anchor_white_matter, in_file, mask_file, out_file, level=level)


#: In a T1w MPRAGE brain with white matter at 0.81 the 99th percentile lies at 0.85-0.95;
#: far lower means the scale was set by something else than white matter: a small set of
#: much brighter voxels (scalp fat left inside the brain mask) with anchoring turned off,
#: or a mixture fit that missed the white matter.
MIN_SCALED_P99 = 0.75


def scaling_problem(
    scaled: np.ndarray, mask: np.ndarray, *, min_p99: float = MIN_SCALED_P99
) -> str | None:
    """Why a clipped-and-scaled brain looks mis-scaled, or None if it looks right."""
    mask = np.asarray(mask) > 0
    if not mask.any():
        return 'the brain mask is empty'
    p99 = float(np.percentile(np.asarray(scaled)[mask], 99))
    if p99 < min_p99:
        return (
            f'its 99th brain percentile is {p99:.2f} of the scale (expected >= '
            f'{min_p99}): the intensity scale was not set by white matter (e.g. scalp '
            'fat left by skull stripping)'
        )
    return None


def scaling_problem_file(in_file: PathT, mask_file: PathT) -> str | None:
    """File variant of :func:`scaling_problem`."""
    _, data = load_image(in_file)
    _, mask = load_image(mask_file)
    return scaling_problem(data, mask)
