// A fused volume as a DICOM series: one multi-frame Secondary Capture file with the anatomical
// grid in its Frame of Reference and functional groups (PS3.3 A.8.5.3 / A.8.5.4), written with
// GDCM into a hidden temporary directory that is renamed into place.
#include <fcntl.h>
#include <stdio.h>  // renameat2, RENAME_NOREPLACE, RENAME_EXCHANGE (glibc, _GNU_SOURCE)
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include <gdcmFileExplicitFilter.h>
#include <gdcmItem.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmUIDGenerator.h>
#include <gdcmWriter.h>
#include <itkGDCMSeriesFileNames.h>

#include "efcnet/volume_dicom.h"
#include "volume/itk_convert.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;

constexpr const char* kTrueColorSc = "1.2.840.10008.5.1.4.1.1.7.4";      // Multi-frame True Color SC
constexpr const char* kGrayscaleByteSc = "1.2.840.10008.5.1.4.1.1.7.2";  // Multi-frame Grayscale Byte SC
constexpr const char* kFileName = "fused.dcm";

// ---- values ----

// Text in DICOM's default repertoire (printable ASCII), without the value delimiter '\', at most
// `limit` characters.
std::string plain_text(const std::string& text, std::size_t limit) {
  std::string out;
  for (const char c : text) {
    if (out.size() == limit) break;
    out += c == '\\' ? '/' : (c >= 0x20 && c <= 0x7e ? c : '?');
  }
  return out;
}

// A Decimal String value: at most 16 characters, as many digits as fit.
std::string decimal(double value) {
  if (std::abs(value) < 1e-12) value = 0;  // no "-0" nor 1e-17 noise from rotations
  char text[32];
  for (int digits = 12; digits > 0; --digits) {
    std::snprintf(text, sizeof text, "%.*g", digits, value);
    if (std::strlen(text) <= 16) break;
  }
  return text;
}

std::string decimals(const std::vector<double>& values) {
  std::string out;
  for (const double v : values) out += (out.empty() ? "" : "\\") + decimal(v);
  return out;
}

std::string now_text(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm local{};
  localtime_r(&t, &local);
  char text[32];
  std::strftime(text, sizeof text, format, &local);
  return text;
}

// ---- data elements ----

gdcm::DataElement element(uint16_t group, uint16_t number, gdcm::VR vr, std::string value) {
  // Even lengths: UIDs are padded with NUL, text with a space (PS3.5 6.2).
  if (value.size() % 2 != 0) value += vr == gdcm::VR::UI ? '\0' : ' ';
  gdcm::DataElement de(gdcm::Tag(group, number));
  de.SetVR(vr);
  de.SetByteValue(value.data(), static_cast<uint32_t>(value.size()));
  return de;
}

void put(gdcm::DataSet& ds, uint16_t group, uint16_t number, gdcm::VR vr, const std::string& value) {
  ds.Replace(element(group, number, vr, value));
}

void put_attribute_tag(gdcm::DataSet& ds, uint16_t group, uint16_t number, uint16_t tag_group, uint16_t tag_number) {
  const std::array<uint16_t, 2> words{tag_group, tag_number};  // AT: little endian group, then element
  gdcm::DataElement de(gdcm::Tag(group, number));
  de.SetVR(gdcm::VR::AT);
  de.SetByteValue(reinterpret_cast<const char*>(words.data()), 4);
  ds.Replace(de);
}

// A sequence of the given items, each a data set.
void put_sequence(gdcm::DataSet& ds, uint16_t group, uint16_t number, const std::vector<gdcm::DataSet>& items) {
  gdcm::SmartPointer<gdcm::SequenceOfItems> sequence = new gdcm::SequenceOfItems;
  sequence->SetLengthToUndefined();
  for (const gdcm::DataSet& nested : items) {
    gdcm::Item item;
    item.SetVLToUndefined();
    item.SetNestedDataSet(nested);
    sequence->AddItem(item);
  }
  gdcm::DataElement de(gdcm::Tag(group, number));
  de.SetVR(gdcm::VR::SQ);
  de.SetValue(*sequence);
  de.SetVLToUndefined();
  ds.Replace(de);
}

// ---- the anatomical DICOM ----

