"""The participant-level graph: one sub-workflow per selected T1w image."""

from __future__ import annotations

import re
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from ..bids import ReferencePlan, ScannerMapPlan, T1wImage
from ..choices import DEFAULT_EVEN_OUT_SLICES, DEFAULT_SLICE_PLANES, Direction
from ..image import SLOPPY_SPACING_MM
from ..image.destripe import IN_PLANE_SIGMA
from ..interfaces.harmonize import Harmonize
from ..interfaces.reference import TargetReference
from ..preprocessing import DEFAULT_PREPROCESSING, preprocessing_options
from ..provenance import passthrough_record
from .anatomical import init_t1w_preproc_wf
from .outputs import init_ds_outputs_wf


def init_harmonize_bids_wf(
    *,
    images: list[T1wImage],
    bids_dir: Path,
    output_dir: Path,
    work_dir: Path,
    target_field: float,
    model_dir: Path | None,
    skull_strip: str,
    sampler: str | None,
    steps: int | None,
    ensemble: int,
    seed: int,
    device: str,
    omp_nthreads: int,
    sloppy: bool,
    preprocessing: dict | None = None,
    references: dict[str, ReferencePlan] | None = None,
    scanner_maps: dict[str, ScannerMapPlan] | None = None,
    slice_planes: tuple[str, ...] = DEFAULT_SLICE_PLANES,
    even_out_slices: bool = DEFAULT_EVEN_OUT_SLICES,
    name: str = "harmonize_bids_wf",
) -> Workflow:
    """Preprocess every image; harmonize those not at the target field; write outputs.

    ``preprocessing`` is the model folder's preprocessing.json; ``references`` maps a
    subject label to where its target-field reference comes from (absent: the model
    folder's own); ``scanner_maps`` to the scans of its scanner map (absent: none).
    """
    workflow = Workflow(name=name, base_dir=str(work_dir))
    for image in images:
        workflow.add_nodes(
            [
                init_single_t1w_wf(
                    image=image,
                    bids_dir=bids_dir,
                    output_dir=output_dir,
                    target_field=target_field,
                    model_dir=model_dir,
                    skull_strip=skull_strip,
                    sampler=sampler,
                    steps=steps,
                    ensemble=ensemble,
                    seed=seed,
                    device=device,
                    omp_nthreads=omp_nthreads,
                    sloppy=sloppy,
                    preprocessing=preprocessing,
                    slice_planes=slice_planes,
                    even_out_slices=even_out_slices,
                    reference=(references or {}).get(image.subject),
                    scanner_map=(scanner_maps or {}).get(image.subject),
                    cache_dir=Path(work_dir) / "reference_cache",
                    name=image_workflow_name(image),
                )
            ]
        )
    return workflow


def image_workflow_name(image: T1wImage) -> str:
    """A node-safe, unique name from the image's entities: t1w_sub_01_ses_A_wf."""
    short = {"subject": "sub", "session": "ses", "acquisition": "acq", "run": "run"}
    parts = [f"{short[key]}_{value}" for key, value in image.entities.items()]
    return re.sub(r"\W", "_", "t1w_" + "_".join(parts) + "_wf")


def executed_node_names(workflow) -> list[str]:
    """Hierarchical names of the nodes nipype runs (it drops identity nodes when it
    flattens the graph)."""
    from nipype.interfaces.utility import IdentityInterface

    return [
        name
        for name in workflow.list_node_names()
        if not isinstance(workflow.get_node(name).interface, IdentityInterface)
    ]


def uses_gpu(device: str) -> bool:
    """Whether the harmonize node will hold a GPU (so MultiProc can gate it)."""
    from nipype.utils.gpu_count import gpu_count

    return device.startswith("cuda") or (device == "auto" and gpu_count() > 0)


