// A fused volume written as a DICOM series (LibTorch-free; GDCM behind it, no GDCM type here).
//
// The series is one Multi-frame True Color Secondary Capture Image (RGB) or Multi-frame Grayscale
// Byte Secondary Capture Image (grey) file whose Frame of Reference and Pixel Measures, Plane
// Orientation (Patient) and Plane Position (Patient) functional groups carry the anatomical grid:
// the two standard IODs that hold 8-bit colour or grey with patient geometry without an
// acquisition's attributes (README, "DICOM output", says why these).
#pragma once

#include <string>

#include "efcnet/files.h"  // WriteMode
#include "efcnet/volume.h"

namespace efcnet {

struct DicomOutputOptions {
  // The anatomical input the volume lies on. A DICOM series directory or DICOM file gives the
  // patient and study (Patient and General Study modules copied), the frame of reference, the
  // laterality and body part; anything else (a NIfTI file, or empty) a new study with generated
  // UIDs and empty patient fields.
  std::string anatomical;
  std::string series_description;      // (0008,103E); cut to DICOM's 64 characters
  std::string derivation_description;  // (0008,2111): software, model, options; cut to 1024
  std::string software_versions;       // (0018,1019)
};

struct DicomSeriesWritten {
  bool patient_from_anatomical = false;  // false: a new study, empty patient fields
  std::string study_uid, series_uid, frame_of_reference_uid;
  std::string file;  // the series' one file, in the directory as renamed into place
};

// Writes `volume` (1 channel: grey, 3: colour) as a DICOM series in directory `dir`, with its
// geometry per frame. The series is written into a hidden temporary directory beside `dir` and
// renamed into place, so `dir` is either absent, the old series or the complete new one; the
// temporary is removed on every failure. IoError (naming `dir`) when `dir` exists and is not a
// directory, when it exists and `mode` is no_clobber, when it holds anything but .dcm files (a
// directory that is not a series is never replaced), or when its parent directory is missing;
// VolumeError when the volume is too large for one DICOM file or the anatomical DICOM holds
// several series.
DicomSeriesWritten write_volume_dicom_atomic(const std::string& dir, const ByteVolume& volume,
                                             const DicomOutputOptions& options, WriteMode mode = WriteMode::no_clobber);

// The refusals of write_volume_dicom_atomic that need no volume (the directory and its parent),
// for a check before any work.
void check_dicom_output(const std::string& dir, WriteMode mode = WriteMode::no_clobber);

}  // namespace efcnet
