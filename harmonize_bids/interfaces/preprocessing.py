"""Preprocessing steps as nipype interfaces over harmonize_bids.image."""

from __future__ import annotations

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ..choices import SKULL_STRIP_METHODS
from ..preprocessing import CLIP_PERCENTILES, WHITE_MATTER_LEVEL


class _InFileSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="input image")


class _OutFileSpec(TraitedSpec):
    out_file = File(exists=True, desc="output image")


class Conform(SimpleInterface):
    """Squeeze, reorient to RAS+, replace NaN/inf; world coordinates kept exact."""

    input_spec = _InFileSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        from ..image import conform

        self._results["out_file"] = str(
            conform(self.inputs.in_file, f"{runtime.cwd}/conformed.nii.gz")
        )
        return runtime


class _SkullStripInputSpec(_InFileSpec):
    method = traits.Enum(*SKULL_STRIP_METHODS, usedefault=True, desc="skull stripper")
    sloppy = traits.Bool(False, usedefault=True, desc="fast, coarse mode for tests")


class _SkullStripOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="brain-extracted image")
    out_mask = File(exists=True, desc="brain mask on the input grid")


class SkullStrip(SimpleInterface):
    """Brain extraction with deepbet (default), HD-BET, or none for stripped input."""

    input_spec = _SkullStripInputSpec
    output_spec = _SkullStripOutputSpec

    def _run_interface(self, runtime):
        from ..image import skull_strip

        brain, mask = skull_strip(
            self.inputs.in_file, runtime.cwd, method=self.inputs.method, sloppy=self.inputs.sloppy
        )
        self._results.update(out_file=str(brain), out_mask=str(mask))
        return runtime


class _N4InputSpec(_InFileSpec):
    mask_file = File(exists=True, mandatory=True, desc="brain mask")
    sloppy = traits.Bool(False, usedefault=True, desc="fast, coarse mode for tests")


class N4(SimpleInterface):
    """N4 bias-field correction inside the brain mask (antspyx)."""

    input_spec = _N4InputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        from ..image import n4_correct

        self._results["out_file"] = str(
            n4_correct(
                self.inputs.in_file,
                self.inputs.mask_file,
                f"{runtime.cwd}/n4.nii.gz",
                sloppy=self.inputs.sloppy,
            )
        )
        return runtime


class _ResampleInputSpec(_InFileSpec):
    interpolation = traits.Enum("linear", "nearest", usedefault=True, desc="interpolation")
    spacing = traits.Float(1.0, usedefault=True, desc="isotropic voxel size in mm")


class Resample(SimpleInterface):
    """Resample to isotropic spacing, keeping the field of view and world alignment."""

    input_spec = _ResampleInputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        from ..image import resample_to_1mm

        self._results["out_file"] = str(
            resample_to_1mm(
                self.inputs.in_file,
                f"{runtime.cwd}/resampled.nii.gz",
                interpolation=self.inputs.interpolation,
                spacing=self.inputs.spacing,
            )
        )
        return runtime


class _ClipScaleInputSpec(_InFileSpec):
    mask_file = File(exists=True, mandatory=True, desc="brain mask on the same grid")
    lower = traits.Float(CLIP_PERCENTILES[0], usedefault=True, desc="lower brain percentile")
    upper = traits.Float(CLIP_PERCENTILES[1], usedefault=True, desc="upper brain percentile")
    white_matter = traits.Float(
        WHITE_MATTER_LEVEL, usedefault=True, desc="level of the white matter after scaling"
    )


class ClipScale(SimpleInterface):
    """Clip at brain percentiles, scale to [0, 1] and anchor white matter; zero outside."""

    input_spec = _ClipScaleInputSpec
    output_spec = _OutFileSpec

    def _run_interface(self, runtime):
        import logging

        from ..image import clip_and_scale, scaling_problem_file

        out_file = clip_and_scale(
            self.inputs.in_file,
            self.inputs.mask_file,
            f"{runtime.cwd}/preproc.nii.gz",
            lower=self.inputs.lower,
            upper=self.inputs.upper,
            white_matter=self.inputs.white_matter,
        )
        problem = scaling_problem_file(out_file, self.inputs.mask_file)
        if problem:
            logging.getLogger("harmonize_bids").warning(
                "%s: %s; the preprocessed and harmonized images will be too dark. Check the "
                "brain mask (--skull-strip).",
                runtime.cwd,
                problem,
            )
        self._results["out_file"] = str(out_file)
        return runtime
