"""The choices a user makes, each named once: fields, directions, samplers, skull strippers.

Light on purpose (no heavy imports), so the command line can offer them without loading
torch or nipype.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Field strengths the app knows, in Tesla.
SUPPORTED_FIELDS = (1.5, 3.0)
#: ``ddpm`` the paper's 1000 ancestral steps; ``ddim`` / ``dpm`` deterministic few-step.
SAMPLERS = ("ddpm", "ddim", "dpm")
DEFAULT_SAMPLER = "dpm"
DEFAULT_STEPS = 2
#: Slice planes a 2D model can be applied along, with their axis in a RAS+ array. Each
#: plane's output has its own stripes across its slices; averaging planes spreads them out.
SLICE_PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}
DEFAULT_SLICE_PLANES = ("sagittal",)
#: Smooth the slow brightness changes between an output's slices (image.destripe).
DEFAULT_EVEN_OUT_SLICES = False
#: Match the output through the study's own scanner map (other participants scanned at
#: both fields): ``auto`` where it is offered and the dataset has enough such participants,
#: ``on`` (refused where it is not offered), ``off``. Needs that many, uses at most so many.
DEFAULT_SCANNER_MAP = "auto"
SCANNER_MAP_SUBJECTS_MIN, SCANNER_MAP_SUBJECTS_MAX = 5, 8
#: The target fields it is offered for: where design sets showed it helps (1.5 T -> 3 T).
SCANNER_MAP_TARGET_FIELDS = (3.0,)
SKULL_STRIP_METHODS = ("deepbet", "hdbet", "none")
#: How a travelling subject's target scan is brought onto its source scan's grid (training
#: pairs; the group level always registers rigidly): ANTs rigid, ANTs affine then SyN, or
#: scanner coordinates alone.
REGISTRATIONS = ("rigid", "syn", "none")
DEFAULT_REGISTRATION = "rigid"


def scanner_map_planned(mode: str, target_field: float) -> bool:
    """Whether a run towards ``target_field`` looks for a scanner map (``--scanner-map``)."""
    return mode == "on" or (mode == "auto" and target_field in SCANNER_MAP_TARGET_FIELDS)


def field_label(field_strength: float) -> str:
    """``1.5 -> '1p5T'``, ``3.0 -> '3T'``: the field in names (sessions, folders)."""
    return f"{field_strength:g}T".replace(".", "p")


@dataclass(frozen=True)
class Direction:
    """A harmonization direction: from ``source`` to ``target`` field (Tesla)."""

    source: float
    target: float

    @property
    def label(self) -> str:
        """For people and records: ``'1.5T->3T'``."""
        return f"{self.source:g}T->{self.target:g}T"

    @property
    def slug(self) -> str:
        """For file and folder names: ``'1p5T-to-3T'`` (the bundled model folders)."""
        return f"{field_label(self.source)}-to-{field_label(self.target)}"

    @classmethod
    def from_slug(cls, slug: str) -> Direction:
        source, target = slug.split("-to-")
        return cls(*(float(part.removesuffix("T").replace("p", ".")) for part in (source, target)))

    def __str__(self) -> str:
        return self.label
