// `efcnet phantom`: writes a synthetic, registered anatomical/functional pair (demo and tests).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "commands.h"
#include "efcnet/image.h"
#include "efcnet/volume.h"

namespace efcnet::cli {

void add_phantom_command(CLI::App& app) {
  struct Settings {
    std::string out_dir;
    int size = 256;
    PhantomKind kind = PhantomKind::spect;
    bool volume = false;
    int slices = 0;
    bool overwrite = false;
  };
  auto settings = std::make_shared<Settings>();
  CLI::App* cmd = app.add_subcommand(
      "phantom",
      "Write a synthetic anatomical.png + functional.png pair (no patient data) to try `efcnet fuse` on; with "
      "--volume a NIfTI pair (anatomical.nii.gz, functional.nii.gz) on two different grids and voxel orientations");
  cmd->add_option("--out-dir", settings->out_dir, "Directory to write into (created if missing)")->required();
  cmd->add_option("--size", settings->size, "Side of the square images in pixels (default: 256)")
      ->check(CLI::Range(32, 8192));
  const std::map<std::string, PhantomKind> kinds{
      {"spect", PhantomKind::spect}, {"pet", PhantomKind::pet}, {"ct", PhantomKind::ct}, {"gfp", PhantomKind::gfp}};
  cmd->add_option("--kind", settings->kind,
                  "spect: MRI + JET pseudo-coloured perfusion (default); pet: MRI + HOT pseudo-coloured uptake; "
                  "ct: MRI + grey CT; gfp: phase-contrast cells + green fluorescence")
      ->transform(CLI::CheckedTransformer(kinds, CLI::ignore_case));
  cmd->add_flag("--volume", settings->volume,
                "Write volumes instead: an MRI-like anatomical.nii.gz (--size x --size x --slices voxels, 220 x 220 x "
                "150 mm) and a SPECT/PET-like functional.nii.gz at half the resolution, stored as coronal slices in "
                "another voxel order and shifted by a few mm (float32, both in LPS physical space)");
  cmd->add_option("--slices", settings->slices, "With --volume: anatomical slices (default: --size / 4)")
      ->check(CLI::Range(2, 4096));
  cmd->add_flag("--overwrite", settings->overwrite,
                "Replace an existing pair in --out-dir (otherwise either file being there is refused)");

  cmd->callback([settings] {
    std::error_code ec;
    std::filesystem::create_directories(settings->out_dir, ec);
    if (!std::filesystem::is_directory(settings->out_dir)) {
      throw std::runtime_error(settings->out_dir + ": cannot create the directory" + (ec ? ": " + ec.message() : ""));
    }
    if (!settings->volume && settings->slices > 0) throw std::runtime_error("phantom: --slices is for --volume");
    const std::filesystem::path dir(settings->out_dir);
    const char* extension = settings->volume ? ".nii.gz" : ".png";
    const std::string anatomical = (dir / "anatomical").string() + extension;
    const std::string functional = (dir / "functional").string() + extension;
    for (const std::string& path : {anatomical, functional}) refuse_existing_output(path, settings->overwrite);
    const WriteMode mode = settings->overwrite ? WriteMode::replace : WriteMode::no_clobber;
    if (settings->volume) {
      const VolumePhantom phantom = make_volume_phantom(
          settings->size, settings->slices > 0 ? settings->slices : std::max(2, settings->size / 4));
      write_volume_atomic(anatomical, phantom.anatomical, mode);
      write_volume_atomic(functional, phantom.functional, mode);
    } else {
      const Phantom phantom = make_phantom(settings->size, settings->kind);
      write_image_atomic(anatomical, phantom.anatomical, mode);
      write_image_atomic(functional, phantom.functional, mode);
    }
    std::printf("%s\n%s\n", anatomical.c_str(), functional.c_str());
  });
}

}  // namespace efcnet::cli
