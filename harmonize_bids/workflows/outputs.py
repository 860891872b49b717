"""Derivatives of one T1w image: the sinks that write them, with their sidecars.

Names and descriptions come from :mod:`harmonize_bids.derivatives`.
"""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..bids import T1wImage
from ..derivatives import KINDS, derivative_path
from ..interfaces.bids import DerivativesDataSink


def init_ds_outputs_wf(
    *, image: T1wImage, bids_dir: str, output_dir: str, name: str = "ds_outputs_wf"
) -> Workflow:
    """Write the preprocessed T1w, its brain mask and the harmonized T1w with sidecars.

    Inputs: t1w_preproc, brain_mask, harmonized, provenance (the Harmonization object).
    """
    workflow = Workflow(name=name)
    raw_uri = image.uri(bids_dir)
    preproc_uri = f"bids::{derivative_path(image.entities, 'preproc')}"
    mask_uri = f"bids::{derivative_path(image.entities, 'mask')}"
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
            **KINDS["preproc"].entities,
            SkullStripped=True,
            Sources=[raw_uri],
            Description=KINDS["preproc"].description,
        ),
        name="ds_t1w_preproc",
        run_without_submitting=True,
    )
    ds_brain_mask = pe.Node(
        DerivativesDataSink(
            **sink,
            **KINDS["mask"].entities,
            Type="Brain",
            Sources=[raw_uri],
            SpatialReference=preproc_uri,
            Description=KINDS["mask"].description,
        ),
        name="ds_brain_mask",
        run_without_submitting=True,
    )
    ds_harmonized = pe.Node(
        DerivativesDataSink(
            **sink,
            **KINDS["harmonized"].entities,
            SkullStripped=True,
            Sources=[preproc_uri, mask_uri],
            Description=KINDS["harmonized"].description,
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
