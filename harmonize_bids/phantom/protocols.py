"""Scanner protocols of the paper's travelling-subject data (Durrer et al. 2023, Table 4).

Echo spacing and readout train length are not in Table 4; they are chosen here:

* The Siemens MPRAGE acquires all partitions (176 sagittal slices) of one phase-encoding
  line after each inversion, in linear order, so the k-space centre is echo 88 of 176.
  (This is why a 240-line MPRAGE at TR 2300 ms takes 240 x 2.3 s = 9:12 min.)
* Echo spacing = readout duration (1 / pixel bandwidth) plus ~1-3 ms for the excitation
  pulse and encoding gradients: 1.5 T, 130 Hz/px -> 7.7 ms readout -> 8.6 ms spacing;
  3 T, 240 Hz/px -> 4.2 ms readout -> 7.1 ms spacing (the ADNI Skyra value).
* Both trains fit their TR: 1.5 T 343-1857 ms after the inversion (TR 2080 ms);
  3 T 275-1525 ms (TR 2300 ms).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    """One MPRAGE protocol. Times in ms, angles in degrees, lengths in mm."""

    field_strength: float
    manufacturer: str
    model: str
    software_version: str
    repetition_time: float
    inversion_time: float
    echo_time: float
    flip_angle: float
    pixel_bandwidth: float
    echo_spacing: float
    n_partitions: int
    slice_thickness: float
    fov_read: float  # superior-inferior
    fov_phase: float  # anterior-posterior
    matrix_read: int
    matrix_phase: int
    inversion_efficiency: float = 0.96  # adiabatic inversion, as in Marques et al. 2010

    @property
    def session(self) -> str:
        return '1p5T' if self.field_strength < 2 else '3T'

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        """(phase, read, slice) spacing in mm."""
        return (self.fov_phase / self.matrix_phase, self.fov_read / self.matrix_read,
                self.slice_thickness)

    @property
    def centre_echo(self) -> int:
        """Index of the k-space-centre excitation in the train (linear ordering)."""
        return self.n_partitions // 2

    def sidecar(self) -> dict:
        """BIDS sidecar fields (seconds, degrees)."""
        return {
            'Modality': 'MR',
            'MagneticFieldStrength': self.field_strength,
            'Manufacturer': self.manufacturer,
            'ManufacturersModelName': self.model,
            'SoftwareVersions': self.software_version,
            'ReceiveCoilName': 'Head_32' if self.field_strength > 2 else 'HeadMatrix',
            'ScanningSequence': 'GR\\IR',
            'SequenceVariant': 'SK\\SP\\MP',
            'SequenceName': '*tfl3d1',
            'PulseSequenceType': 'MPRAGE',
            'MRAcquisitionType': '3D',
            'RepetitionTime': self.repetition_time / 1000.0,
            'RepetitionTimeExcitation': self.echo_spacing / 1000.0,
            'InversionTime': self.inversion_time / 1000.0,
            'EchoTime': self.echo_time / 1000.0,
            'FlipAngle': self.flip_angle,
            'PixelBandwidth': self.pixel_bandwidth,
            'DwellTime': round(1.0 / (self.pixel_bandwidth * self.matrix_read), 9),
            'PulseSequenceDetails': 'Siemens product MPRAGE (tfl3d1), linear partition '
                                    f'ordering, {self.n_partitions} partitions per inversion, '
                                    f'echo spacing {self.echo_spacing} ms',
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


PROTOCOLS: dict[float, Protocol] = {
    1.5: Protocol(
        field_strength=1.5, manufacturer='Siemens', model='Magnetom Avanto',
        software_version='syngo MR B17', repetition_time=2080.0, inversion_time=1100.0,
        echo_time=3.1, flip_angle=15.0, pixel_bandwidth=130.0, echo_spacing=8.6,
        n_partitions=176, slice_thickness=1.0, fov_read=250.0, fov_phase=234.0,
        matrix_read=256, matrix_phase=240),
    3.0: Protocol(
        field_strength=3.0, manufacturer='Siemens', model='Magnetom Skyra fit',
        software_version='syngo MR E11', repetition_time=2300.0, inversion_time=900.0,
        echo_time=2.94, flip_angle=9.0, pixel_bandwidth=240.0, echo_spacing=7.1,
        n_partitions=176, slice_thickness=1.0, fov_read=256.0, fov_phase=240.0,
        matrix_read=256, matrix_phase=240),
}
