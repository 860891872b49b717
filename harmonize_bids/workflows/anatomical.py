"""Preprocessing of one T1w image, in the paper's order."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..image import SLOPPY_SPACING_MM
from ..interfaces.preprocessing import N4, ClipScale, Conform, Resample, SkullStrip
from ..preprocessing import DEFAULT_PREPROCESSING, preprocessing_options

_SKULL_STRIPPERS = {
    "deepbet": "deepbet (Fisch et al., 2024)",
    "hdbet": "HD-BET (Isensee et al., 2019)",
    "none": "none (the input was already skull stripped)",
}


def init_t1w_preproc_wf(
    *,
    skull_strip: str,
    sloppy: bool,
    omp_nthreads: int,
    preprocessing: dict | None = None,
    name: str = "t1w_preproc_wf",
) -> Workflow:
    """Conform, skull-strip, N4-correct, resample and scale one T1w to [0, 1].

    ``preprocessing`` is the model folder's preprocessing.json (default: the values new
    models record): the grid spacing, clipping percentiles and white-matter level. With
    ``sloppy`` (tests only) the grid is SLOPPY_SPACING_MM.

    Inputs: t1w.  Outputs: t1w_preproc (1 mm, [0, 1], zero outside the brain),
    brain_mask (on the same grid).
    """
    options = preprocessing_options(preprocessing or DEFAULT_PREPROCESSING)
    workflow = Workflow(name=name)
    workflow.__desc__ = (
        "The T1-weighted image was reoriented to RAS+ without resampling, skull stripped "
        f"with {_SKULL_STRIPPERS[skull_strip]}, corrected for intensity non-uniformity "
        "with N4 (Tustison et al., 2010; ANTsPy) inside the brain mask, resampled to "
        f"{options['spacing']:g} mm isotropic voxels, clipped at the {options['lower']:g} and "
        f"{options['upper']:g} percentiles of the brain and scaled to [0, 1], as in Durrer "
        "et al. (2023), and rescaled so that the white matter (the brightest class of a "
        "3-class Gaussian mixture of the brain intensities; scikit-learn) sits at "
        f"{options['white_matter']:g}. "
    )
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    outputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w_preproc", "brain_mask"]), name="outputnode"
    )
    conform = pe.Node(Conform(), name="conform", mem_gb=1)
    skull_stripping = pe.Node(
        SkullStrip(method=skull_strip, sloppy=sloppy),
        name="skull_stripping",
        mem_gb=3,
        n_procs=omp_nthreads,
    )
    bias_correction = pe.Node(
        N4(sloppy=sloppy), name="bias_correction", mem_gb=2, n_procs=omp_nthreads
    )
    spacing = SLOPPY_SPACING_MM if sloppy else options["spacing"]
    resample_t1w = pe.Node(
        Resample(interpolation="linear", spacing=spacing), name="resample_t1w", mem_gb=1
    )
    resample_mask = pe.Node(
        Resample(interpolation="nearest", spacing=spacing), name="resample_mask", mem_gb=1
    )
    clip_scale = pe.Node(
        ClipScale(
            lower=options["lower"], upper=options["upper"], white_matter=options["white_matter"]
        ),
        name="clip_scale",
        mem_gb=1,
    )

    workflow.connect(
        [
            (inputnode, conform, [("t1w", "in_file")]),
            (conform, skull_stripping, [("out_file", "in_file")]),
            (
                skull_stripping,
                bias_correction,
                [("out_file", "in_file"), ("out_mask", "mask_file")],
            ),
            (bias_correction, resample_t1w, [("out_file", "in_file")]),
            (skull_stripping, resample_mask, [("out_mask", "in_file")]),
            (resample_t1w, clip_scale, [("out_file", "in_file")]),
            (resample_mask, clip_scale, [("out_file", "mask_file")]),
            (clip_scale, outputnode, [("out_file", "t1w_preproc")]),
            (resample_mask, outputnode, [("out_file", "brain_mask")]),
        ]
    )
    return workflow
