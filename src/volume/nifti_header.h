// NIfTI-1 header checks that must come before ITK reads a file (internal to src/volume): ITK's
// NIfTI reader aborts the process (in VNL) on a non-finite qform or sform, and nifti1_io turns a
// zero or non-finite pixdim into 1 without a word. ITK-free (nifti1_io is plain C), so that they
// build into the volume fuzz target, which Debian's ITK headers (GCC only) keep out of clang.
#pragma once

#include <string>

namespace efcnet::detail {

// Throws IoError for a file that is not a NIfTI-1 header, VolumeError (naming the file) for a
// spacing that is not finite and non-zero, or a declared qform or sform that is not finite or is
// singular.
void check_nifti_header(const std::string& path);

}  // namespace efcnet::detail
