"""Derivatives of one T1w image: entities, sidecars and the sinks that write them."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..bids import T1wImage
from ..image.intensity import WHITE_MATTER_LEVEL
from ..interfaces.bids import DerivativesDataSink

#: desc labels used in OUTPUT_DIR, for descriptions.tsv.
DESCRIPTIONS = {
    "preproc": "Skull stripped, N4 bias corrected, resampled to 1 mm isotropic, clipped at "
    "the 0.1/99.9 brain percentiles, scaled to [0, 1] and rescaled to put white "
    f"matter at {WHITE_MATTER_LEVEL:g}.",
    "brain": "Brain mask on the grid of the preprocessed T1w.",
    "harmonized": "The preprocessed T1w in the contrast of the target field strength "
    "(diffusion-model harmonization), zero outside the brain mask.",
}


def image_stem(image: T1wImage) -> str:
    """The entity part of the image's file names: sub-01_ses-A[_acq-x][_run-1]."""
    entities = [
        ("sub", image.subject),
        ("ses", image.session),
        ("acq", image.acquisition),
        ("run", image.run),
    ]
    return "_".join(f"{key}-{value}" for key, value in entities if value is not None)


def derivative_name(image: T1wImage, *, desc: str, suffix: str) -> str:
    """Path of a derivative relative to OUTPUT_DIR, as the sinks write it."""
    folder = f"sub-{image.subject}/" + (f"ses-{image.session}/" if image.session else "")
    return f"{folder}anat/{image_stem(image)}_desc-{desc}_{suffix}.nii.gz"


def init_ds_outputs_wf(
    *, image: T1wImage, bids_dir: str, output_dir: str, name: str = "ds_outputs_wf"
) -> Workflow:
    """Write the preprocessed T1w, its brain mask and the harmonized T1w with sidecars.

    Inputs: t1w_preproc, brain_mask, harmonized, provenance (the Harmonization object).
    """
    import os

    workflow = Workflow(name=name)
    raw_uri = f"bids:raw:{os.path.relpath(image.path, bids_dir)}"
    preproc_uri = f"bids::{derivative_name(image, desc='preproc', suffix='T1w')}"
    mask_uri = f"bids::{derivative_name(image, desc='brain', suffix='mask')}"
    inputnode = pe.Node(
        niu.IdentityInterface(fields=["t1w_preproc", "brain_mask", "harmonized", "provenance"]),
        name="inputnode",
    )
    harmonized_meta = pe.Node(
        niu.Function(
            function=_harmonized_meta, input_names=["provenance"], output_names=["meta_dict"]
        ),
        name="harmonized_meta",
    )
    sink = {"base_directory": output_dir, "source_file": str(image.path), "compress": True}
    ds_t1w_preproc = pe.Node(
        DerivativesDataSink(
            **sink,
            desc="preproc",
            suffix="T1w",
            SkullStripped=True,
            Sources=[raw_uri],
            Description=DESCRIPTIONS["preproc"],
        ),
        name="ds_t1w_preproc",
        run_without_submitting=True,
    )
    ds_brain_mask = pe.Node(
        DerivativesDataSink(
            **sink,
            desc="brain",
            suffix="mask",
            Type="Brain",
            Sources=[raw_uri],
            SpatialReference=preproc_uri,
            Description=DESCRIPTIONS["brain"],
        ),
        name="ds_brain_mask",
        run_without_submitting=True,
    )
    ds_harmonized = pe.Node(
        DerivativesDataSink(
            **sink,
            desc="harmonized",
            suffix="T1w",
            SkullStripped=True,
            Sources=[preproc_uri, mask_uri],
            Description=DESCRIPTIONS["harmonized"],
        ),
        name="ds_harmonized",
        run_without_submitting=True,
    )

    workflow.connect(
        [
            (inputnode, ds_t1w_preproc, [("t1w_preproc", "in_file")]),
            (inputnode, ds_brain_mask, [("brain_mask", "in_file")]),
            (inputnode, harmonized_meta, [("provenance", "provenance")]),
            (inputnode, ds_harmonized, [("harmonized", "in_file")]),
            (harmonized_meta, ds_harmonized, [("meta_dict", "meta_dict")]),
        ]
    )
    return workflow


def _harmonized_meta(provenance):
    return {"Harmonization": provenance}
