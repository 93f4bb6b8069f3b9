"""efcnet.evaluate_dirs / evaluate_volume: the numbers `efcnet evaluate` writes, and what it leaves out."""
import json
import math

import pytest

import efcnet


def same_metrics(python, cli):
    """The CLI writes shortest round-trip doubles and null for NaN/inf."""
    assert list(python) == list(cli)
    for key, value in cli.items():
        if value is None:
            assert not math.isfinite(python[key]), key
        else:
            assert python[key] == value, key


@pytest.fixture(scope="module")
def triples(run_cli, tmp_path_factory):
    """Three directories of two triples: phantom pairs and their y-average fusions."""
    root = tmp_path_factory.mktemp("triples")
    for kind in ("spect", "pet"):
        run_cli("phantom", "--kind", kind, "--size", 64, "--out-dir", root / kind)
    for role in ("a", "f"):
        (root / role).mkdir()
    for kind in ("spect", "pet"):
        (root / "a" / f"{kind}.png").write_bytes((root / kind / "anatomical.png").read_bytes())
        (root / "f" / f"{kind}.png").write_bytes((root / kind / "functional.png").read_bytes())
    run_cli("fuse", "--anatomical-dir", root / "a", "--functional-dir", root / "f", "--output-dir", root / "fused",
            "--method", "y-average")
    return root


def test_evaluate_dirs_gives_the_numbers_of_the_cli(triples, run_cli):
    cli = json.loads(run_cli("evaluate", "--anatomical-dir", triples / "a", "--functional-dir", triples / "f",
                             "--fused-dir", triples / "fused", "--format", "json").stdout)
    python = efcnet.evaluate_dirs(triples / "a", triples / "f", triples / "fused", threads=2)
    assert [row["file"] for row in python["files"]] == ["pet", "spect"]
    for row, cli_row in zip(python["files"], cli["files"]):
        same_metrics(row, cli_row)
    same_metrics(python["mean"], cli["mean"])
    assert python["failed"] == {} and python["unpaired"] == {}


def test_evaluate_dirs_lists_failures_and_files_left_out(triples, tmp_path):
    for role in ("a", "f", "fused"):
        (tmp_path / role).mkdir()
        for name in ("pet", "spect"):
            source = triples / role / f"{name}.png"
            (tmp_path / role / f"{name}.png").write_bytes(source.read_bytes())
    (tmp_path / "fused" / "spect.png").write_bytes(b"not a png")
    (tmp_path / "a" / "lonely.png").write_bytes((triples / "a" / "pet.png").read_bytes())
    result = efcnet.evaluate_dirs(tmp_path / "a", tmp_path / "f", tmp_path / "fused")
    assert [row["file"] for row in result["files"]] == ["pet"]
    assert list(result["failed"]) == ["spect"] and "spect.png" in result["failed"]["spect"]
    assert list(result["unpaired"]) == [str(tmp_path / "a" / "lonely.png")]


def test_evaluate_volume_gives_the_numbers_of_the_cli(run_cli, tmp_path):
    run_cli("phantom", "--volume", "--size", 48, "--slices", 6, "--out-dir", tmp_path)
    anatomical, functional = tmp_path / "anatomical.nii.gz", tmp_path / "functional.nii.gz"
    efcnet.fuse_volume(anatomical, functional, tmp_path / "fused.nii.gz", method="y-average", colormap="pet")
    cli = json.loads(run_cli("evaluate", "--anatomical", anatomical, "--functional", functional, "--fused",
                             tmp_path / "fused.nii.gz", "--colormap", "pet", "--format", "json").stdout)
    python = efcnet.evaluate_volume(anatomical, functional, tmp_path / "fused.nii.gz", colormap="pet")
    assert [row["file"] for row in python["slices"]] == [row["file"] for row in cli["files"]]
    for row, cli_row in zip(python["slices"], cli["files"]):
        same_metrics(row, cli_row)
    same_metrics(python["mean"], cli["mean"])
    # Fused on the functional grid: not the anatomical one.
    efcnet.fuse_volume(functional, anatomical, tmp_path / "swapped.nii.gz", method="y-average")
    with pytest.raises(efcnet.Error, match="swapped.nii.gz .* is not on the grid of"):
        efcnet.evaluate_volume(anatomical, functional, tmp_path / "swapped.nii.gz")


def without_times(scores):
    """scores.json less what differs between two runs: when and how long."""
    for key in ("date", "seconds", "seconds_per_pair"):
        scores.pop(key)
    for method in scores["methods"]:
        method.pop("fusion_seconds_per_pair")
    return scores


def test_compare_writes_the_scores_of_the_cli(golden, triples, run_cli, tmp_path):
    from conftest import NETWORK_WEIGHTS, SEEM_WEIGHTS, THREADS

    common = ["--weights", NETWORK_WEIGHTS, "--seem-weights", SEEM_WEIGHTS, "--threads", THREADS]
    run_cli("compare", "--anatomical-dir", triples / "a", "--functional-dir", triples / "f", "--output-dir",
            tmp_path / "cli", "--method", f"given={triples / 'fused'}", *common)
    events = []
    summary = efcnet.compare(triples / "a", triples / "f", tmp_path / "python", results={"given": triples / "fused"},
                             weights=NETWORK_WEIGHTS, seem_weights=SEEM_WEIGHTS, threads=THREADS,
                             progress=events.append)
    assert summary["methods"] == 4 and summary["pairs"] == 2 and summary["problems"] == 0
    assert [e["done"] for e in events if e["kind"] == "pair_done"] == [1, 2]
    cli = without_times(json.loads((tmp_path / "cli" / "scores.json").read_text()))
    python = without_times(json.loads((tmp_path / "python" / "scores.json").read_text()))
    assert python == cli
    assert (tmp_path / "python" / "scores.csv").read_bytes() == (tmp_path / "cli" / "scores.csv").read_bytes()
    assert (tmp_path / "python" / "report.html").stat().st_size > 0

    with pytest.raises(efcnet.Error, match=r"report\.html: already exists \(pass overwrite=True"):
        efcnet.compare(triples / "a", triples / "f", tmp_path / "python", efcnet=False)
    with pytest.raises(efcnet.Error, match="is inside output_dir"):
        efcnet.compare(triples / "a", triples / "f", triples, efcnet=False)
