"""Field-dependent relaxation times and proton densities of the phantom's tissues.

T1 and T2* in ms, proton density (PD) relative to pure water. Values are taken from the
literature as cited beside them and are not tuned to produce any particular contrast.

Sources
  Lu et al., JMRI 22:13-22 (2005): in vivo T1 of cortical GM, frontal WM and CSF in the
    same ten subjects at 1.5 T and 3 T.
  Peters et al., MRI 25:748-753 (2007): in vivo T2* of GM and WM at 1.5 T, 3 T and 7 T.
  Neeb et al., NeuroImage 31:1156-1168 (2006): water content of WM (~0.69) and GM (~0.80).
  Vrenken et al., Radiology 240:811-820 (2006): whole-brain T1 mapping in MS at 1.5 T;
    T1-hypointense lesions ~1.1-1.3 s. The 3 T lesion T1 is the 1.5 T value scaled by the
    WM ratio of Lu et al. (838 / 646), an assumption, as no paired source was at hand.
  de Bazelaire et al., Radiology 230:652-659 (2004): subcutaneous fat and bone marrow T1
    at 1.5 T and 3 T.
  Stanisz et al., MRM 54:507-512 (2005): skeletal muscle T1 at 1.5 T and 3 T.
  Du et al., JMR 207:304-311 (2010) / Reichert et al., MRI 23:611-618 (2005): cortical bone
    T2* ~0.4-0.5 ms, bound+pore water content ~15-25 %.
Muscle/skin, fat and CSF T2* are rough (tens to hundreds of ms); at TE ~3 ms they change
signals by a few percent only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tissue:
    name: str
    t1: dict[float, float]
    t2star: dict[float, float]
    pd: float


TISSUES: dict[str, Tissue] = {
    # Lu 2005 (T1), Peters 2007 does not cover CSF: long T2* assumed.
    'csf': Tissue('csf', t1={1.5: 4070.0, 3.0: 4163.0}, t2star={1.5: 400.0, 3.0: 300.0}, pd=1.0),
    'gm': Tissue('gm', t1={1.5: 1197.0, 3.0: 1607.0}, t2star={1.5: 84.0, 3.0: 66.0}, pd=0.80),
    'wm': Tissue('wm', t1={1.5: 646.0, 3.0: 838.0}, t2star={1.5: 66.2, 3.0: 53.2}, pd=0.69),
    # Vrenken 2006 (1.5 T); 3 T scaled by the WM field ratio; PD and T2* raised by oedema /
    # demyelination (water content between WM and GM, T2* ~1.3x WM).
    'lesion': Tissue(
        'lesion', t1={1.5: 1200.0, 3.0: 1557.0}, t2star={1.5: 86.0, 3.0: 69.0}, pd=0.78
    ),
    # de Bazelaire 2004 (subcutaneous fat); fat PD ~0.9 of water protons.
    'fat': Tissue('fat', t1={1.5: 343.0, 3.0: 382.0}, t2star={1.5: 40.0, 3.0: 30.0}, pd=0.90),
    # Stanisz 2005 (skeletal muscle), used for galea/muscle and skin.
    'muscle': Tissue(
        'muscle', t1={1.5: 1008.0, 3.0: 1412.0}, t2star={1.5: 30.0, 3.0: 25.0}, pd=0.75
    ),
    # de Bazelaire 2004 (bone marrow): fatty diploe of the skull.
    'marrow': Tissue(
        'marrow', t1={1.5: 549.0, 3.0: 586.0}, t2star={1.5: 15.0, 3.0: 10.0}, pd=0.80
    ),
    # Du 2010 / Reichert 2005: cortical bone, ultrashort T2*, little water.
    'bone': Tissue('bone', t1={1.5: 200.0, 3.0: 250.0}, t2star={1.5: 0.5, 3.0: 0.4}, pd=0.20),
}

# Labels of the ground-truth segmentation (dseg).
DSEG_LABELS: dict[int, str] = {1: 'CSF', 2: 'GM', 3: 'WM', 4: 'lesion'}
BRAIN_TISSUES: tuple[str, ...] = ('csf', 'gm', 'wm', 'lesion')
