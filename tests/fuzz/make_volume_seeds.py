#!/usr/bin/python3
"""Regenerates tests/fuzz/seeds/volume/: small NIfTI-1 files (.nii, header + voxels), written
field by field from the NIfTI-1 standard (nifti1.h) so that no NIfTI library is needed."""
import os
import struct


def nifti(dims, datatype, bitpix, voxels, pixdim, sform=None, qform=None, slope=0.0):
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    struct.pack_into("<hh", header, 70, datatype, bitpix)
    struct.pack_into("<8f", header, 76, 1.0, *pixdim, *([1.0] * (7 - len(pixdim))))
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<ff", header, 112, slope, 0.0)
    struct.pack_into("<B", header, 123, 2 | 8)  # xyzt_units: mm, s
    if qform:
        struct.pack_into("<h", header, 252, 1)
        struct.pack_into("<6f", header, 256, *qform)
    if sform:
        struct.pack_into("<h", header, 254, 1)
        struct.pack_into("<12f", header, 280, *sform)
    header[344:348] = b"n+1\0"
    return bytes(header) + b"\0" * 4 + voxels


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "volume")
    os.makedirs(out, exist_ok=True)
    float_voxels = struct.pack("<256f", *[float(i % 17) for i in range(256)])
    seeds = {
        "float_sform.nii": nifti([8, 8, 4], 16, 32, float_voxels, [1.0, 1.0, 2.5],
                                 sform=[-1, 0, 0, 4, 0, 1, 0, -4, 0, 0, 2.5, 0]),
        "uint8_qform_oblique.nii": nifti([8, 8, 4], 2, 8, bytes(range(256)), [0.9, 0.9, 3.0],
                                         qform=[0.1, 0.2, 0.05, 1.0, -2.0, 3.0], slope=2.0),
        "int16_4d.nii": nifti([8, 8, 2, 3], 4, 16, struct.pack("<384h", *range(384)), [2.0, 2.0, 4.0, 1.5],
                              sform=[2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 4, 0]),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
