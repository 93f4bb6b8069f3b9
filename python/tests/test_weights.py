"""efcnet.load_state_dict / save_state_dict: what torch.load reads, and refusals that run nothing."""
import os
import pickle
import re
import struct
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import efcnet
from conftest import GOLDEN, REPO, require


def torch_or_skip():
    try:
        import torch
    except ImportError:
        require(False, "python3-torch is missing: the comparison with torch.load needs it")
    return torch


def weight_files():
    files = [GOLDEN / "efcnet_random.pth", GOLDEN / "seem_authors.pth", REPO / "models" / "efcnet_default.pth"]
    return [f for f in files if f.is_file()]


def assert_same_dict(ours, theirs):
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype, key
        assert ours[key].shape == value.shape, key
        assert ours[key].tobytes() == value.tobytes(), key


def test_load_equals_torch_load(golden):
    torch = torch_or_skip()
    dtypes = set()
    for path in weight_files():
        ours = efcnet.load_state_dict(path)
        theirs = {k: v.numpy() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
        assert_same_dict(ours, theirs)
        dtypes |= {str(v.dtype) for v in ours.values()}
    assert {"float32", "int64"} <= dtypes  # num_batches_tracked stays int64


def test_float16_stays_float16_and_saves_back_bit_exact(tmp_path):
    default = REPO / "models" / "efcnet_default.pth"
    require(default.is_file(), f"no shipped {default}")
    weights = efcnet.load_state_dict(default)
    assert any(v.dtype == np.float16 for v in weights.values())
    efcnet.save_state_dict(weights, tmp_path / "copy.pth")
    assert_same_dict(efcnet.load_state_dict(tmp_path / "copy.pth"), weights)


def test_saved_files_are_read_by_torch_load(tmp_path):
    weights = {
        "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
        "half": np.array([1.5, -2.25], np.float16),
        "double": np.linspace(0, 1, 5),
        "count": np.array(7, np.int64),
        "index": np.array([[1, 2], [3, 4]], np.int32).T,  # a non-contiguous view
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3), np.float32),
    }
    path = tmp_path / "saved.pth"
    efcnet.save_state_dict(weights, path)
    expected = {k: v.copy(order="C") for k, v in weights.items()}
    assert_same_dict(efcnet.load_state_dict(path), expected)
    assert [p.name for p in tmp_path.iterdir()] == ["saved.pth"]  # no temporary left behind
    torch = torch_or_skip()
    loaded = torch.load(path, weights_only=True)
    assert_same_dict({k: v.numpy() for k, v in loaded.items()}, expected)


def test_save_refuses_what_it_cannot_store(tmp_path):
    path = tmp_path / "w.pth"
    with pytest.raises(TypeError, match=r"state_dict\['w'\]: dtype complex64 cannot be stored"):
        efcnet.save_state_dict({"w": np.zeros(2, np.complex64)}, path)
    with pytest.raises(TypeError, match=r"state_dict\['w'\]: dtype uint8 cannot be stored"):
        efcnet.save_state_dict({"w": np.zeros(2, np.uint8)}, path)
    with pytest.raises(TypeError, match=r"state_dict\['w'\]: expected a numpy.ndarray, got list"):
        efcnet.save_state_dict({"w": [1.0, 2.0]}, path)
    with pytest.raises(TypeError, match=r"state_dict: keys must be str, got 3"):
        efcnet.save_state_dict({3: np.zeros(2, np.float32)}, path)
    with pytest.raises(TypeError, match=r"state_dict: expected a dict of str -> numpy.ndarray, got list"):
        efcnet.save_state_dict([np.zeros(2)], path)
    assert not path.exists()
    missing_dir = tmp_path / "no" / "w.pth"
    with pytest.raises(efcnet.Error, match=re.escape(str(missing_dir))):
        efcnet.save_state_dict({"w": np.zeros(2, np.float32)}, missing_dir)


# ---- hostile files ----