// A file of the anatomical series (any: they share patient, study and frame of reference).
std::string anatomical_file(const std::string& path) {
  if (!fs::is_directory(path)) return path;
  auto names = itk::GDCMSeriesFileNames::New();
  names->SetUseSeriesDetails(false);
  std::vector<std::string> uids;
  try {
    names->SetDirectory(path);
    uids = names->GetSeriesUIDs();
  } catch (const itk::ExceptionObject& e) {
    throw IoError(path + ": cannot list DICOM files: " + detail::itk_message(e));
  }
  if (uids.size() != 1) {
    throw VolumeError(path + ": holds " + std::to_string(uids.size()) +
                      " DICOM series; the patient and study are taken from one");
  }
  const std::vector<std::string> files = names->GetFileNames(uids.front());
  if (files.empty()) throw VolumeError(path + ": no DICOM images in this directory");
  return files.front();
}

// Its header (no pixel data), every element with an explicit VR.
gdcm::DataSet anatomical_header(const std::string& path) {
  const std::string file = anatomical_file(path);
  gdcm::Reader reader;
  reader.SetFileName(file.c_str());
  if (!reader.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010))) throw IoError(file + ": cannot read its DICOM header");
  gdcm::FileExplicitFilter explicit_vr;
  explicit_vr.SetFile(reader.GetFile());
  explicit_vr.Change();
  return reader.GetFile().GetDataSet();
}

// Patient (group 0010 with its de-identification attributes) and General Study modules, the
// character set they are written in, and the series attributes a derived series shares.
bool copied_from_anatomical(const gdcm::Tag& tag) {
  static const std::array<gdcm::Tag, 30> kTags{{
      {0x0008, 0x0005},  // Specific Character Set
      {0x0008, 0x0020},  // Study Date
      {0x0008, 0x0030},  // Study Time
      {0x0008, 0x0050},  // Accession Number
      {0x0008, 0x0051},  // Issuer of Accession Number Sequence
      {0x0008, 0x0090},  // Referring Physician's Name
      {0x0008, 0x0096},  // Referring Physician Identification Sequence
      {0x0008, 0x009c},  // Consulting Physician's Name
      {0x0008, 0x009d},  // Consulting Physician Identification Sequence
      {0x0008, 0x1030},  // Study Description
      {0x0008, 0x1032},  // Procedure Code Sequence
      {0x0008, 0x1048},  // Physician(s) of Record
      {0x0008, 0x1049},  // Physician(s) of Record Identification Sequence
      {0x0008, 0x1060},  // Name of Physician(s) Reading Study
      {0x0008, 0x1062},  // Physician(s) Reading Study Identification Sequence
      {0x0008, 0x1110},  // Referenced Study Sequence
      {0x0012, 0x0062},  // Patient Identity Removed
      {0x0012, 0x0063},  // De-identification Method
      {0x0012, 0x0064},  // De-identification Method Code Sequence
      {0x0018, 0x0015},  // Body Part Examined
      {0x0020, 0x000d},  // Study Instance UID
      {0x0020, 0x0010},  // Study ID
      {0x0020, 0x0052},  // Frame of Reference UID
      {0x0020, 0x0060},  // Laterality
      {0x0020, 0x1040},  // Position Reference Indicator
      {0x0032, 0x1033},  // Requesting Service
      {0x0032, 0x1034},  // Requesting Service Code Sequence
      {0x0032, 0x1066},  // Reason for Visit
      {0x0032, 0x1067},  // Reason for Visit Code Sequence
      {0x0040, 0x1012},  // Reason For Performed Procedure Code Sequence
  }};
  return tag.GetGroup() == 0x0010 || std::find(kTags.begin(), kTags.end(), tag) != kTags.end();
}

// An empty attribute or a sequence without items is not copied: the copied ones are optional
// (type 3) or written empty below (type 2), and an empty type 3 sequence is invalid.
bool has_value(const gdcm::DataElement& de) {
  if (de.IsEmpty()) return false;
  if (de.GetVR() != gdcm::VR::SQ) return true;
  const gdcm::SmartPointer<gdcm::SequenceOfItems> items = de.GetValueAsSQ();
  return items && items->GetNumberOfItems() > 0;
}

std::string text_of(const gdcm::DataSet& ds, uint16_t group, uint16_t number) {
  const gdcm::Tag tag(group, number);
  if (!ds.FindDataElement(tag)) return "";
  const gdcm::ByteValue* value = ds.GetDataElement(tag).GetByteValue();
  if (value == nullptr) return "";
  std::string text(value->GetPointer(), value->GetLength());
  while (!text.empty() && (text.back() == ' ' || text.back() == '\0')) text.pop_back();
  return text;
}

