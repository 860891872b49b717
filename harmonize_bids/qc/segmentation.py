"""Three-class tissue segmentation with a Markov random field: Atropos's algorithm in numpy.

The same model and schedule as ANTs Atropos with ``-i KMeans[3] -m [beta,1x1x1] -c
[iterations,0]`` and its default Socrates posterior (Avants et al., Neuroinformatics
2011): k-means labels (centres started evenly over the intensity range); Gaussian
classes; a label prior ``exp(beta * H_k)`` normalised over classes, where ``H_k`` sums
the inverse distances of the 26 neighbours labelled ``k``; each iteration updates the
labels asynchronously (iterated conditional modes over sets of voxels that are not
neighbours), takes the label of the largest posterior, refits the classes weighted by
the posteriors, and stops when the mean largest posterior no longer increases.

Atropos visits its update sets in a random order; these are the 8 parity classes of the
grid, in a fixed order. Run through ANTsPy the same segmentation takes several times as
long (its samples are ITK list samples).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Floor of likelihoods and priors, as Atropos.
_EPSILON = 1e-10
_CLASSES = 3
_OFFSETS = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]


def mrf_segmentation(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    mrf: float = 0.1,
    iterations: int = 5,
) -> np.ndarray:
    """Labels 1..3 inside ``mask`` (0 outside) of a 3-D ``image``; ``spacing`` (mm)
    weighs the neighbours. Label 1 starts as the darkest k-means class."""
    mask = np.asarray(mask, bool)
    kernel = np.zeros((3, 3, 3), np.float32)  # inverse distances of the 26 neighbours
    for offset in _OFFSETS:
        distance = np.sqrt(sum((d * s) ** 2 for d, s in zip(offset, spacing, strict=True)))
        kernel[tuple(d + 1 for d in offset)] = 1.0 / distance
    padded_image, padded_mask = np.pad(np.asarray(image, np.float64), 1), np.pad(mask, 1)
    values = np.asarray(image, np.float64)[mask]
    centres = _kmeans_1d(values)
    labels = np.zeros(mask.shape, np.int8)
    labels[mask] = np.argmin(np.abs(values[:, None] - centres), axis=1) + 1
    means, variances = _fit_classes(values, np.eye(_CLASSES)[labels[mask] - 1])
    previous = -np.inf
    for _ in range(iterations):
        labels, largest = _update_labels(
            padded_image, padded_mask, labels, means, variances, mrf, kernel
        )
        neighbours = np.stack(
            [_neighbour_weight(labels == k + 1, kernel)[mask] for k in range(_CLASSES)],
            axis=-1,
        )
        posteriors = _likelihoods(values, means, variances) * _label_prior(neighbours, mrf)
        posteriors /= posteriors.sum(axis=1, keepdims=True)
        labels = np.zeros(mask.shape, np.int8)
        labels[mask] = posteriors.argmax(axis=1) + 1
        means, variances = _fit_classes(values, posteriors)
        if largest - previous < 0:
            break
        previous = largest
    return labels


def _kmeans_1d(values: np.ndarray, max_iterations: int = 200) -> np.ndarray:
    """Lloyd's k-means of scalars, exactly, on the sorted values (cumulative sums)."""
    ordered = np.sort(values)
    sums = np.concatenate([[0.0], np.cumsum(ordered)])
    low, high = ordered[0], ordered[-1]
    centres = low + (high - low) * (np.arange(_CLASSES) + 0.5) / _CLASSES
    for _ in range(max_iterations):
        bounds = np.searchsorted(ordered, (centres[:-1] + centres[1:]) / 2, side="right")
        edges = np.concatenate([[0], bounds, [ordered.size]])
        counts = np.diff(edges)
        moved = np.where(
            counts > 0, (sums[edges[1:]] - sums[edges[:-1]]) / np.maximum(counts, 1), centres
        )
        if np.array_equal(moved, centres):
            break
        centres = moved
    return np.sort(centres)


def _fit_classes(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean and (unbiased weighted) variance of each class."""
    total = weights.sum(axis=0)
    if not (total > 0).all():
        raise ValueError(
            "a tissue class is empty: fewer than 3 distinguishable intensities in the mask"
        )
    means = (weights * values[:, None]).sum(axis=0) / total
    spread = (weights * (values[:, None] - means) ** 2).sum(axis=0)
    variances = spread / (total - (weights**2).sum(axis=0) / total)
    return means, np.maximum(variances, np.finfo(np.float64).tiny)


def _likelihoods(values: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    density = np.exp(-((values[:, None] - means) ** 2) / (2 * variances))
    return np.maximum(density / np.sqrt(2 * np.pi * variances), _EPSILON)


def _label_prior(neighbours: np.ndarray, mrf: float) -> np.ndarray:
    weights = np.exp(mrf * neighbours)
    return np.maximum(weights / weights.sum(axis=-1, keepdims=True), _EPSILON)


def _neighbour_weight(members: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """At each voxel, the sum of the inverse distances of its 26 neighbours in ``members``."""
    return ndimage.correlate(members.astype(np.float32), kernel, mode="constant")


def _update_labels(padded_image, padded_mask, labels, means, variances, mrf, kernel):
    """One asynchronous ICM sweep: the 8 parity classes of the grid in turn (voxels of one
    class are never neighbours), each voxel to its largest posterior. Image and mask come
    padded by one voxel. Returns the labels and the mean normalised largest posterior."""
    padded_labels = np.pad(labels, 1)
    members = np.stack([padded_labels == k + 1 for k in range(_CLASSES)], axis=-1)
    members = members.astype(np.float32)
    total = 0.0
    for start in itertools.product((0, 1), repeat=3):
        target = tuple(
            slice(s + 1, s + 1 + 2 * len(range(s, n, 2)), 2)
            for s, n in zip(start, labels.shape, strict=True)
        )
        inside = padded_mask[target]
        if not inside.any():
            continue
        neighbours = np.zeros(inside.shape + (_CLASSES,), np.float32)
        for offset in _OFFSETS:
            shifted = tuple(
                slice(t.start + d, t.stop + d, 2) for t, d in zip(target, offset, strict=True)
            )
            neighbours += kernel[tuple(d + 1 for d in offset)] * members[shifted]
        posteriors = _likelihoods(padded_image[target][inside], means, variances)
        posteriors = posteriors * _label_prior(neighbours[inside].astype(np.float64), mrf)
        best = posteriors.argmax(axis=1)
        total += float((posteriors.max(axis=1) / posteriors.sum(axis=1)).sum())
        block = padded_labels[target]
        block[inside] = best + 1
        padded_labels[target] = block
        block = members[target]
        block[inside] = np.eye(_CLASSES, dtype=np.float32)[best]
        members[target] = block
    return padded_labels[1:-1, 1:-1, 1:-1], total / max(int(padded_mask.sum()), 1)
