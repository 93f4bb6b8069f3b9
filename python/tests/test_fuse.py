"""efcnet.Fuser: the same bytes as `efcnet fuse`, every array layout, clear refusals, GIL and Ctrl-C."""
import _thread
import re
import threading
import time

import numpy as np
import pytest

import efcnet
from conftest import NETWORK_WEIGHTS, SEEM_WEIGHTS, THREADS


def small_pair(kind="spect", size=48):
    return efcnet.phantom(size, kind)


def test_fuse_equals_the_cli_byte_for_byte_in_both_channel_orders(golden, golden_fuser, run_cli, tmp_path):
    mri, functional = golden / "pipeline_mri.png", golden / "pipeline_functional.png"
    output = tmp_path / "fused.png"
    run_cli("fuse", "--anatomical", mri, "--functional", functional, "--output", output,
            "--weights", NETWORK_WEIGHTS, "--seem-weights", SEEM_WEIGHTS, "--threads", THREADS)
    expected_rgb = efcnet.read_functional(output)
    anatomical = efcnet.read_anatomical(mri)
    functional_rgb = efcnet.read_functional(functional)
    assert functional_rgb.shape == (256, 256, 3) and expected_rgb.shape == (256, 256, 3)

    fused_rgb = golden_fuser.fuse(anatomical, functional_rgb)
    assert fused_rgb.dtype == np.uint8
    np.testing.assert_array_equal(fused_rgb, expected_rgb)

    # OpenCV's order, from a reversed (negative-stride) view.
    functional_bgr = functional_rgb[..., ::-1]
    assert not functional_bgr.flags.c_contiguous
    fused_bgr = golden_fuser.fuse(anatomical, functional_bgr, order="bgr")
    np.testing.assert_array_equal(fused_bgr, expected_rgb[..., ::-1])


def test_any_layout_gives_the_same_result(golden_fuser):
    anatomical, functional = small_pair()
    expected = golden_fuser.fuse(anatomical, functional)
    fortran = golden_fuser.fuse(np.asfortranarray(anatomical), np.asfortranarray(functional))
    np.testing.assert_array_equal(fortran, expected)
    # Every other pixel of a twice-as-large array: strided views of the same images.
    big_a = np.zeros((96, 96), np.uint8)
    big_f = np.zeros((96, 96, 6), np.uint8)
    big_a[::2, ::2] = anatomical
    big_f[::2, ::2, ::2] = functional
    strided = golden_fuser.fuse(big_a[::2, ::2], big_f[::2, ::2, ::2])
    np.testing.assert_array_equal(strided, expected)


def test_grey_functional_gives_grey_output_and_colour_keeps_its_chroma(golden_fuser):
    anatomical, ct = small_pair("ct")
    assert ct.shape == (48, 48)
    fused = golden_fuser.fuse(anatomical, ct)
    assert fused.shape == (48, 48) and fused.dtype == np.uint8
    anatomical, spect = small_pair("spect")
    fused = golden_fuser.fuse(anatomical, spect)
    assert fused.shape == spect.shape
    assert not np.array_equal(fused, spect)


def test_a_stack_is_fused_slice_by_slice(golden_fuser):
    pairs = [small_pair(kind) for kind in ("spect", "pet", "gfp")]
    anatomical = np.stack([a for a, _ in pairs])
    functional = np.stack([f for _, f in pairs])
    fused = golden_fuser.fuse(anatomical, functional)
    assert fused.shape == functional.shape
    for i, (a, f) in enumerate(pairs):
        np.testing.assert_array_equal(fused[i], golden_fuser.fuse(a, f))
    grey = golden_fuser.fuse(anatomical[:2], np.stack([small_pair("ct")[1]] * 2))
    assert grey.shape == (2, 48, 48)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint16, np.int8, bool])
def test_other_dtypes_are_refused_not_converted(golden_fuser, dtype):
    anatomical, functional = small_pair()
    with pytest.raises(TypeError, match=r"anatomical: expected a uint8 array, got dtype"):
        golden_fuser.fuse(anatomical.astype(dtype), functional)
    with pytest.raises(TypeError, match=r"functional: expected a uint8 array, got dtype"):
        golden_fuser.fuse(anatomical, functional.astype(dtype))


