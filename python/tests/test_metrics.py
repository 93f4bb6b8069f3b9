"""efcnet.evaluate and efcnet.metrics: the numbers `efcnet evaluate` prints, and clear refusals."""
import json
import math

import numpy as np
import pytest

import efcnet

NAMES = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR", "CC", "MSE"]


def golden_triples(golden):
    metrics_dir = golden / "metrics"
    for entry in json.loads((metrics_dir / "expected.json").read_text()):
        yield tuple((metrics_dir / entry[role]).resolve() for role in ("anatomical", "functional", "fused"))


def read_as_the_evaluator_does(path, order="rgb"):
    # The evaluator reads every image as colour when the file is colour, and turns it grey itself.
    return efcnet.read_functional(path, order)


def same_number(cli_value, value):
    """The CLI's JSON writes NaN and inf as null; finite numbers must be the same double."""
    if cli_value is None:
        return not math.isfinite(value)
    return cli_value == value


def test_evaluate_equals_the_cli_json(golden, run_cli):
    for anatomical, functional, fused in golden_triples(golden):
        cli = json.loads(run_cli("evaluate", "--anatomical", anatomical, "--functional", functional,
                                 "--fused", fused, "--format", "json").stdout)
        images = [read_as_the_evaluator_does(p) for p in (anatomical, functional, fused)]
        scores = efcnet.evaluate(*images)
        assert list(scores) == NAMES == list(cli)
        for name in NAMES:
            assert same_number(cli[name], scores[name]), f"{fused.name} {name}: CLI {cli[name]}, Python {scores[name]}"
        # OpenCV's channel order, from reversed views.
        bgr = efcnet.evaluate(*[image[..., ::-1] if image.ndim == 3 else image for image in images], order="bgr")
        assert bgr == scores


def test_each_metric_function_equals_its_evaluate_entry(golden):
    anatomical, functional, fused = next(golden_triples(golden))
    a, b, f = (read_as_the_evaluator_does(p) for p in (anatomical, functional, fused))
    scores = efcnet.evaluate(a, b, f)
    for name in ("EN", "SD", "SF", "AG"):
        assert getattr(efcnet.metrics, name)(f) == pytest.approx(scores[name], rel=1e-12, abs=0), name
    for name in ("MI", "SCD", "VIF", "Qabf", "SSIM", "PSNR", "CC", "MSE"):
        assert getattr(efcnet.metrics, name)(a, b, f) == pytest.approx(scores[name], rel=1e-12, abs=0), name
    assert sorted(efcnet.metrics.__all__) == sorted(NAMES)


def test_float_grey_levels_score_as_uint8():
    a, b = efcnet.phantom(64, "ct")
    f = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
    expected = efcnet.evaluate(a, b, f)
    for dtype in (np.float32, np.float64):
        assert efcnet.evaluate(a.astype(dtype), b.astype(dtype), f.astype(dtype)) == expected
    with pytest.raises(ValueError, match=r"fused: float image values must be whole grey levels in 0\.\.255"):
        efcnet.evaluate(a, b, f.astype(np.float32) + 0.5)


def test_degenerate_images_give_what_the_evaluator_gives():
    a, b = efcnet.phantom(64, "ct")
    assert math.isnan(efcnet.evaluate(a, b, np.full_like(a, 100))["CC"])  # corr with a constant F
    assert math.isnan(efcnet.evaluate(a, b, b)["SCD"])  # F - B is constant
    assert efcnet.evaluate(a, a, a)["PSNR"] == math.inf


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float16, np.int64, bool])
def test_other_dtypes_are_refused(dtype):
    a, b = efcnet.phantom(32, "ct")
    with pytest.raises(TypeError, match=r"fused: expected a uint8 array \(or float32/float64 grey levels"):
        efcnet.evaluate(a, b, a.astype(dtype))
    with pytest.raises(TypeError, match=r"image: expected a uint8 array"):
        efcnet.metrics.EN(a.astype(dtype))


def test_wrong_shapes_and_sizes_are_refused():
    a, b = efcnet.phantom(32, "spect")
    with pytest.raises(ValueError, match=r"functional: expected a \(H, W\) grey image or an \(H, W, 3\) colour one, got shape \(32, 32, 4\)"):
        efcnet.evaluate(a, np.zeros((32, 32, 4), np.uint8), a)
    with pytest.raises(ValueError, match=r"float images must be grey"):
        efcnet.evaluate(a, b.astype(np.float32), a)
    with pytest.raises(ValueError, match=r"image sizes differ: anatomical 32x32, functional 32x32, fused 31x32"):
        efcnet.evaluate(a, b, a[:, :31])
    small = np.zeros((16, 40), np.uint8)
    with pytest.raises(ValueError, match=r"image is 40x16; the metrics need at least 17x17"):
        efcnet.evaluate(small, small, small)
    with pytest.raises(ValueError, match=r"at least 17x17"):
        efcnet.metrics.SF(small)
    with pytest.raises(ValueError, match=r'order must be "rgb" or "bgr"'):
        efcnet.evaluate(a, b, a, order="RGB")