// ---- the series ----

// Patient, study and frame of reference: copied, or new (type 2 attributes present and empty).
bool add_patient_and_study(gdcm::DataSet& ds, const std::string& anatomical, gdcm::UIDGenerator& uids) {
  const bool from_dicom = !anatomical.empty() && is_volume_path(anatomical) && !has_volume_extension(anatomical);
  if (from_dicom) {
    const gdcm::DataSet source = anatomical_header(anatomical);
    for (const gdcm::DataElement& de : source.GetDES()) {
      if (copied_from_anatomical(de.GetTag()) && has_value(de)) ds.Replace(de);
    }
  }
  // Type 2: present, empty when unknown.
  const std::array<std::tuple<uint16_t, uint16_t, gdcm::VR::VRType>, 10> kType2{{
      {0x0008, 0x0020, gdcm::VR::DA},  // Study Date
      {0x0008, 0x0030, gdcm::VR::TM},  // Study Time
      {0x0008, 0x0050, gdcm::VR::SH},  // Accession Number
      {0x0008, 0x0090, gdcm::VR::PN},  // Referring Physician's Name
      {0x0010, 0x0010, gdcm::VR::PN},  // Patient's Name
      {0x0010, 0x0020, gdcm::VR::LO},  // Patient ID
      {0x0010, 0x0030, gdcm::VR::DA},  // Patient's Birth Date
      {0x0010, 0x0040, gdcm::VR::CS},  // Patient's Sex
      {0x0020, 0x0010, gdcm::VR::SH},  // Study ID
      {0x0020, 0x1040, gdcm::VR::LO},  // Position Reference Indicator
  }};
  const bool new_study = text_of(ds, 0x0020, 0x000d).empty();
  if (new_study) {
    put(ds, 0x0020, 0x000d, gdcm::VR::UI, uids.Generate());
    put(ds, 0x0008, 0x0020, gdcm::VR::DA, now_text("%Y%m%d"));
    put(ds, 0x0008, 0x0030, gdcm::VR::TM, now_text("%H%M%S"));
  }
  for (const auto& [group, number, vr] : kType2) {
    if (!ds.FindDataElement(gdcm::Tag(group, number))) put(ds, group, number, vr, "");
  }
  // Laterality (type 2C): given for a paired body part, absent for an unpaired one, empty when the
  // body part is unknown.
  if (!ds.FindDataElement(gdcm::Tag(0x0018, 0x0015)) && !ds.FindDataElement(gdcm::Tag(0x0020, 0x0060)))
    put(ds, 0x0020, 0x0060, gdcm::VR::CS, "");
  if (text_of(ds, 0x0020, 0x0052).empty()) put(ds, 0x0020, 0x0052, gdcm::VR::UI, uids.Generate());
  return from_dicom;
}
// Image Pixel, SC Multi-frame Image and the functional groups with the grid's geometry.
void add_image(gdcm::DataSet& ds, const ByteVolume& volume) {
  const VolumeGeometry& g = volume.geometry;
  const bool colour = volume.channels == 3;
  const auto put_us = [&ds](uint16_t number, uint16_t value) {
    gdcm::DataElement de(gdcm::Tag(0x0028, number));
    de.SetVR(gdcm::VR::US);
    de.SetByteValue(reinterpret_cast<const char*>(&value), 2);
    ds.Replace(de);
  };
  put_us(0x0002, colour ? 3 : 1);  // Samples per Pixel
  put(ds, 0x0028, 0x0004, gdcm::VR::CS, colour ? "RGB" : "MONOCHROME2");
  if (colour) put_us(0x0006, 0);                                     // Planar Configuration: R, G, B per pixel
  put(ds, 0x0028, 0x0008, gdcm::VR::IS, std::to_string(g.size[2]));  // Number of Frames
  put_attribute_tag(ds, 0x0028, 0x0009, 0x0018, 0x2005);             // Frame Increment Pointer: Slice Location Vector
  put_us(0x0010, static_cast<uint16_t>(g.size[1]));                  // Rows
  put_us(0x0011, static_cast<uint16_t>(g.size[0]));                  // Columns
  put_us(0x0100, 8);                                                 // Bits Allocated
  put_us(0x0101, 8);                                                 // Bits Stored
  put_us(0x0102, 7);                                                 // High Bit
  put_us(0x0103, 0);                                                 // Pixel Representation: unsigned
  put(ds, 0x0028, 0x0301, gdcm::VR::CS, "NO");                       // Burned In Annotation
  if (!colour) {
    put(ds, 0x2050, 0x0020, gdcm::VR::CS, "IDENTITY");  // Presentation LUT Shape
    put(ds, 0x0028, 0x1052, gdcm::VR::DS, "0");         // Rescale Intercept
    put(ds, 0x0028, 0x1053, gdcm::VR::DS, "1");         // Rescale Slope
    put(ds, 0x0028, 0x1054, gdcm::VR::LO, "US");        // Rescale Type: unspecified
  }

  // Voxel (i, j, k): column i, row j of frame k. Rows run along voxel axis j, columns along i.
  const auto& d = g.direction;
  const std::array<double, 3> row{d[0], d[3], d[6]}, column{d[1], d[4], d[7]};
  const std::array<double, 3> normal{row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2],
                                     row[0] * column[1] - row[1] * column[0]};
  gdcm::DataSet measures, orientation, shared;
  put(measures, 0x0028, 0x0030, gdcm::VR::DS, decimals({g.spacing[1], g.spacing[0]}));  // row, column spacing
  put(measures, 0x0018, 0x0050, gdcm::VR::DS, decimal(g.spacing[2]));                   // Slice Thickness
  put(measures, 0x0018, 0x0088, gdcm::VR::DS, decimal(g.spacing[2]));                   // Spacing Between Slices
  put(orientation, 0x0020, 0x0037, gdcm::VR::DS, decimals({row[0], row[1], row[2], column[0], column[1], column[2]}));
  put_sequence(shared, 0x0028, 0x9110, {measures});     // Pixel Measures Sequence
  put_sequence(shared, 0x0020, 0x9116, {orientation});  // Plane Orientation Sequence
  put_sequence(ds, 0x5200, 0x9229, {shared});           // Shared Functional Groups Sequence

  std::vector<gdcm::DataSet> frames;
  std::vector<double> locations;
  for (int64_t k = 0; k < g.size[2]; ++k) {
    const std::array<double, 3> p = g.physical_point(0, 0, static_cast<double>(k));
    gdcm::DataSet position, frame;
    put(position, 0x0020, 0x0032, gdcm::VR::DS, decimals({p[0], p[1], p[2]}));
    put_sequence(frame, 0x0020, 0x9113, {position});  // Plane Position Sequence
    frames.push_back(frame);
    locations.push_back(normal[0] * p[0] + normal[1] * p[1] + normal[2] * p[2]);
  }
  put_sequence(ds, 0x5200, 0x9230, frames);                    // Per-frame Functional Groups Sequence
  put(ds, 0x0018, 0x2005, gdcm::VR::DS, decimals(locations));  // Slice Location Vector

  // B, G, R per voxel (OpenCV's order) -> R, G, B; an odd length padded to even.
  std::string pixels(volume.voxels.size() + volume.voxels.size() % 2, '\0');
  if (colour) {
    for (std::size_t v = 0; v + 2 < volume.voxels.size(); v += 3) {
      pixels[v] = static_cast<char>(volume.voxels[v + 2]);
      pixels[v + 1] = static_cast<char>(volume.voxels[v + 1]);
      pixels[v + 2] = static_cast<char>(volume.voxels[v]);
    }
  } else {
    std::copy(volume.voxels.begin(), volume.voxels.end(), pixels.begin());
  }
  gdcm::DataElement pixel_data(gdcm::Tag(0x7fe0, 0x0010));
  pixel_data.SetVR(gdcm::VR::OB);
  pixel_data.SetByteValue(pixels.data(), static_cast<uint32_t>(pixels.size()));
  ds.Replace(pixel_data);
}