def test_non_arrays_are_refused(golden_fuser):
    anatomical, functional = small_pair()
    with pytest.raises(TypeError):
        golden_fuser.fuse(anatomical.tolist(), functional)


@pytest.mark.parametrize(
    "anatomical_shape, functional_shape, message",
    [
        ((48,), (48, 48, 3), r"anatomical: expected a \(H, W\) image or an \(N, H, W\) stack of slices, got shape \(48,\)"),
        ((48, 48), (48, 48, 4), r"functional: expected a \(H, W\) or \(H, W, 3\) image .* got shape \(48, 48, 4\)"),
        ((48, 48), (2, 48, 48, 3), r"functional: expected a \(H, W\) or \(H, W, 3\) image"),
        ((2, 48, 48), (3, 48, 48, 3), r"anatomical has 2 slices, functional 3"),
        ((48, 48), (48, 40, 3), r"image sizes differ: anatomical 48x48, functional 40x48"),
        ((8, 48), (8, 48, 3), r"at least 11x11, got 48x8"),
        ((0, 0), (0, 0), r"at least 11x11"),
    ],
)
def test_wrong_shapes_and_sizes_are_refused(golden_fuser, anatomical_shape, functional_shape, message):
    with pytest.raises(ValueError, match=message):
        golden_fuser.fuse(np.zeros(anatomical_shape, np.uint8), np.zeros(functional_shape, np.uint8))


def test_unknown_order_and_options_are_refused(golden, golden_fuser):
    anatomical, functional = small_pair()
    with pytest.raises(ValueError, match=r'order must be "rgb" or "bgr", got "rbg"'):
        golden_fuser.fuse(anatomical, functional, order="rbg")
    with pytest.raises(ValueError, match=r'precision must be "float32" or "bfloat16"'):
        efcnet.Fuser(NETWORK_WEIGHTS, SEEM_WEIGHTS, precision="half")
    with pytest.raises(ValueError, match=r"threads must be 0"):
        efcnet.Fuser(NETWORK_WEIGHTS, SEEM_WEIGHTS, threads=-1)
    with pytest.raises(efcnet.Error, match=r"device"):
        efcnet.Fuser(NETWORK_WEIGHTS, SEEM_WEIGHTS, device="tpu")


def test_missing_or_bad_weights_raise_efcnet_error_naming_the_file(golden, tmp_path, monkeypatch):
    missing = tmp_path / "none.pth"
    with pytest.raises(efcnet.Error, match="^" + re.escape(f"{missing}: no such file (given by weights=)") + "$"):
        efcnet.Fuser(missing, SEEM_WEIGHTS)
    monkeypatch.setenv("EFCNET_WEIGHTS", str(NETWORK_WEIGHTS))
    monkeypatch.setenv("EFCNET_SEEM_WEIGHTS", str(missing))
    with pytest.raises(efcnet.Error, match="^" + re.escape(f"{missing}: no such file (given by EFCNET_SEEM_WEIGHTS)") + "$"):
        efcnet.Fuser()
    bogus = tmp_path / "bogus.pth"
    bogus.write_text("not a zip archive")
    with pytest.raises(efcnet.Error, match="^" + re.escape(f"{bogus}: not a torch.save zip archive")):
        efcnet.Fuser(bogus, SEEM_WEIGHTS)
    assert issubclass(efcnet.Error, RuntimeError)


def test_without_weights_the_cli_lookup_finds_the_shipped_defaults(monkeypatch):
    shipped = efcnet.__file__  # build/python/efcnet/__init__.py or an installed copy
    monkeypatch.delenv("EFCNET_WEIGHTS", raising=False)
    monkeypatch.delenv("EFCNET_SEEM_WEIGHTS", raising=False)
    try:
        fuser = efcnet.Fuser()
    except efcnet.Error as error:
        # Only acceptable where nothing ships defaults; the message says where it looked.
        assert "no shipped default model" in str(error)
        pytest.skip(f"no shipped default weights beside {shipped} or in the source tree: {error}")
    assert fuser.weights.endswith("models/efcnet_default.pth")
    assert fuser.seem_weights.endswith("models/seem_default.pth")
    assert fuser.model == "default"
    assert repr(fuser).startswith("efcnet.Fuser(model='default'")
    anatomical, functional = small_pair()
    assert fuser.fuse(anatomical, functional).shape == functional.shape


