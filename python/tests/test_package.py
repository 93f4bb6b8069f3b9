"""The package itself: help, type stubs, errors, and the OpenBLAS kernel choice made at import."""
import ast
import os
import pathlib
import pydoc
import subprocess
import sys

import efcnet

PACKAGE = pathlib.Path(efcnet.__file__).parent


def test_help_shows_the_api_with_signatures():
    text = pydoc.render_doc(efcnet, renderer=pydoc.plaintext)
    for fragment in ("class Fuser", "fuse(self: efcnet.Fuser, anatomical: numpy.ndarray, functional: numpy.ndarray, "
                     "order: str = 'rgb') -> numpy.ndarray", "evaluate(anatomical: numpy.ndarray",
                     "load_state_dict(path: os.PathLike) -> dict", "save_state_dict(state_dict: object, path: os.PathLike)",
                     "class Error", "OPENBLAS_CORETYPE", "efcnet.metrics", "restricted unpickler", "threads: LibTorch's"):
        assert fragment in text, fragment
    metrics_text = pydoc.render_doc(efcnet.metrics, renderer=pydoc.plaintext)
    assert "SSIM(anatomical: numpy.ndarray, functional: numpy.ndarray, fused: numpy.ndarray" in metrics_text


def stub_names(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    return names, tree


def test_type_stubs_ship_beside_the_package_and_cover_it():
    assert (PACKAGE / "py.typed").is_file()
    names, tree = stub_names(PACKAGE / "__init__.pyi")
    assert set(efcnet.__all__) <= names
    fuser = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Fuser")
    methods = {n.name for n in fuser.body if isinstance(n, ast.FunctionDef)}
    public = {name for name in dir(efcnet.Fuser) if not name.startswith("_")}
    assert public <= methods, public - methods
    metric_names, _ = stub_names(PACKAGE / "metrics.pyi")
    assert set(efcnet.metrics.__all__) <= metric_names


def test_error_is_a_runtime_error_of_the_package():
    assert issubclass(efcnet.Error, RuntimeError)
    assert efcnet.Error.__module__ == "efcnet" and efcnet.Fuser.__module__ == "efcnet"
    assert isinstance(efcnet.__version__, str) and efcnet.__version__


def expected_kernels():
    """OpenBLAS kernels the CPU's flags call for (efcnet/blas.h), read independently from /proc/cpuinfo."""
    flags = set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


PROBE = """
import ctypes, os, sys
import efcnet
blas = ctypes.CDLL("libblas.so.3")  # the instance LibTorch loaded
name = getattr(blas, "openblas_get_corename", None)
if name is not None:
    name.restype = ctypes.c_char_p
print(os.environ.get("OPENBLAS_CORETYPE", ""), name().decode() if name is not None else "not-openblas")
"""


def run_probe(environment):
    result = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_importing_efcnet_first_chooses_the_openblas_kernels():
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    chosen, in_use = run_probe(environment)
    expected = expected_kernels()
    if expected is None:
        assert chosen == ""
        return
    assert chosen == expected
    if in_use != "not-openblas":
        assert in_use == expected  # it took effect: OpenBLAS was loaded after the choice


def test_a_kernel_choice_already_made_is_kept():
    environment = dict(os.environ, OPENBLAS_CORETYPE="Prescott")
    chosen, in_use = run_probe(environment)
    assert chosen == "Prescott"
    assert in_use in ("Prescott", "not-openblas")


HEAP_PROBE = """
import ctypes, sys
import efcnet
libc = ctypes.CDLL("libc.so.6")
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "fuser":
    efcnet.Fuser(sys.argv[2], sys.argv[3])
elif sys.argv[1] == "opt-in":
    efcnet.keep_freed_memory_for_reuse()
before = libc.mallinfo2().fordblks
libc.free(libc.malloc(64 << 20))
print((libc.mallinfo2().fordblks - before) >> 20)  # MiB of the freed block the heap kept
"""


def kept_mib(*args):
    result = subprocess.run([sys.executable, "-c", HEAP_PROBE, *map(str, args)], capture_output=True, text=True,
                            check=True)
    return int(result.stdout)


def test_the_heap_policy_changes_only_when_asked(golden):
    from conftest import NETWORK_WEIGHTS, SEEM_WEIGHTS

    assert kept_mib("none") < 16  # glibc's default: a block this large is unmapped when freed
    assert kept_mib("fuser", NETWORK_WEIGHTS, SEEM_WEIGHTS) < 16  # creating a Fuser changes nothing
    # Kept: the freed 64 MiB block, less whatever free chunk the malloc itself was carved from.
    assert kept_mib("opt-in") >= 48


THREADS_PROBE = """
import sys
import torch  # the same LibTorch (libtorch_cpu.so) as efcnet's
import efcnet
torch.set_num_threads(1)
efcnet.Fuser(sys.argv[1], sys.argv[2])
after_default = torch.get_num_threads()
efcnet.Fuser(sys.argv[1], sys.argv[2], threads=3)
print(after_default, torch.get_num_threads())
"""


def test_threads_change_only_when_a_number_is_given(golden):
    from conftest import NETWORK_WEIGHTS, SEEM_WEIGHTS, require

    try:
        import torch  # noqa: F401
    except ImportError:
        require(False, "python3-torch is missing: LibTorch's thread count is read through it")
    result = subprocess.run([sys.executable, "-c", THREADS_PROBE, str(NETWORK_WEIGHTS), str(SEEM_WEIGHTS)],
                            capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "3"]