// SOP Common, General Series, SC Equipment, General Equipment and General Image.
void add_series(gdcm::DataSet& ds, bool colour, const DicomOutputOptions& options, const std::string& series_uid,
                gdcm::UIDGenerator& uids) {
  const std::string date = now_text("%Y%m%d"), time = now_text("%H%M%S");
  put(ds, 0x0008, 0x0016, gdcm::VR::UI, colour ? kTrueColorSc : kGrayscaleByteSc);  // SOP Class UID
  put(ds, 0x0008, 0x0018, gdcm::VR::UI, uids.Generate());                           // SOP Instance UID
  put(ds, 0x0008, 0x0012, gdcm::VR::DA, date);                                      // Instance Creation Date
  put(ds, 0x0008, 0x0013, gdcm::VR::TM, time);                                      // Instance Creation Time
  put(ds, 0x0008, 0x0008, gdcm::VR::CS, "DERIVED\\SECONDARY\\FUSION");              // Image Type
  put(ds, 0x0008, 0x0023, gdcm::VR::DA, date);                                      // Content Date
  put(ds, 0x0008, 0x0033, gdcm::VR::TM, time);                                      // Content Time
  put(ds, 0x0008, 0x0021, gdcm::VR::DA, date);                                      // Series Date
  put(ds, 0x0008, 0x0031, gdcm::VR::TM, time);                                      // Series Time
  put(ds, 0x0008, 0x0060, gdcm::VR::CS, "OT");                                      // Modality: other (a fusion of two)
  put(ds, 0x0008, 0x0064, gdcm::VR::CS, "WSD");                                     // Conversion Type: workstation
  put(ds, 0x0008, 0x0070, gdcm::VR::LO, "efcnet");                                  // Manufacturer
  put(ds, 0x0018, 0x1016, gdcm::VR::LO, "efcnet");       // Secondary Capture Device Manufacturer
  put(ds, 0x0018, 0x1018, gdcm::VR::LO, "efcnet fuse");  // Secondary Capture Device Manufacturer's Model Name
  if (!options.software_versions.empty())
    put(ds, 0x0018, 0x1019, gdcm::VR::LO, plain_text(options.software_versions, 64));
  put(ds, 0x0008, 0x103e, gdcm::VR::LO, plain_text(options.series_description, 64));
  if (!options.derivation_description.empty())
    put(ds, 0x0008, 0x2111, gdcm::VR::ST, plain_text(options.derivation_description, 1024));
  put(ds, 0x0020, 0x000e, gdcm::VR::UI, series_uid);  // Series Instance UID
  put(ds, 0x0020, 0x0011, gdcm::VR::IS, "");          // Series Number (type 2)
  put(ds, 0x0020, 0x0013, gdcm::VR::IS, "1");         // Instance Number
  put(ds, 0x0020, 0x0020, gdcm::VR::CS, "");          // Patient Orientation (type 2C; the geometry says it)
}

