"""Group level discovery: participant outputs through the derivatives spec, raw sidecars
by BIDS inheritance."""

from __future__ import annotations

import json

from harmonize_bids.qc.discovery import raw_sidecar


def test_raw_sidecar_follows_inheritance_without_images(tmp_path):
    (tmp_path / "sub-01/ses-A/anat").mkdir(parents=True)
    (tmp_path / "T1w.json").write_text(
        json.dumps({"MagneticFieldStrength": 3, "Manufacturer": "Siemens"})
    )
    (tmp_path / "sub-01/sub-01_acq-fast_T1w.json").write_text(
        json.dumps({"MagneticFieldStrength": 2.89})
    )  # another acquisition: must not apply
    (tmp_path / "sub-01/ses-A/sub-01_ses-A_T1w.json").write_text(
        json.dumps({"MagneticFieldStrength": 1.5})
    )
    (tmp_path / "sub-01/ses-A/anat/sub-01_ses-A_run-1_T1w.json").write_text(
        json.dumps({"EchoTime": 0.003})
    )
    meta = raw_sidecar(tmp_path, {"subject": "01", "session": "A", "run": "1"})
    assert meta == {"MagneticFieldStrength": 1.5, "Manufacturer": "Siemens", "EchoTime": 0.003}
    assert raw_sidecar(tmp_path, {"subject": "01", "session": "B"})["MagneticFieldStrength"] == 3


def test_participant_outputs_name_what_is_missing(tmp_path):
    from harmonize_bids.derivatives import derivative_path
    from harmonize_bids.qc.discovery import find_participant_outputs

    for subject, kinds in (("01", ("preproc", "mask", "harmonized")), ("02", ("preproc",))):
        for kind in kinds:
            path = tmp_path / derivative_path({"subject": subject, "session": "A"}, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    images = find_participant_outputs(tmp_path)
    assert [(image.stem, image.missing) for image in images] == [
        ("sub-01_ses-A", []),
        ("sub-02_ses-A", ["desc-brain_mask", "desc-harmonized_T1w"]),
    ]
    (only,) = find_participant_outputs(tmp_path, participant_labels=["sub-02"])
    assert only.subject == "02" and only.session == "A"