def init_single_t1w_wf(
    *,
    image: T1wImage,
    bids_dir: Path,
    output_dir: Path,
    target_field: float,
    model_dir: Path | None,
    skull_strip: str,
    sampler: str | None,
    steps: int | None,
    ensemble: int,
    seed: int,
    device: str,
    omp_nthreads: int,
    sloppy: bool,
    name: str,
    preprocessing: dict | None = None,
    reference: ReferencePlan | None = None,
    scanner_map: ScannerMapPlan | None = None,
    cache_dir: Path | None = None,
    slice_planes: tuple[str, ...] = DEFAULT_SLICE_PLANES,
    even_out_slices: bool = DEFAULT_EVEN_OUT_SLICES,
) -> Workflow:
    """One T1w: preprocess, harmonize (unless already at the target field), write.

    ``reference`` names the other subjects' target-field scans to pool (or an explicit
    reference file) for a reference-conditioned model; ``scanner_map`` the scans that fit
    the study's scanner map the output is matched through; ``cache_dir`` keeps their
    quantiles.
    """
    workflow = Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t1w"]), name="inputnode")
    inputnode.inputs.t1w = str(image.path)
    t1w_preproc_wf = init_t1w_preproc_wf(
        skull_strip=skull_strip,
        sloppy=sloppy,
        omp_nthreads=omp_nthreads,
        preprocessing=preprocessing,
    )
    ds_outputs_wf = init_ds_outputs_wf(
        image=image, bids_dir=str(bids_dir), output_dir=str(output_dir)
    )
    workflow.connect(
        [
            (inputnode, t1w_preproc_wf, [("t1w", "inputnode.t1w")]),
            (
                t1w_preproc_wf,
                ds_outputs_wf,
                [
                    ("outputnode.t1w_preproc", "inputnode.t1w_preproc"),
                    ("outputnode.brain_mask", "inputnode.brain_mask"),
                ],
            ),
        ]
    )
    if image.field_strength == target_field:
        ds_outputs_wf.get_node("inputnode").inputs.provenance = passthrough_record(
            field_strength=target_field
        )
        workflow.connect(
            [
                (
                    t1w_preproc_wf,
                    ds_outputs_wf,
                    [("outputnode.t1w_preproc", "inputnode.harmonized")],
                ),
            ]
        )
        return workflow

    if model_dir is None:
        raise ValueError(
            f"{image.path} needs a model for "
            f"{Direction(image.field_strength, target_field)} but none was given"
        )
    harmonize = pe.Node(
        Harmonize(
            model_dir=str(model_dir),
            source_field=image.field_strength,
            target_field=target_field,
            ensemble=ensemble,
            slice_planes=list(slice_planes),
            even_out_slices=even_out_slices,
            seed=seed,
            device=device,
            num_threads=omp_nthreads,
            use_gpu=uses_gpu(device),
        ),
        name="harmonize",
        n_procs=omp_nthreads,
        mem_gb=4,
    )
    if sampler is not None:
        harmonize.inputs.sampler = sampler
    if steps is not None:
        harmonize.inputs.steps = steps
    workflow.__desc__ = (
        f"It was then translated to the contrast of the {target_field:g} T scanner by a "
        "conditional denoising diffusion model (Durrer et al., 2023) that takes the source "
        f"slice as anatomical guidance, applied to {' and '.join(slice_planes)} slices "
        + (
            "and stacked to 3D. "
            if len(slice_planes) == 1
            else "(each plane's slices stacked to 3D, the planes averaged). "
        )
    )
    if even_out_slices:
        workflow.__desc__ += (
            "Slow brightness changes between its slices (the in-plane Gaussian low-pass, "
            f"sigma {IN_PLANE_SIGMA:g} mm) were smoothed across slices. "
        )
    options = preprocessing_options(preprocessing or DEFAULT_PREPROCESSING)

    def pooled(images, sources, field_strength, node_name, **publish):
        """A node pooling raw scans into a reference JSON, preprocessed as the input."""
        return pe.Node(
            TargetReference(
                images=[str(path) for path in images],
                sources=list(sources),
                field_strength=field_strength,
                cache_dir=str(cache_dir),
                skull_strip=skull_strip,
                sloppy=sloppy,
                spacing=SLOPPY_SPACING_MM if sloppy else options["spacing"],
                lower=options["lower"],
                upper=options["upper"],
                white_matter=options["white_matter"],
                **publish,
            ),
            name=node_name,
            n_procs=1,
            mem_gb=3,
        )

    if reference is not None and reference.file is not None:
        harmonize.inputs.reference_file = str(reference.file)
        harmonize.inputs.reference_origin = "file"
    elif reference is not None and reference.images:
        target_reference = pooled(
            reference.images,
            reference.sources,
            target_field,
            "target_reference",
            output_dir=str(output_dir),
        )
        workflow.__desc__ += (
            "The model was also given the image histogram-matched to the study's "
            f"{target_field:g} T scans of other participants ({len(reference.images)} "
            "scans, preprocessed alike and pooled). "
        )
        workflow.connect([(target_reference, harmonize, [("out_file", "reference_file")])])
    if scanner_map is not None and scanner_map.unavailable:
        harmonize.inputs.scanner_map_unavailable = scanner_map.unavailable
    elif scanner_map is not None:
        scanner_map_source = pooled(
            scanner_map.source_images,
            scanner_map.source_names,
            image.field_strength,
            "scanner_map_source",
        )
        scanner_map_target = pooled(
            scanner_map.target_images, scanner_map.target_names, target_field, "scanner_map_target"
        )
        workflow.__desc__ += (
            "The output was then histogram-matched to the image mapped through the study's "
            f"own scanner pair: a monotone map from the pooled {image.field_strength:g} T to "
            f"the pooled {target_field:g} T scans of {len(scanner_map.subjects)} other "
            "participants scanned at both fields. "
        )
        workflow.connect(
            [
                (scanner_map_source, harmonize, [("out_file", "map_source_file")]),
                (scanner_map_target, harmonize, [("out_file", "map_target_file")]),
            ]
        )
    workflow.connect(
        [
            (
                t1w_preproc_wf,
                harmonize,
                [("outputnode.t1w_preproc", "in_file"), ("outputnode.brain_mask", "mask_file")],
            ),
            (
                harmonize,
                ds_outputs_wf,
                [("out_file", "inputnode.harmonized"), ("provenance", "inputnode.provenance")],
            ),
        ]
    )
    return workflow
