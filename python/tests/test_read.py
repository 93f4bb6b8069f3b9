"""efcnet.read_anatomical / read_functional / load_state_dict on hostile files: a PNG of a few MB
that declares 32768x32768 pixels, a FIFO. Each is refused with efcnet.Error naming the file, at once
and without decoding."""
import os
import struct
import subprocess
import sys
import threading
import zlib

import pytest

import efcnet


def zero_png(width, height):
    """An 8-bit RGB PNG of zero pixels: each row deflated alone, so one row's stream repeats."""
    row = bytes(1 + 3 * width)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    row_stream = compressor.compress(row) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush(zlib.Z_FINISH)
    adler = (len(row) * height % 65521) << 16 | 1  # Adler-32 of zeros
    data = b"\x78\xda" + row_stream * height + tail + struct.pack(">I", adler)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def test_a_huge_declared_image_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(zero_png(32768, 32768))
    # In a child process, so that its peak memory is its own: VmHWM, the peak of the process's own
    # memory map (ru_maxrss would also count the forked pytest image before exec).
    code = (
        "import efcnet, sys\n"
        "for read in (efcnet.read_functional, efcnet.read_anatomical):\n"
        "    try:\n"
        "        read(sys.argv[1])\n"
        "    except efcnet.Error as e:\n"
        "        print(e)\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[:2] == [f"{path}: 32768x32768 pixels exceeds the limit of 67108864"
                         " (raise it with --max-image-pixels, or max_image_pixels in Python)"] * 2
    assert int(lines[2]) * 1024 < 1 << 30


def test_max_image_pixels_is_a_keyword(tmp_path):
    path = tmp_path / "small.png"
    path.write_bytes(zero_png(48, 32))
    with pytest.raises(efcnet.Error, match="48x32 pixels exceeds the limit of 1535"):
        efcnet.read_functional(path, max_image_pixels=1535)
    with pytest.raises(efcnet.Error, match="48x32 pixels exceeds the limit of 1535"):
        efcnet.read_anatomical(path, max_image_pixels=1535)
    assert efcnet.read_functional(path, "bgr", max_image_pixels=1536).shape == (32, 48, 3)
    assert efcnet.read_anatomical(path, max_image_pixels=1536).shape == (32, 48)
    with pytest.raises(ValueError):
        efcnet.read_anatomical(path, max_image_pixels=0)


@pytest.mark.parametrize("read", [efcnet.read_functional, efcnet.read_anatomical, efcnet.load_state_dict])
def test_a_fifo_is_refused_without_blocking(tmp_path, read):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    outcome = []

    def attempt():
        try:
            read(path)
            outcome.append("no error")
        except efcnet.Error as e:
            outcome.append(str(e))

    reader = threading.Thread(target=attempt, daemon=True)
    reader.start()
    reader.join(2)
    if reader.is_alive():  # releases a reader stuck in open()
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(2)
        pytest.fail(f"{read.__name__} blocked on a FIFO")
    assert outcome == [f"{path}: is a FIFO, not a regular file"]
