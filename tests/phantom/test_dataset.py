"""BIDS structure, sidecars, ground truth and determinism of the phantom."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from harmonize_bids.cli.phantom import main
from harmonize_bids.phantom import write_phantom_dataset
from harmonize_bids.phantom.dataset import has_lesions

SESSIONS = {'1p5T': 1.5, '3T': 3.0}


def test_top_level_files(tiny_phantom):
    desc = json.loads((tiny_phantom / 'dataset_description.json').read_text())
    assert desc['BIDSVersion'] == '1.10.0' and desc['DatasetType'] == 'raw'
    assert desc['License'] and desc['GeneratedBy'][0]['Name']
    assert (tiny_phantom / 'README').is_file()
    rows = [
        r.split('\t') for r in (tiny_phantom / 'participants.tsv').read_text().split('\n') if r
    ]
    assert rows[0] == ['participant_id', 'age', 'sex', 'group']
    assert [r[3] for r in rows[1:]] == ['HC', 'MS']
    meta = json.loads((tiny_phantom / 'participants.json').read_text())
    assert set(meta) == {'participant_id', 'age', 'sex', 'group'}
    deriv = tiny_phantom / 'derivatives' / 'phantom'
    ddesc = json.loads((deriv / 'dataset_description.json').read_text())
    assert ddesc['DatasetType'] == 'derivative' and ddesc['GeneratedBy']
    assert (deriv / 'dseg.tsv').read_text().startswith('index\tname')


@pytest.mark.parametrize('ses', SESSIONS)
def test_sidecar_units(tiny_phantom, ses):
    side = json.loads(
        (tiny_phantom / f'sub-01/ses-{ses}/anat/sub-01_ses-{ses}_T1w.json').read_text()
    )
    assert side['MagneticFieldStrength'] == SESSIONS[ses]
    assert side['Manufacturer'] == 'Siemens' and side['ManufacturersModelName']
    assert side['MRAcquisitionType'] == '3D' and side['PulseSequenceType'] == 'MPRAGE'
    # Seconds and degrees.
    assert 1.5 < side['RepetitionTime'] < 2.5 and 0.8 < side['InversionTime'] < 1.2
    assert 0.002 < side['EchoTime'] < 0.004 and side['FlipAngle'] in (9.0, 15.0)


@pytest.mark.parametrize('sub', ['01', '02'])
@pytest.mark.parametrize('ses', SESSIONS)
def test_ground_truth_aligned(tiny_phantom, sub, ses):
    raw = nib.load(tiny_phantom / f'sub-{sub}/ses-{ses}/anat/sub-{sub}_ses-{ses}_T1w.nii.gz')
    assert raw.get_data_dtype() == np.int16
    assert nib.aff2axcodes(raw.affine) != ('R', 'A', 'S')  # stored like a sagittal scan
    deriv = tiny_phantom / f'derivatives/phantom/sub-{sub}/ses-{ses}/anat'
    dseg = nib.load(deriv / f'sub-{sub}_ses-{ses}_dseg.nii.gz')
    mask = nib.load(deriv / f'sub-{sub}_ses-{ses}_desc-brain_mask.nii.gz')
    for img in (dseg, mask):
        assert img.shape == raw.shape and np.allclose(img.affine, raw.affine)
    labels = np.asarray(dseg.dataobj)
    assert set(np.unique(labels)) >= {0, 1, 2, 3}
    assert np.array_equal(labels > 0, np.asarray(mask.dataobj) > 0)
    data = np.asarray(raw.dataobj)
    # T1w: WM brighter than GM brighter than CSF inside the labelled brain.
    med = [np.median(data[labels == k]) for k in (1, 2, 3)]
    assert med[0] < med[1] < med[2]
    lesion_file = deriv / f'sub-{sub}_ses-{ses}_label-lesion_mask.nii.gz'
    if sub == '01':  # HC
        assert not lesion_file.exists() and not (labels == 4).any()
    else:
        assert lesion_file.exists() and (labels == 4).sum() > 0
        assert np.array_equal(np.asarray(nib.load(lesion_file).dataobj) > 0, labels == 4)


def test_sessions_have_different_pose(tiny_phantom):
    a, b = (
        np.asarray(
            nib.load(
                tiny_phantom / f'derivatives/phantom/sub-01/ses-{s}/anat/'
                f'sub-01_ses-{s}_desc-brain_mask.nii.gz'
            ).dataobj
        )
        for s in SESSIONS
    )
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_lesion_fraction_is_deterministic_and_spread():
    assert [has_lesions(i, 0.5) for i in range(4)] == [False, True, False, True]
    assert all(has_lesions(i, 1.0) for i in range(5))
    assert not any(has_lesions(i, 0.0) for i in range(5))


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_phantom_dataset(tmp_path / 'a', n_subjects=1, seed=3, size='tiny')
    b = write_phantom_dataset(tmp_path / 'b', n_subjects=1, seed=3, size='tiny')
    c = write_phantom_dataset(tmp_path / 'c', n_subjects=1, seed=4, size='tiny')
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    t1w = next(k for k in fa if k.name.endswith('_T1w.nii.gz'))
    assert fa[t1w] != fc[t1w]


def test_cli_returns_zero(tmp_path):
    assert (
        main(
            [
                str(tmp_path / 'cli'),
                '--subjects',
                '1',
                '--seed',
                '1',
                '--size',
                'tiny',
                '--lesions',
            ]
        )
        == 0
    )
    assert (
        tmp_path / 'cli/derivatives/phantom/sub-01/ses-3T/anat/'
        'sub-01_ses-3T_label-lesion_mask.nii.gz'
    ).is_file()
    assert main([str(tmp_path / 'bad'), '--subjects', '0']) == 1


VALIDATOR = shutil.which('bids-validator-deno', path=str(Path(sys.executable).parent))


@pytest.mark.skipif(VALIDATOR is None, reason='bids-validator-deno not installed')
@pytest.mark.parametrize('sub', ['', 'derivatives/phantom'])
def test_bids_validator(tiny_phantom, sub):
    res = subprocess.run(
        [VALIDATOR, '--json', str(tiny_phantom / sub)], capture_output=True, text=True, timeout=120
    )
    issues = json.loads(res.stdout)['issues']['issues']
    errors = [i for i in issues if i.get('severity') == 'error']
    assert not errors, errors[:3]
