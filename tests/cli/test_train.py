"""harmonize-bids-train on a tiny travelling-subject dataset."""

from __future__ import annotations

import json

import pytest
from bidsfactory import SIDECAR_3, SIDECAR_15, make_bids

from harmonize_bids.cli.train import main
from harmonize_bids.model.folder import ModelFolderError, load_model_folder

pytestmark = pytest.mark.slow


def _train(*argv) -> int:
    return main([str(arg) for arg in argv])


def test_train_writes_a_loadable_model_and_resumes(travelling_dataset, tmp_path):
    model_dir = tmp_path / "model"
    common = [
        travelling_dataset,
        model_dir,
        "--source-field",
        "1.5",
        "--target-field",
        "3",
        "--sloppy",
        "--skull-strip",
        "none",
        "--batch-size",
        "2",
        "--checkpoint-every",
        "2",
        "--seed",
        "3",
    ]
    assert _train(*common, "--iterations", "2") == 0
    model = load_model_folder(model_dir, source_field=1.5, target_field=3.0)
    assert model.meta["iterations"] == 2
    assert model.meta["training_data"]["subjects"] == ["sub-01", "sub-02"]
    assert model.meta["training"]["lesion_weight"] == 1.0  # no --lesion-masks: no weighting
    # the default 4-fold cross-validation, capped at the 2 subjects: one fold each
    cv = model.meta["training_data"]["cross_validation"]
    assert cv["folds"] == 2 and set(cv["means"]) == {
        "Original",
        "Histogram matching",
        "Paired quantile map",
        "Model",
    }
    assert "histogram matching" in cv["verdict"]
    rows = (model_dir / "cross_validation.tsv").read_text().splitlines()
    assert rows[0].startswith("participant_id\tfold\tmethod\tmse") and len(rows) == 1 + 2 * 4
    assert "Verdict" in (model_dir / "cross_validation.html").read_text()
    with pytest.raises(ModelFolderError, match="direction"):
        load_model_folder(model_dir, source_field=3.0, target_field=1.5)
    assert _train(*common, "--iterations", "4", "--resume") == 0
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["iterations"] == 4
    assert (tmp_path / "model.work" / "pairs" / "sub-01" / "pair_1p5T-to-3T.json").is_file()
    tuned_dir = tmp_path / "tuned"
    assert (
        _train(
            *common[:1],
            tuned_dir,
            *common[2:],
            "--iterations",
            "2",
            "--init-from",
            model_dir,
            "-w",
            tmp_path / "model.work",
            "--calibrate-output",
        )
        == 0
    )
    tuned = json.loads((tuned_dir / "model.json").read_text())
    assert tuned["fine_tuned_from"]["weights_sha256"] == meta["weights_sha256"]
    # the folds are measured with and without their calibration
    cv = tuned["training_data"]["cross_validation"]
    assert set(cv["means"]) == {
        "Original",
        "Histogram matching",
        "Paired quantile map",
        "Model",
        "Model without output calibration",
    }
    assert len((tuned_dir / "cross_validation.tsv").read_text().splitlines()) == 1 + 2 * 5
    assert "Model without output calibration" in (tuned_dir / "cross_validation.html").read_text()
    # the final model's calibration is fitted on every pair, each fold's on its own pair
    assert load_model_folder(tuned_dir).calibration.subjects == ("sub-01", "sub-02")
    folds = sorted((tmp_path / "model.work" / "cv-1p5T-to-3T").glob("fold-*/model"))
    assert [load_model_folder(f).calibration.subjects for f in folds] == [
        ("sub-02",),
        ("sub-01",),
    ]


def test_init_from_must_be_a_model_of_the_direction(travelling_dataset, tmp_path, capsys):
    common = [
        travelling_dataset,
        tmp_path / "model",
        "--source-field",
        "3",
        "--target-field",
        "1.5",
        "--sloppy",
        "--skull-strip",
        "none",
    ]
    assert _train(*common, "--init-from", tmp_path / "missing") == 66
    assert "--init-from" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_init_from_bundled_is_the_packaged_model_of_the_direction():
    from harmonize_bids.choices import Direction
    from harmonize_bids.cli.train import parse_args
    from harmonize_bids.model.folder import bundled_model_dir
    from harmonize_bids.training import initial_model

    options = parse_args(
        ["bids", "model", "--source-field", "3", "--target-field", "1.5", "--init-from", "bundled"]
    )
    model = initial_model(options.init_from, Direction(options.source_field, options.target_field))
    assert model.path == bundled_model_dir(3.0, 1.5) and model.direction == "3T->1.5T"


def test_pairs_with_a_broken_intensity_scale_are_left_out(travelling_dataset, tmp_path, capsys):
    import nibabel as nib
    import numpy as np

    model_dir, work = tmp_path / "model", tmp_path / "work"
    common = [
        travelling_dataset,
        model_dir,
        "--source-field",
        "1.5",
        "--target-field",
        "3",
        "--sloppy",
        "--skull-strip",
        "none",
        "--batch-size",
        "2",
        "--iterations",
        "1",
        "-w",
        work,
    ]
    assert _train(*common, "--prepare-only") == 0

    # sub-02's target as if something brighter than white matter had set its scale
    def darken_target(subject: str) -> None:
        record = json.loads((work / "pairs" / subject / "pair_1p5T-to-3T.json").read_text())
        image = nib.load(record["target"])
        darkened = np.asanyarray(image.dataobj) * 0.5
        nib.save(nib.Nifti1Image(darkened.astype(np.float32), image.affine), record["target"])

    darken_target("sub-02")
    assert _train(*common) == 0
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["training_data"]["subjects"] == ["sub-01"]
    assert "sub-02 target" in meta["training_data"]["excluded"]["sub-02"]
    assert "Leaving sub-02 out of training" in capsys.readouterr().err
    assert _train(*common, "--keep-all-pairs") == 0
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["training_data"]["subjects"] == ["sub-01", "sub-02"]
    assert "excluded" not in meta["training_data"]
    darken_target("sub-01")
    assert _train(*common) == 66
    assert "No prepared pair passed the intensity check" in capsys.readouterr().err


