"""The diffusion-model harmonization step as a nipype interface over harmonize_bids.model."""

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


class _HarmonizeInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="preprocessed source image in [0, 1]")
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    model_dir = Directory(exists=True, mandatory=True, desc="model folder")
    source_field = traits.Float(mandatory=True, desc="field strength of the input (T)")
    target_field = traits.Float(mandatory=True, desc="field strength to map to (T)")
    sampler = traits.Enum("ddpm", "ddim", "dpm", desc="sampler; default: dpm")
    steps = traits.Int(desc="sampling steps; default: 10 (dpm, ddim), 1000 (ddpm)")
    ensemble = traits.Int(1, usedefault=True, desc="samples averaged")
    seed = traits.Int(0, usedefault=True, desc="random seed")
    device = traits.Str("auto", usedefault=True, desc="auto, cpu, cuda, cuda:N, mps")
    num_threads = traits.Int(1, usedefault=True, desc="torch CPU threads")
    use_gpu = traits.Bool(False, usedefault=True, desc="lets MultiProc gate GPU jobs")


class _HarmonizeOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="harmonized image, zero outside the brain mask")
    provenance = traits.Dict(desc="the sidecar's Harmonization object")


def harmonize_anchored(model, volume, mask, **sampling):
    """:func:`~harmonize_bids.model.sampling.harmonize_volume`, then the output's white
    matter anchored at the model's ``white_matter_level``, the scale of every preprocessed
    image (a sampler that leaves the tissue a little dark or bright does not shift it),
    then the model's output calibration, if its folder has one.
    """
    from ..image.intensity import anchor_white_matter
    from ..model.sampling import harmonize_volume

    harmonized = harmonize_volume(model, volume, mask, **sampling)
    anchored = anchor_white_matter(
        harmonized, mask, level=float(model.preprocessing["white_matter_level"])
    )
    if model.calibration is None:
        return anchored
    return model.calibration.apply(anchored, mask)


class Harmonize(SimpleInterface):
    """Translate a preprocessed volume to the target field's contrast, slice by slice."""

    input_spec = _HarmonizeInputSpec
    output_spec = _HarmonizeOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib
        import numpy as np
        import torch

        from ..model.device import resolve_device
        from ..model.folder import load_model_folder
        from ..model.sampling import DEFAULT_SAMPLER, DEFAULT_STEPS
        from ..provenance import harmonization_record

        torch.set_num_threads(self.inputs.num_threads)
        model = load_model_folder(
            self.inputs.model_dir,
            source_field=self.inputs.source_field,
            target_field=self.inputs.target_field,
        )
        sampler = self.inputs.sampler if isdefined(self.inputs.sampler) else DEFAULT_SAMPLER
        steps = self.inputs.steps if isdefined(self.inputs.steps) else None
        if steps is None:
            steps = (
                model.scheduler_config["num_train_timesteps"]
                if sampler == "ddpm"
                else DEFAULT_STEPS
            )
        image = nib.load(self.inputs.in_file)
        volume = np.asanyarray(image.dataobj, dtype=np.float32)
        mask = np.asanyarray(nib.load(self.inputs.mask_file).dataobj) > 0
        device = resolve_device(self.inputs.device)
        harmonized = harmonize_anchored(
            model,
            volume,
            mask,
            sampler=sampler,
            steps=steps,
            ensemble=self.inputs.ensemble,
            seed=self.inputs.seed,
            device=device,
            progress=False,
        )
        out = nib.Nifti1Image(harmonized.astype(np.float32), image.affine, image.header)
        out.set_data_dtype(np.float32)
        out_file = f"{runtime.cwd}/harmonized.nii.gz"
        out.to_filename(out_file)
        self._results["out_file"] = out_file
        self._results["provenance"] = harmonization_record(
            model=model,
            sampler=sampler,
            steps=steps,
            ensemble=self.inputs.ensemble,
            seed=self.inputs.seed,
            device=str(device),
        )
        return runtime
