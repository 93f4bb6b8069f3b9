"""efcnet.fuse_volume / fuse_volume_dirs: the same bytes as `efcnet fuse`, its refusals, progress."""
import numpy as np
import pytest

import efcnet
from conftest import NETWORK_WEIGHTS, SEEM_WEIGHTS, THREADS


@pytest.fixture(scope="module")
def volume_pair(run_cli, tmp_path_factory):
    """The CLI's phantom volume pair: small, on two grids and voxel orders."""
    directory = tmp_path_factory.mktemp("phantom")
    run_cli("phantom", "--volume", "--size", 48, "--slices", 6, "--out-dir", directory)
    return directory / "anatomical.nii.gz", directory / "functional.nii.gz"


def test_fuse_volume_equals_the_cli_byte_for_byte(golden, volume_pair, run_cli, tmp_path):
    anatomical, functional = volume_pair
    options = ["--colormap", "hot-iron", "--functional-window", "0:900"]
    run_cli("fuse", "--anatomical", anatomical, "--functional", functional, "--output", tmp_path / "cli.nii.gz",
            "--weights", NETWORK_WEIGHTS, "--seem-weights", SEEM_WEIGHTS, "--threads", THREADS, *options)
    events = []
    summary = efcnet.fuse_volume(anatomical, functional, tmp_path / "python.nii.gz", weights=NETWORK_WEIGHTS,
                                 seem_weights=SEEM_WEIGHTS, threads=THREADS, colormap="hot-iron",
                                 functional_window=(0, 900), progress=events.append)
    assert (tmp_path / "python.nii.gz").read_bytes() == (tmp_path / "cli.nii.gz").read_bytes()
    assert summary["fused_slices"] + summary["empty_slices"] == 6
    slices = [e for e in events if e["kind"] == "slice_done"]
    assert [(e["index"], e["count"]) for e in slices] == [(k, 6) for k in range(1, 7)]


def test_a_baseline_and_dicom_output_match_the_cli(volume_pair, run_cli, tmp_path):
    anatomical, functional = volume_pair
    run_cli("fuse", "--anatomical", anatomical, "--functional", functional, "--output", tmp_path / "cli",
            "--method", "y-average", "--output-format", "dicom", "--plane", "axial")
    notes = []
    efcnet.fuse_volume(anatomical, functional, tmp_path / "python", method="y-average", output_format="dicom",
                       plane="axial", progress=lambda e: notes.append(e["message"]) if e["kind"] == "note" else None)
    assert any("new study" in note for note in notes)
    (cli_file,) = (tmp_path / "cli").iterdir()
    (python_file,) = (tmp_path / "python").iterdir()
    # Generated UIDs differ; the pixel data (the file's last element) and how it was made do not.
    cli_bytes, python_bytes = cli_file.read_bytes(), python_file.read_bytes()
    pixels = 48 * 48 * 6 * 3
    assert cli_bytes[-pixels:] == python_bytes[-pixels:]
    for made in (b"fuse: method y-average", b"plane axial"):
        assert made in cli_bytes and made in python_bytes


def test_refusals_name_the_file_and_write_nothing(volume_pair, tmp_path):
    anatomical, functional = volume_pair
    existing = tmp_path / "taken.nii.gz"
    existing.write_bytes(b"keep")
    with pytest.raises(efcnet.Error, match=r"taken\.nii\.gz: already exists \(pass overwrite=True"):
        efcnet.fuse_volume(anatomical, functional, existing, method="y-average")
    assert existing.read_bytes() == b"keep"
    with pytest.raises(efcnet.Error, match=r"written as \.nii or \.nii\.gz"):
        efcnet.fuse_volume(anatomical, functional, tmp_path / "fused.png", method="y-average")
    with pytest.raises(efcnet.Error, match="save_transform saves what register estimates"):
        efcnet.fuse_volume(anatomical, functional, tmp_path / "o.nii.gz", method="y-average",
                           save_transform=tmp_path / "t.tfm")
    with pytest.raises(ValueError, match="frame"):
        efcnet.fuse_volume(anatomical, functional, tmp_path / "o.nii.gz", method="y-average", frame="last")
    with pytest.raises(ValueError, match="output_format"):
        efcnet.fuse_volume(anatomical, functional, tmp_path / "o.nii.gz", output_format="png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.nii.gz"]


def test_fuse_volume_dirs_fuses_pairs_and_reports_failures(volume_pair, tmp_path):
    anatomical, functional = volume_pair
    (tmp_path / "a").mkdir()
    (tmp_path / "f").mkdir()
    for name in ("s1", "s2"):
        (tmp_path / "a" / f"{name}.nii.gz").write_bytes(anatomical.read_bytes())
        (tmp_path / "f" / f"{name}.nii.gz").write_bytes(functional.read_bytes())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "s2.nii.gz").write_bytes(b"keep")
    events = []
    summary = efcnet.fuse_volume_dirs(tmp_path / "a", tmp_path / "f", tmp_path / "out", method="y-average",
                                      progress=events.append)
    assert summary == {"fused": 1, "failed": 1, "unpaired": 0}
    failed = [e for e in events if e["kind"] == "pair_failed"]
    assert [e["pair"] for e in failed] == ["s2"] and "already exists" in failed[0]["message"]
    assert (tmp_path / "out" / "s2.nii.gz").read_bytes() == b"keep"
    assert (tmp_path / "out" / "s1.nii.gz").stat().st_size > 0


def test_arrays_with_affines_fuse_as_the_files_do(volume_pair, tmp_path):
    anatomical, functional = volume_pair
    a, a_affine = efcnet.read_volume(anatomical)
    f, f_affine = efcnet.read_volume(functional)
    assert a.dtype == np.float32 and a.shape == (48, 48, 6) and a_affine.shape == (4, 4)
    efcnet.fuse_volume(anatomical, functional, tmp_path / "fused.nii.gz", method="y-average", colormap="pet")
    expected, expected_affine = efcnet.read_volume(tmp_path / "fused.nii.gz")
    assert expected.dtype == np.uint8 and expected.shape == (48, 48, 6, 3)

    fused, affine = efcnet.fuse_volume_arrays(a, a_affine, f, f_affine, method="y-average", colormap="pet")
    np.testing.assert_array_equal(fused, expected)
    np.testing.assert_allclose(affine, a_affine, atol=1e-6)
    np.testing.assert_allclose(affine, expected_affine, atol=1e-4)
    # Any real dtype and layout: int16 intensities in C order give the same as float32.
    fused_int, _ = efcnet.fuse_volume_arrays(np.ascontiguousarray(np.round(a).astype(np.int16)), a_affine,
                                             np.round(f).astype(np.int16), f_affine, method="y-average",
                                             colormap="pet", anatomical_window=(0, 1000), functional_window=(0, 1000))
    assert fused_int.shape == (48, 48, 6, 3)
    with pytest.raises(ValueError, match="anatomical_affine"):
        efcnet.fuse_volume_arrays(a, np.eye(3), f, f_affine, method="y-average")
    with pytest.raises(ValueError, match="3-D"):
        efcnet.fuse_volume_arrays(a[..., 0], a_affine, f, f_affine, method="y-average")
