"""The participant graph builds, without running, with the expected shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from harmonize_bids.bids import T1wImage
from harmonize_bids.derivatives import derivative_path
from harmonize_bids.workflows.base import image_workflow_name, init_harmonize_bids_wf


def _image(session: str, field: float, run: str | None = None) -> T1wImage:
    return T1wImage(
        path=Path(f"/data/sub-01/ses-{session}/anat/sub-01_ses-{session}_T1w.nii.gz"),
        subject="01",
        session=session,
        acquisition=None,
        run=run,
        field_strength=field,
        field_origin="sidecar",
    )


def _build(images, tmp_path, model_dir=True):
    if model_dir is True:
        model_dir = tmp_path / "model"
        model_dir.mkdir(exist_ok=True)
    return init_harmonize_bids_wf(
        images=images,
        bids_dir=Path("/data"),
        output_dir=tmp_path / "out",
        work_dir=tmp_path / "work",
        target_field=3.0,
        model_dir=model_dir,
        skull_strip="deepbet",
        sampler="ddim",
        steps=20,
        ensemble=1,
        seed=0,
        device="cpu",
        omp_nthreads=1,
        sloppy=True,
    )


def test_graph_order_and_harmonize_only_off_target(tmp_path):
    images = [_image("A", 1.5), _image("B", 3.0)]
    workflow = _build(images, tmp_path)
    names = set(workflow.list_node_names())
    off, on = "t1w_sub_01_ses_A_wf", "t1w_sub_01_ses_B_wf"
    assert f"{off}.harmonize" in names
    assert f"{on}.harmonize" not in names
    for wf in (off, on):
        for step in (
            "conform",
            "skull_stripping",
            "bias_correction",
            "resample_t1w",
            "clip_scale",
        ):
            assert f"{wf}.t1w_preproc_wf.{step}" in names
        for sink in ("ds_t1w_preproc", "ds_brain_mask", "ds_harmonized"):
            assert f"{wf}.ds_outputs_wf.{sink}" in names
    harmonize = workflow.get_node("t1w_sub_01_ses_A_wf.harmonize")
    assert (harmonize.inputs.sampler, harmonize.inputs.steps) == ("ddim", 20)
    assert harmonize.inputs.source_field == 1.5 and harmonize.inputs.use_gpu is False
    # The paper's order: conform -> skull strip -> N4 -> resample -> clip/scale.
    preproc = workflow.get_node("t1w_sub_01_ses_A_wf.t1w_preproc_wf")
    order = [node.name for node in preproc._graph.nodes()]
    edges = {(u.name, v.name) for u, v in preproc._graph.edges()}
    assert {
        ("conform", "skull_stripping"),
        ("skull_stripping", "bias_correction"),
        ("bias_correction", "resample_t1w"),
        ("resample_t1w", "clip_scale"),
    } <= edges
    assert "clip_scale" in order
    assert "diffusion model" in workflow.visit_desc()


def test_image_at_target_without_model_builds(tmp_path):
    workflow = _build([_image("B", 3.0)], tmp_path, model_dir=None)
    ds = workflow.get_node("t1w_sub_01_ses_B_wf.ds_outputs_wf.inputnode")
    assert ds.inputs.provenance["ModelApplied"] is False


def test_image_off_target_requires_model(tmp_path):
    with pytest.raises(ValueError, match="needs a model"):
        _build([_image("A", 1.5)], tmp_path, model_dir=None)


def test_names_are_unique_and_match_sinks():
    a, b = _image("A", 1.5, run="1"), _image("A", 1.5, run="2")
    assert image_workflow_name(a) != image_workflow_name(b)
    assert derivative_path(a.entities, "preproc") == (
        "sub-01/ses-A/anat/sub-01_ses-A_run-1_desc-preproc_T1w.nii.gz"
    )