// `dir` names the series in messages (`path` is in the temporary directory).
void write_series_file(const std::string& path, const gdcm::DataSet& ds, const std::string& dir) {
  gdcm::Writer writer;
  writer.SetFileName(path.c_str());
  writer.GetFile().GetHeader().SetDataSetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
  writer.GetFile().SetDataSet(ds);
  if (!writer.Write()) throw IoError(dir + ": cannot write the DICOM file (disk full?)");
}

// ---- the directory, atomically ----

[[noreturn]] void fail(const std::string& dir, const std::string& what, int err) {
  throw IoError(dir + ": " + what + (err != 0 ? std::string(": ") + std::strerror(err) : ""));
}

void sync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Removes the temporary directory (and whatever it holds) on every path.
class ScratchDirectory {
 public:
  explicit ScratchDirectory(std::string path) : path_(std::move(path)) {}
  ~ScratchDirectory() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An existing `dir` may be replaced only when it is a directory of .dcm files (a former output).
void check_replaceable(const std::string& dir, WriteMode mode) {
  std::error_code ec;
  const fs::file_status status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) return;
  if (!fs::is_directory(status))
    fail(dir, "exists and is not a directory; a DICOM series is written as a directory", 0);
  if (mode == WriteMode::no_clobber) throw OutputExistsError(dir);
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".dcm") {
      fail(dir, "holds " + entry.path().filename().string() + ", not only a DICOM series (.dcm files); not replaced",
           0);
    }
  }
  if (ec) fail(dir, "cannot list the directory", ec.value());
}

