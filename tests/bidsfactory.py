"""Small BIDS datasets built on the fly for the tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np


def write_image(
    path: Path,
    *,
    sidecar: dict | None = None,
    shape=(40, 44, 36),
    data: np.ndarray | None = None,
    voxel_mm: float = 2.0,
) -> Path:
    """A small int16 NIfTI image (a bright block on a dark background) and its sidecar.

    Few voxels, but ``voxel_mm`` makes the field of view one that could hold a brain
    (harmonize_bids.bids.MIN_FIELD_OF_VIEW_MM), as discovery requires.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if data is None:
        data = np.zeros(shape, np.int16)
        data[8:-8, 8:-8, 8:-8] = 800
    image = nib.Nifti1Image(data, np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0]))
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)
    if sidecar is not None:
        json_path = path.with_name(path.name.replace(".nii.gz", ".json").replace(".nii", ".json"))
        json_path.write_text(json.dumps(sidecar))
    return path


def make_bids(
    root: Path, images: dict[str, dict | None], *, top_level_t1w: dict | None = None
) -> Path:
    """A BIDS dataset; `images` maps 'sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz' to a sidecar."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps(
            {
                "Name": "test dataset",
                "BIDSVersion": "1.10.0",
                "DatasetType": "raw",
                "License": "CC0",
                "Authors": ["A. Tester", "B. Tester"],
            }
        )
    )
    (root / "README").write_text("A small dataset made by the harmonize_bids tests.\n")
    subjects = sorted({name.split("/")[0] for name in images})
    (root / "participants.tsv").write_text(
        "participant_id\n" + "".join(f"{subject}\n" for subject in subjects)
    )
    if top_level_t1w is not None:
        (root / "T1w.json").write_text(json.dumps(top_level_t1w))
    for name, sidecar in images.items():
        write_image(root / name, sidecar=sidecar)
    return root


SIDECAR_15 = {"MagneticFieldStrength": 1.5}
SIDECAR_3 = {"MagneticFieldStrength": 3}


def tiny_model(folder: Path, *, seed: int = 1) -> Path:
    """A real (tiny) 1.5T->3T network with random weights: tests wiring, never shipped."""
    from harmonize_bids.model.folder import new_model, save_model_folder

    return save_model_folder(
        new_model("sloppy", source_field=1.5, target_field=3.0, seed=seed),
        folder / "tiny-1p5T-to-3T",
    )


def linear_plugin(folder: Path) -> Path:
    """A nipype plugin file for the Linear plugin (fast, in-process: for tests)."""
    plugin = folder / "linear.yml"
    plugin.write_text("plugin: Linear\n")
    return plugin


def reference_model(folder: Path, *, seed: int = 1) -> Path:
    """A tiny reference-conditioned 1.5T->3T network with random weights and a default
    reference (reference.json): tests wiring, never shipped."""
    from harmonize_bids.image.reference import LEVELS, TargetReference
    from harmonize_bids.model.folder import new_model, save_model_folder

    model = new_model(
        "sloppy", reference_channel=True, source_field=1.5, target_field=3.0, seed=seed
    )
    quantiles = np.linspace(0.05, 0.95, LEVELS)
    model.reference = TargetReference(
        3.0, quantiles, ["training scans"], "model default"
    ).to_json()
    return save_model_folder(model, folder / "tiny-reference-1p5T-to-3T")


def unreadable_file_prefix() -> list[str]:
    """A command prefix under which a file with mode 000 cannot be read.

    Nothing for an ordinary user. Root reads any file through CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH, so for root the command runs under setpriv without them (CI
    runs as root). Skips the test when neither is possible here.
    """
    import os
    import shutil
    import subprocess

    import pytest

    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: root reads a file with mode 000")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.strip()}")
    return prefix


def travelling_bids(root: Path, subjects: tuple[str, ...]) -> Path:
    """Each subject scanned at 1.5 T (session A) and at 3 T (session B)."""
    return make_bids(
        root,
        {
            f"sub-{s}/ses-{ses}/anat/sub-{s}_ses-{ses}_T1w.nii.gz": sidecar
            for s in subjects
            for ses, sidecar in (("A", SIDECAR_15), ("B", SIDECAR_3))
        },
    )


def harmonization_records(bids: Path, out: Path, model: Path, plugin: Path, *extra: str) -> dict:
    """A sloppy participant run of a travelling dataset (it must succeed): each subject's
    session-A sidecar `Harmonization` object, by `sub-XX`."""
    from harmonize_bids.cli.run import main

    code = main(
        [
            str(bids),
            str(out),
            "participant",
            "--model",
            str(model),
            "--sloppy",
            "--skull-strip",
            "none",
            "--skip-bids-validation",
            "--use-plugin",
            str(plugin),
            "-w",
            str(out.with_name(out.name + "_work")),
            *extra,
        ]
    )
    assert code == 0
    sidecars = sorted(out.glob("sub-*/ses-A/anat/*_desc-harmonized_T1w.json"))
    return {
        path.name.split("_")[0]: json.loads(path.read_text())["Harmonization"] for path in sidecars
    }
