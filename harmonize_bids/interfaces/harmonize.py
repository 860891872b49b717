"""The diffusion-model harmonization step as a nipype interface over harmonize_bids.inference."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from ..choices import SAMPLERS, SLICE_PLANES


class _HarmonizeInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="preprocessed source image in [0, 1]")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    model_dir = Directory(exists=True, mandatory=True, desc="model folder")
    source_field = traits.Float(mandatory=True, desc="field strength of the input (T)")
    target_field = traits.Float(mandatory=True, desc="field strength to map to (T)")
    reference_file = File(exists=True, desc="target-field reference (JSON)")
    reference_origin = traits.Str(desc="record the reference as coming from here ('file')")
    map_source_file = File(exists=True, desc="scanner map: pooled source-field reference")
    map_target_file = File(exists=True, desc="scanner map: pooled target-field reference")
    scanner_map_unavailable = traits.Str(desc="why a scanner map was asked for and not made")
    sampler = traits.Enum(*SAMPLERS, desc="sampler; default: the app's")
    steps = traits.Int(desc="sampling steps; default: the sampler's")
    ensemble = traits.Int(1, usedefault=True, desc="samples averaged")
    slice_planes = traits.List(
        traits.Enum(*SLICE_PLANES), desc="planes sliced along and averaged; default: the app's"
    )
    even_out_slices = traits.Bool(desc="smooth slow brightness changes between slices")
    seed = traits.Int(0, usedefault=True, desc="random seed")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu, cuda, cuda:N, mps")
    num_threads = traits.Int(1, usedefault=True, desc="torch CPU threads")
    use_gpu = traits.Bool(False, usedefault=True, desc="lets MultiProc gate GPU jobs")


class _HarmonizeOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="harmonized image, zero outside the brain mask")
    provenance = traits.Dict(desc="the sidecar's Harmonization object")


class Harmonize(SimpleInterface):
    """Translate a preprocessed volume to the target field's contrast, slice by slice."""

    input_spec = _HarmonizeInputSpec
    output_spec = _HarmonizeOutputSpec

    def _run_interface(self, runtime):
        from ..choices import Direction
        from ..inference import harmonize_file

        def given(value):
            return value if isdefined(value) else None

        out_file = f"{runtime.cwd}/harmonized.nii.gz"
        self._results["provenance"] = harmonize_file(
            self.inputs.in_file,
            self.inputs.mask_file,
            out_file,
            self.inputs.model_dir,
            Direction(self.inputs.source_field, self.inputs.target_field),
            sampler=given(self.inputs.sampler),
            steps=given(self.inputs.steps),
            ensemble=self.inputs.ensemble,
            slice_planes=given(self.inputs.slice_planes),
            even_out_slices=given(self.inputs.even_out_slices),
            seed=self.inputs.seed,
            device=self.inputs.device,
            num_threads=self.inputs.num_threads,
            reference_file=given(self.inputs.reference_file),
            reference_origin=given(self.inputs.reference_origin),
            scanner_map_files=(
                (self.inputs.map_source_file, self.inputs.map_target_file)
                if isdefined(self.inputs.map_source_file)
                else None
            ),
            scanner_map_unavailable=given(self.inputs.scanner_map_unavailable),
        )
        self._results["out_file"] = out_file
        return runtime
