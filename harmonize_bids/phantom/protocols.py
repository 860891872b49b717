"""Inversion-prepared 3D T1w protocols, and the paper's two (Durrer et al. 2023, Table 4).

One signal model covers the three vendors' sequences (Siemens MPRAGE, Philips 3D T1-TFE
with an inversion prepulse, GE IR-FSPGR / BRAVO): an adiabatic inversion, a train of
``train_length`` spoiled gradient echoes ``echo_spacing`` apart whose k-space-centre echo
is ``centre_fraction`` of the way through the train (0.5: linear ordering, near 0:
centric / low-high), then recovery until the next inversion ``repetition_time`` after
the last. ``inversion_time`` runs from the inversion to the k-space-centre echo.

The paper's protocols: echo spacing and train length are not in Table 4 and are chosen
here. The Siemens MPRAGE acquires all partitions (176 sagittal slices) of one
phase-encoding line after each inversion, in linear order, so the k-space centre is echo
88 of 176; echo spacing = readout (1 / pixel bandwidth) plus ~1-3 ms for excitation and
encoding: 1.5 T, 130 Hz/px -> 8.6 ms; 3 T, 240 Hz/px -> 7.1 ms (the ADNI Skyra value).
"""

from __future__ import annotations

from dataclasses import dataclass

#: How each family's sidecar names the sequence (BIDS / DICOM fields).
FAMILIES: dict[str, dict] = {
    'siemens-mprage': {
        'Manufacturer': 'Siemens',
        'ScanningSequence': 'GR\\IR',
        'SequenceVariant': 'SK\\SP\\MP',
        'SequenceName': '*tfl3d1',
        'PulseSequenceType': 'MPRAGE',
    },
    'philips-tfe': {
        'Manufacturer': 'Philips',
        'ScanningSequence': 'GR',
        'SequenceVariant': 'SP\\MP',
        'SequenceName': 'T1TFE',
        'PulseSequenceType': 'T1 TFE with inversion prepulse',
    },
    'ge-irspgr': {
        'Manufacturer': 'GE',
        'ScanningSequence': 'GR\\IR',
        'SequenceVariant': 'SS\\SK\\MP',
        'SequenceName': 'efgre3d',
        'PulseSequenceType': 'IR-FSPGR (BRAVO)',
    },
}


