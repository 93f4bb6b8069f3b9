// efcnet.evaluate_dirs and efcnet.evaluate_volume: `efcnet evaluate` on directories and volumes
// (evaluation.h), and the metrics as Python sees them.
#pragma once

#include <pybind11/pybind11.h>

#include "efcnet/metrics.h"

namespace efcnet::python {

// {"EN": ..., ..., "MSE": ...} in kMetricNames order.
pybind11::dict metrics_dict(const metrics::FusionMetrics& m);

void def_evaluation_functions(pybind11::module_& m);

}  // namespace efcnet::python
