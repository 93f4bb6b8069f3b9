// efcnet.fuse_volume and efcnet.fuse_volume_dirs: `efcnet fuse` on volume files (volume_fusion.h).
#pragma once

#include <pybind11/pybind11.h>

namespace efcnet::python {

void def_volume_functions(pybind11::module_& m);

}  // namespace efcnet::python
