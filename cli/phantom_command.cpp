// `efcnet phantom`: writes a synthetic, registered anatomical/functional pair (demo and tests).
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include "commands.h"
#include "efcnet/image.h"

namespace efcnet::cli {

void add_phantom_command(CLI::App& app) {
  struct Settings {
    std::string out_dir;
    int size = 256;
    PhantomKind kind = PhantomKind::spect;
  };
  auto settings = std::make_shared<Settings>();
  CLI::App* cmd = app.add_subcommand(
      "phantom", "Write a synthetic anatomical.png + functional.png pair (no patient data) to try `efcnet fuse` on");
  cmd->add_option("--out-dir", settings->out_dir, "Directory to write into (created if missing)")->required();
  cmd->add_option("--size", settings->size, "Side of the square images in pixels (default: 256)")
      ->check(CLI::Range(32, 8192));
  const std::map<std::string, PhantomKind> kinds{
      {"spect", PhantomKind::spect}, {"pet", PhantomKind::pet}, {"ct", PhantomKind::ct}, {"gfp", PhantomKind::gfp}};
  cmd->add_option("--kind", settings->kind,
                  "spect: MRI + JET pseudo-coloured perfusion (default); pet: MRI + HOT pseudo-coloured uptake; "
                  "ct: MRI + grey CT; gfp: phase-contrast cells + green fluorescence")
      ->transform(CLI::CheckedTransformer(kinds, CLI::ignore_case));

  cmd->callback([settings] {
    std::error_code ec;
    std::filesystem::create_directories(settings->out_dir, ec);
    if (!std::filesystem::is_directory(settings->out_dir)) {
      throw std::runtime_error(settings->out_dir + ": cannot create the directory" + (ec ? ": " + ec.message() : ""));
    }
    const Phantom phantom = make_phantom(settings->size, settings->kind);
    const std::filesystem::path dir(settings->out_dir);
    write_image_atomic((dir / "anatomical.png").string(), phantom.anatomical);
    write_image_atomic((dir / "functional.png").string(), phantom.functional);
    std::printf("%s\n%s\n", (dir / "anatomical.png").c_str(), (dir / "functional.png").c_str());
  });
}

}  // namespace efcnet::cli