def archive(path, records):
    """A torch.save-style zip: records under `archive/`, with the `version` record."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/version", "3\n")
        for name, data in records.items():
            z.writestr(f"archive/{name}", data)
    return path


def binunicode(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def long1(value):
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def int_tuple(values):
    return b"(" + b"".join(long1(v) for v in values) + b"t"


def tensor_pickle(numel, sizes, strides):
    """data.pkl of {"w": tensor} as torch.save writes it (protocol 2), from its opcodes."""
    storage = (b"(" + binunicode("storage") + b"ctorch\nFloatStorage\n" + binunicode("0") + binunicode("cpu")
               + long1(numel) + b"tQ")
    arguments = (b"(" + storage + b"K\x00" + int_tuple(sizes) + int_tuple(strides) + b"\x89"
                 + b"ccollections\nOrderedDict\n)R" + b"t")
    return b"\x80\x02}" + binunicode("w") + b"ctorch._utils\n_rebuild_tensor_v2\n" + arguments + b"Rs."


class RunsACommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_hand_built_archives_are_the_format_torch_save_writes(tmp_path):
    # The builder used below, with honest numbers, gives a file that loads.
    path = archive(tmp_path / "ok.pth", {"data.pkl": tensor_pickle(4, [2, 2], [2, 1]),
                                         "data/0": np.arange(4, dtype=np.float32).tobytes()})
    loaded = efcnet.load_state_dict(path)
    np.testing.assert_array_equal(loaded["w"], np.arange(4, dtype=np.float32).reshape(2, 2))


def test_a_pickle_that_calls_a_global_runs_nothing(golden, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": RunsACommand(f"touch {marker}")}, protocol=2)
    # The payload is real: Python's own unpickler runs the command.
    subprocess.run([sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
                   input=payload, check=True)
    assert marker.exists()
    marker.unlink()

    evil = archive(tmp_path / "evil.pth", {"data.pkl": payload})
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(evil)) + ".*'posix.system'"):
        efcnet.load_state_dict(evil)
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(evil))):
        efcnet.Fuser(evil, GOLDEN / "seem_authors.pth")
    assert not marker.exists()


def test_a_huge_declared_storage_is_refused_without_allocating(tmp_path):
    huge = archive(tmp_path / "huge.pth", {"data.pkl": tensor_pickle(1 << 40, [1 << 40], [1]),
                                           "data/0": np.zeros(4, np.float32).tobytes()})
    start = time.perf_counter()
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(huge)) + r".*holds 16 bytes but 1099511627776 float32"):
        efcnet.load_state_dict(huge)
    assert time.perf_counter() - start < 5
    overflowing = archive(tmp_path / "overflow.pth", {"data.pkl": tensor_pickle(4, [1 << 62, 1 << 62], [1 << 62, 1]),
                                                      "data/0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(overflowing))):
        efcnet.load_state_dict(overflowing)


def test_a_zero_stride_view_is_refused_not_materialised(tmp_path):
    # 4 bytes of storage seen as 32768 x 32768 float32: numpy would be handed 4 GiB.
    expanded = archive(tmp_path / "expanded.pth", {"data.pkl": tensor_pickle(1, [32768, 32768], [0, 0]),
                                                   "data/0": np.zeros(1, np.float32).tobytes()})
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(expanded)) + r".*stride 0: its elements overlap"):
        efcnet.load_state_dict(expanded)
    overlapping = archive(tmp_path / "overlap.pth", {"data.pkl": tensor_pickle(8, [4, 4], [1, 1]),
                                                     "data/0": np.zeros(8, np.float32).tobytes()})
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(overlapping)) + r".*make elements overlap"):
        efcnet.load_state_dict(overlapping)


def test_a_record_declaring_more_than_it_can_inflate_to_is_refused(tmp_path):
    # A deflated storage record whose directory entry declares 4 GB: LibTorch's reader would
    # allocate the declared size before inflating a byte.
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data.pkl", tensor_pickle(4, [4], [1]))
        z.writestr("archive/data/0", np.zeros(4, np.float32).tobytes())
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the directory entry of archive/data/0, written last
    assert data[entry + 46:entry + 46 + 14] == b"archive/data/0"
    data[entry + 24:entry + 28] = struct.pack("<I", 0xF0000000)
    path.write_bytes(bytes(data))
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(path)) + r": zip record 'archive/data/0' declares 4026531840"):
        efcnet.load_state_dict(path)


def test_non_finite_weights_are_refused_by_key(golden, tmp_path):
    weights = efcnet.load_state_dict(GOLDEN / "efcnet_random.pth")
    key = next(k for k, v in weights.items() if v.dtype == np.float32)
    weights[key] = weights[key].copy()
    weights[key].flat[0] = np.nan
    broken = tmp_path / "nan.pth"
    efcnet.save_state_dict(weights, broken)
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(broken)) + r".*non-finite values.*" + re.escape(key)):
        efcnet.Fuser(broken, GOLDEN / "seem_authors.pth")


def test_truncated_and_foreign_files_are_refused_naming_the_file(tmp_path):
    whole = tmp_path / "whole.pth"
    efcnet.save_state_dict({"w": np.ones((64, 64), np.float32), "b": np.zeros(64, np.float32)}, whole)
    data = whole.read_bytes()
    for length in (len(data) // 2, len(data) - 22, len(data) - 1, 10):
        cut = tmp_path / f"cut{length}.pth"
        cut.write_bytes(data[:length])
        with pytest.raises(efcnet.Error, match="^" + re.escape(str(cut)) + ": "):
            efcnet.load_state_dict(cut)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps({}, protocol=2))
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(legacy)) + ": not a torch.save zip archive"):
        efcnet.load_state_dict(legacy)
    with pytest.raises(efcnet.Error, match="^" + re.escape(str(tmp_path / "absent.pth")) + ": no such file"):
        efcnet.load_state_dict(tmp_path / "absent.pth")
