"""A study's pooled reference at one field (the target field's, or a scanner map's two
sides) as a nipype interface over image/reference.py."""

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

from ..choices import SKULL_STRIP_METHODS


class _TargetReferenceInputSpec(BaseInterfaceInputSpec):
    images = traits.List(File(), desc="raw T1w scans of other subjects at one field")
    sources = traits.List(traits.Str(), desc="how records name each scan (BIDS URIs)")
    field_strength = traits.Float(mandatory=True, desc="their field strength (T)")
    cache_dir = Directory(mandatory=True, desc="per-scan quantiles, shared across runs")
    skull_strip = traits.Enum(*SKULL_STRIP_METHODS, usedefault=True, desc="as for the inputs")
    sloppy = traits.Bool(False, usedefault=True, desc="tests only")
    spacing = traits.Float(1.0, usedefault=True, desc="grid, mm")
    lower = traits.Float(mandatory=True, desc="lower clipping percentile")
    upper = traits.Float(mandatory=True, desc="upper clipping percentile")
    white_matter = traits.Float(mandatory=True, desc="white-matter level")
    output_dir = Directory(desc="also publish the reference in OUTPUT_DIR (derivatives spec)")


class _TargetReferenceOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="the reference (JSON; Quantiles null if no scan was usable)")


class TargetReference(SimpleInterface):
    """Pool other subjects' scans at one field into a reference (quantiles, JSON)."""

    input_spec = _TargetReferenceInputSpec
    output_spec = _TargetReferenceOutputSpec

    def _run_interface(self, runtime):
        import json
        from pathlib import Path

        from ..atomic import write_text
        from ..derivatives import reference_file
        from ..image.reference import build_reference

        Path(self.inputs.cache_dir).mkdir(parents=True, exist_ok=True)
        reference, problems = build_reference(
            self.inputs.images,
            self.inputs.sources,
            self.inputs.field_strength,
            self.inputs.cache_dir,
            skull_strip=self.inputs.skull_strip,
            sloppy=self.inputs.sloppy,
            spacing=self.inputs.spacing,
            lower=self.inputs.lower,
            upper=self.inputs.upper,
            white_matter=self.inputs.white_matter,
        )
        doc = {"Quantiles": None} if reference is None else reference.to_json()
        doc["LeftOut"] = problems
        out_file = Path(runtime.cwd) / "reference.json"
        text = json.dumps(doc, indent=1) + "\n"
        write_text(out_file, text)
        if reference is not None and isdefined(self.inputs.output_dir):
            published = reference_file(reference.field_strength, reference.sha256)
            write_text(Path(self.inputs.output_dir) / published, text)
        self._results["out_file"] = str(out_file)
        return runtime
