// Everything the efcnet library offers, in one include (needs LibTorch, as efcnet::efcnet does).
// A program that needs less includes less: the LibTorch-free parts (image.h, metrics.h,
// evaluation.h, volume.h, ...) say so at their top.
#pragma once

#include "efcnet/version.h"

// Errors, files and process settings.
#include "efcnet/error.h"
#include "efcnet/files.h"
#include "efcnet/progress.h"
#include "efcnet/runtime.h"

// Images, fusion and models.
#include "efcnet/image.h"
#include "efcnet/inference_options.h"
#include "efcnet/models.h"
#include "efcnet/pipeline.h"

// The networks and their weights.
#include "efcnet/inference.h"
#include "efcnet/model.h"
#include "efcnet/weights.h"
#include "efcnet/weights_records.h"

// Scoring and comparing fusions.
#include "efcnet/compare.h"
#include "efcnet/evaluation.h"
#include "efcnet/metrics.h"

// Volumes: reading, registration, fusion, DICOM output.
#include "efcnet/registration.h"
#include "efcnet/registration_bench.h"
#include "efcnet/volume.h"
#include "efcnet/volume_dicom.h"
#include "efcnet/volume_fusion.h"

// Training.
#include "efcnet/train.h"