def test_train_refuses_unpaired_subjects(tmp_path, capsys):
    root = make_bids(
        tmp_path / "bids",
        {
            "sub-01/ses-A/anat/sub-01_ses-A_T1w.nii.gz": SIDECAR_15,
            "sub-01/ses-B/anat/sub-01_ses-B_T1w.nii.gz": SIDECAR_3,
            "sub-02/ses-A/anat/sub-02_ses-A_T1w.nii.gz": SIDECAR_15,
        },
    )
    code = _train(root, tmp_path / "model", "--source-field", "1.5", "--target-field", "3")
    assert code == 66
    assert "sub-02 (no 3 T image)" in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


def test_train_usage_errors(travelling_dataset, tmp_path, capsys):
    assert (
        _train(travelling_dataset, tmp_path / "m", "--source-field", "3", "--target-field", "3")
        == 64
    )
    assert _train(travelling_dataset, tmp_path / "m", "--target-field", "3") == 64
    assert "--source-field" in capsys.readouterr().err


def test_model_json_records_phantom_seeds(tmp_path):
    from harmonize_bids.bids import discover_t1w, load_layout, pair_sessions
    from harmonize_bids.phantom import write_phantom_dataset
    from harmonize_bids.training import describe_training_data

    bids = write_phantom_dataset(
        tmp_path / "phantom", n_subjects=2, seed=41, size="tiny", lesion_fraction=0.5
    )
    images = discover_t1w(load_layout(bids)).images
    pairs = pair_sessions(images, source_field=1.5, target_field=3.0)
    phantom = describe_training_data(bids, pairs)["phantom"]
    assert phantom["dataset_seeds"] == [41]
    assert phantom["subjects"]["sub-02"]["seed"] == [41, 1]
    assert phantom["n_with_lesions"] == 1
    assert describe_training_data(tmp_path, []).get("phantom") is None


def _lesion_mask(derivatives, subject: str, session: str, t1w, name="label-lesion"):
    import nibabel as nib
    import numpy as np

    image = nib.load(t1w)
    lesion = np.zeros(image.shape, np.uint8)
    centre = tuple(n // 2 for n in image.shape)
    lesion[tuple(slice(c - 2, c + 2) for c in centre)] = 1
    anat = derivatives / f"sub-{subject}" / f"ses-{session}" / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    path = anat / f"sub-{subject}_ses-{session}_{name}_mask.nii.gz"
    nib.save(nib.Nifti1Image(lesion, image.affine), path)
    return path


def test_lesion_masks_weight_the_loss_and_are_recorded(travelling_dataset, tmp_path, capsys):
    derivatives = tmp_path / "lesions"
    t1w = travelling_dataset / "sub-01" / "ses-A" / "anat" / "sub-01_ses-A_T1w.nii.gz"
    _lesion_mask(derivatives, "01", "A", t1w)
    common = [
        travelling_dataset,
        tmp_path / "model",
        "--source-field",
        "1.5",
        "--target-field",
        "3",
        "--sloppy",
        "--skull-strip",
        "none",
        "--batch-size",
        "2",
        "--iterations",
        "1",
        "-w",
        tmp_path / "work",
    ]
    assert _train(*common, "--lesion-masks", derivatives, "--lesion-weight", "5") == 0
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["training_data"]["lesion_masks"] == 1
    assert meta["training_data"]["lesion_voxels"] > 0
    assert meta["training"]["lesion_weight"] == 5.0
    assert "Lesion masks for 1 of 2 training pair(s)" in capsys.readouterr().err

    assert _train(*common, "--lesion-masks", tmp_path / "missing") == 66
    assert "--lesion-masks" in capsys.readouterr().err
    assert _train(*common, "--lesion-masks", derivatives, "--lesion-weight", "0.5") == 64
    assert "--lesion-weight" in capsys.readouterr().err
    _lesion_mask(derivatives, "01", "A", t1w, name="desc-manual_label-lesion")
    assert _train(*common, "--lesion-masks", derivatives) == 64
    assert "2 lesion masks for sub-01_ses-A_T1w.nii.gz" in capsys.readouterr().err


def test_find_lesion_mask_without_sessions(tmp_path):
    from harmonize_bids.bids import T1wImage
    from harmonize_bids.training_data import find_lesion_mask

    image = T1wImage(tmp_path / "sub-07_T1w.nii.gz", "07", None, None, None, 3.0, "sidecar")
    assert find_lesion_mask(tmp_path, image) is None
    anat = tmp_path / "sub-07" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-07_space-T1w_label-lesion_mask.nii.gz").touch()
    assert find_lesion_mask(tmp_path, image) == anat / "sub-07_space-T1w_label-lesion_mask.nii.gz"