def test_models_are_listed_and_chosen_by_name_and_one_file_alone_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("EFCNET_WEIGHTS", raising=False)
    monkeypatch.delenv("EFCNET_SEEM_WEIGHTS", raising=False)
    (tmp_path / "models.tsv").write_text("mine\tthe golden network with the authors' SEEM\n")
    (tmp_path / "efcnet_mine.pth").write_bytes(NETWORK_WEIGHTS.read_bytes())
    (tmp_path / "seem_mine.pth").write_bytes(SEEM_WEIGHTS.read_bytes())
    monkeypatch.setenv("EFCNET_MODELS_DIR", str(tmp_path))
    listed = efcnet.models()
    assert listed[0] == {"name": "mine", "description": "the golden network with the authors' SEEM",
                         "weights": str(tmp_path / "efcnet_mine.pth"), "seem_weights": str(tmp_path / "seem_mine.pth")}
    fuser = efcnet.Fuser(model="mine", threads=THREADS)
    assert (fuser.model, fuser.weights) == ("mine", str(tmp_path / "efcnet_mine.pth"))
    with pytest.raises(efcnet.Error, match="^weights= without seem_weights=: a network fuses as trained only with its own SEEM"):
        efcnet.Fuser(NETWORK_WEIGHTS)
    with pytest.raises(efcnet.Error, match="^seem_weights= without weights="):
        efcnet.Fuser(seem_weights=SEEM_WEIGHTS)
    with pytest.raises(efcnet.Error, match='^give model= or weights= with seem_weights=, not both$'):
        efcnet.Fuser(NETWORK_WEIGHTS, SEEM_WEIGHTS, model="mine")
    with pytest.raises(efcnet.Error, match='^no model named "nonesuch" \\(given by model=\\); the shipped models: mine'):
        efcnet.Fuser(model="nonesuch")


def test_the_gil_is_released_while_the_network_runs(golden_fuser):
    anatomical, functional = small_pair(size=128)
    done = threading.Event()
    took = []

    def work():
        start = time.perf_counter()
        golden_fuser.fuse(anatomical, functional)
        took.append(time.perf_counter() - start)
        done.set()

    worker = threading.Thread(target=work)
    ticks = []
    worker.start()
    while not done.is_set():
        # Waking from the sleep and running the next line both need the GIL.
        time.sleep(0.002)
        ticks.append(time.perf_counter())
    worker.join()
    duration = took[0]
    gaps = np.diff(ticks)
    assert duration > 0.2, f"the fuse took only {duration:.3f} s, too short to tell"
    # Were the GIL held for the call, the main thread would stall for all of it in one gap.
    assert len(ticks) > 20 and gaps.max() < duration / 4, (
        f"main thread: {len(ticks)} iterations, longest stall {gaps.max():.3f} s during a {duration:.3f} s fuse")


def test_ctrl_c_stops_a_stack_between_slices(golden_fuser):
    anatomical, functional = small_pair(size=96)
    start = time.perf_counter()
    golden_fuser.fuse(anatomical, functional)
    per_slice = time.perf_counter() - start
    slices = 40
    stack_a = np.stack([anatomical] * slices)
    stack_f = np.stack([functional] * slices)
    timer = threading.Timer(2 * per_slice, _thread.interrupt_main)  # as if Ctrl-C were pressed
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        golden_fuser.fuse(stack_a, stack_f)
    elapsed = time.perf_counter() - start
    timer.join()
    assert elapsed < slices * per_slice / 3, (
        f"interrupted after {elapsed:.2f} s; the whole stack takes about {slices * per_slice:.2f} s")