// Renames the complete temporary directory onto `dir`: without replacing anything (no_clobber),
// or exchanging the two and removing the old series (replace).
void rename_into_place(const std::string& scratch, const std::string& dir, WriteMode mode) {
  std::error_code ec;
  const bool exists = fs::exists(fs::symlink_status(dir, ec));
  if (!exists || mode == WriteMode::no_clobber) {
    if (::renameat2(AT_FDCWD, scratch.c_str(), AT_FDCWD, dir.c_str(), RENAME_NOREPLACE) == 0) return;
    const int err = errno;
    if (err == EEXIST || err == ENOTEMPTY) throw OutputExistsError(dir);
    if (err != EINVAL && err != ENOSYS) fail(dir, "cannot rename into place", err);
    // A filesystem without RENAME_NOREPLACE: rename() would replace an empty directory only.
    if (fs::exists(fs::symlink_status(dir, ec))) throw OutputExistsError(dir);
    if (::rename(scratch.c_str(), dir.c_str()) != 0) fail(dir, "cannot rename into place", errno);
    return;
  }
  if (::renameat2(AT_FDCWD, scratch.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) return;
  // `scratch` now holds the old series, removed with it. Without RENAME_EXCHANGE: the old series
  // is moved aside first, and back if the new one cannot take its place.
  const int err = errno;
  if (err != EINVAL && err != ENOSYS) fail(dir, "cannot replace the existing series", err);
  const std::string aside = scratch + ".old";
  if (::rename(dir.c_str(), aside.c_str()) != 0) fail(dir, "cannot replace the existing series", errno);
  if (::rename(scratch.c_str(), dir.c_str()) != 0) {
    const int rename_err = errno;
    ::rename(aside.c_str(), dir.c_str());
    fail(dir, "cannot rename into place", rename_err);
  }
  fs::remove_all(aside, ec);
}

std::string scratch_name(const std::string& dir) {
  static std::atomic<unsigned> counter{0};
  const fs::path target = fs::path(dir).lexically_normal();
  const fs::path name = target.has_filename() ? target.filename() : target.parent_path().filename();
  const fs::path parent = target.has_filename() ? target.parent_path() : target.parent_path().parent_path();
  return ((parent.empty() ? fs::path(".") : parent) /
          ("." + name.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1))))
      .string();
}

}  // namespace

void check_dicom_output(const std::string& dir, WriteMode mode) {
  const fs::path parent = fs::path(scratch_name(dir)).parent_path();
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) fail(dir, "directory " + parent.string() + " does not exist", 0);
  check_replaceable(dir, mode);
}

DicomSeriesWritten write_volume_dicom_atomic(const std::string& dir, const ByteVolume& volume,
                                             const DicomOutputOptions& options, WriteMode mode) {
  const VolumeGeometry& g = volume.geometry;
  const auto n = static_cast<std::size_t>(g.voxel_count());
  if ((volume.channels != 1 && volume.channels != 3) || volume.voxels.size() != n * volume.channels) {
    throw VolumeError(dir + ": a volume of " + std::to_string(volume.channels) + " channel(s) does not match its " +
                      g.text());
  }
  if (g.size[0] > 65535 || g.size[1] > 65535 || volume.voxels.size() > 0xfffffffeu) {
    throw VolumeError(dir + ": " + g.text() +
                      " is too large for one DICOM file (at most 65535 rows and columns, 4 GB)");
  }
  check_dicom_output(dir, mode);
  const std::string scratch_path = scratch_name(dir);
  const fs::path parent = fs::path(scratch_path).parent_path();

  gdcm::UIDGenerator uids;
  gdcm::DataSet ds;
  DicomSeriesWritten written;
  written.patient_from_anatomical = add_patient_and_study(ds, options.anatomical, uids);
  written.series_uid = uids.Generate();
  add_series(ds, volume.channels == 3, options, written.series_uid, uids);
  add_image(ds, volume);
  written.study_uid = text_of(ds, 0x0020, 0x000d);
  written.frame_of_reference_uid = text_of(ds, 0x0020, 0x0052);

  if (::mkdir(scratch_path.c_str(), 0777) != 0) fail(dir, "cannot create a temporary directory beside it", errno);
  ScratchDirectory scratch(scratch_path);
  const std::string file = (fs::path(scratch.path()) / kFileName).string();
  write_series_file(file, ds, dir);
  sync_path(file);
  sync_path(scratch.path());
  rename_into_place(scratch.path(), dir, mode);
  sync_path(parent.string());
  written.file = (fs::path(dir) / kFileName).string();
  return written;
}

}  // namespace efcnet