@dataclass(frozen=True)
class Protocol:
    """One inversion-prepared protocol. Times in ms, angles in degrees, lengths in mm."""

    field_strength: float  # nominal: 1.5 or 3.0 (selects the tissues' relaxation times)
    model: str
    software_version: str
    repetition_time: float  # inversion to inversion
    inversion_time: float  # inversion to the k-space-centre echo
    echo_time: float
    flip_angle: float
    pixel_bandwidth: float
    echo_spacing: float
    n_partitions: int  # slices of the stored 3D slab
    slice_thickness: float
    fov_read: float  # superior-inferior
    fov_phase: float  # anterior-posterior
    matrix_read: int
    matrix_phase: int
    inversion_efficiency: float = 0.96  # adiabatic inversion, as in Marques et al. 2010
    family: str = 'siemens-mprage'
    train_length: int | None = None  # echoes per inversion (default: n_partitions)
    centre_fraction: float = 0.5
    reported_field_strength: float | None = None  # what the console writes, e.g. 2.89

    @property
    def session(self) -> str:
        return '1p5T' if self.field_strength < 2 else '3T'

    @property
    def manufacturer(self) -> str:
        return FAMILIES[self.family]['Manufacturer']

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """(phase, read, slice) spacing in mm."""
        return (
            self.fov_phase / self.matrix_phase,
            self.fov_read / self.matrix_read,
            self.slice_thickness,
        )

    @property
    def echoes(self) -> int:
        """Echoes in one inversion's readout train."""
        return self.train_length or self.n_partitions

    @property
    def centre_echo(self) -> int:
        """Index of the k-space-centre excitation in the train."""
        return int(self.echoes * self.centre_fraction)

    def sidecar(self) -> dict:
        """BIDS sidecar fields (seconds, degrees), as each vendor's converter writes them.

        Siemens' RepetitionTime is the inversion-to-inversion time; Philips' and GE's is
        the echo spacing (their cycle time is not in the DICOM header).
        """
        names = FAMILIES[self.family]
        siemens = self.family == 'siemens-mprage'
        field = self.reported_field_strength or self.field_strength
        sidecar = {
            'Modality': 'MR',
            'MagneticFieldStrength': field,
            'Manufacturer': self.manufacturer,
            'ManufacturersModelName': self.model,
            'SoftwareVersions': self.software_version,
            'ReceiveCoilName': 'Head_32' if self.field_strength > 2 else 'HeadMatrix',
            'ScanningSequence': names['ScanningSequence'],
            'SequenceVariant': names['SequenceVariant'],
            'SequenceName': names['SequenceName'],
            'PulseSequenceType': names['PulseSequenceType'],
            'MRAcquisitionType': '3D',
            'RepetitionTime': (self.repetition_time if siemens else self.echo_spacing) / 1000.0,
        }
        if siemens:
            sidecar['RepetitionTimeExcitation'] = self.echo_spacing / 1000.0
        sidecar.update(
            {
                'InversionTime': self.inversion_time / 1000.0,
                'EchoTime': self.echo_time / 1000.0,
                'FlipAngle': self.flip_angle,
                'PixelBandwidth': self.pixel_bandwidth,
                'DwellTime': round(1.0 / (self.pixel_bandwidth * self.matrix_read), 9),
                'PulseSequenceDetails': self._details(),
                'CoilCombinationMethod': 'Adaptive Combine',
                'InstitutionName': 'harmonize_bids synthetic phantom',
                'StationName': f'phantom-{self.session}',  # pseudonyms, as BIDS allows
                'DeviceSerialNumber': f'PHANTOM-{self.session}',
                'PhaseEncodingDirection': 'i',
                'SliceThickness': self.slice_thickness,
                'AcquisitionMatrixPE': self.matrix_phase,
                'ReconMatrixPE': self.matrix_phase,
                'PercentPhaseFOV': round(100.0 * self.fov_phase / self.fov_read, 2),
                'ImageType': ['ORIGINAL', 'PRIMARY', 'M', 'ND', 'NORM'],
                'NonlinearGradientCorrection': False,
            }
        )
        return sidecar

    def _details(self) -> str:
        if self.family == 'siemens-mprage' and self.train_length is None:
            return (
                'Siemens product MPRAGE (tfl3d1), linear partition ordering, '
                f'{self.n_partitions} partitions per inversion, echo spacing '
                f'{self.echo_spacing} ms'
            )
        return (
            f'{FAMILIES[self.family]["PulseSequenceType"]}: {self.echoes} echoes per '
            f'inversion, k-space centre at {self.centre_fraction:.2f} of the train, '
            f'echo spacing {self.echo_spacing} ms, inversion every '
            f'{self.repetition_time:.0f} ms'
        )

    def timing_problem(self) -> str | None:
        """Why the readout does not fit between inversions (None if it does)."""
        before = self.inversion_time - self.centre_echo * self.echo_spacing
        after = self.repetition_time - before - self.echoes * self.echo_spacing
        if before <= 0 or after < 0:
            return (
                f'readout train of {self.echoes} x {self.echo_spacing} ms does not fit '
                f'TI {self.inversion_time} ms / TR {self.repetition_time} ms'
            )
        return None


PROTOCOLS: dict[float, Protocol] = {
    1.5: Protocol(
        field_strength=1.5,
        model='Magnetom Avanto',
        software_version='syngo MR B17',
        repetition_time=2080.0,
        inversion_time=1100.0,
        echo_time=3.1,
        flip_angle=15.0,
        pixel_bandwidth=130.0,
        echo_spacing=8.6,
        n_partitions=176,
        slice_thickness=1.0,
        fov_read=250.0,
        fov_phase=234.0,
        matrix_read=256,
        matrix_phase=240,
    ),
    3.0: Protocol(
        field_strength=3.0,
        model='Magnetom Skyra fit',
        software_version='syngo MR E11',
        repetition_time=2300.0,
        inversion_time=900.0,
        echo_time=2.94,
        flip_angle=9.0,
        pixel_bandwidth=240.0,
        echo_spacing=7.1,
        n_partitions=176,
        slice_thickness=1.0,
        fov_read=256.0,
        fov_phase=240.0,
        matrix_read=256,
        matrix_phase=240,
    ),
}
