// Pairing by stem: exact names, any image extension, everything else reported or ignored.
#include <fstream>

#include <gtest/gtest.h>

#include "efcnet/image.h"
#include "support/temp_dir.h"

namespace efcnet {
namespace {

using efcnet::testing::TempDir;
using Paths = std::vector<std::string>;

void touch(const std::string& path) { std::ofstream{path} << "x"; }

TEST(PairByName, PairsStemsAndReportsTheRest) {
  TempDir root;
  const std::string a = root / "mri", f = root / "spect";
  std::filesystem::create_directories(a);
  std::filesystem::create_directories(f);
  for (const char* name : {"b.png", "a.png", "c.tif", "Case.png", "only_mri.jpg", "notes.txt", ".hidden.png"}) {
    touch(a + "/" + name);
  }
  std::filesystem::create_directory(a + "/d.png");  // a directory, not an image
  for (const char* name : {"a.png", "b.JPG", "c.png", "case.png", "only_spect.bmp", "dup.png", "dup.tif"}) {
    touch(f + "/" + name);
  }
  touch(a + "/dup.png");

  const Pairing p = pair_by_name(a, f);
  ASSERT_EQ(p.pairs.size(), 3u);
  EXPECT_EQ(p.pairs[0].name, "a");
  EXPECT_EQ(p.pairs[0].anatomical, a + "/a.png");
  EXPECT_EQ(p.pairs[0].functional, f + "/a.png");
  EXPECT_EQ(p.pairs[1].name, "b");
  EXPECT_EQ(p.pairs[1].functional, f + "/b.JPG");
  EXPECT_EQ(p.pairs[2].name, "c");
  EXPECT_EQ(p.pairs[2].anatomical, a + "/c.tif");
  EXPECT_EQ(p.unpaired_anatomical, (Paths{a + "/Case.png", a + "/dup.png", a + "/only_mri.jpg"}));
  EXPECT_EQ(p.unpaired_functional, (Paths{f + "/case.png", f + "/only_spect.bmp"}));
  EXPECT_EQ(p.ambiguous, (Paths{f + "/dup.png", f + "/dup.tif"}));
}

TEST(PairByName, EmptyDirectoriesGiveNothing) {
  TempDir root;
  const Pairing p = pair_by_name(root.path().string(), root.path().string());
  EXPECT_TRUE(p.pairs.empty());
  EXPECT_TRUE(p.unpaired_anatomical.empty() && p.unpaired_functional.empty() && p.ambiguous.empty());
}

TEST(PairByName, MissingDirectoryIsNamed) {
  TempDir root;
  const std::string missing = root / "nope";
  for (int side = 0; side < 2; ++side) {
    try {
      side == 0 ? pair_by_name(missing, root.path().string()) : pair_by_name(root.path().string(), missing);
      ADD_FAILURE() << "no error for a missing directory";
    } catch (const IoError& e) {
      EXPECT_EQ(std::string(e.what()), missing + ": no such directory");
    }
  }
}

TEST(PairByName, FileInsteadOfDirectoryIsNamed) {
  TempDir root;
  touch(root / "file.png");
  try {
    pair_by_name(root / "file.png", root.path().string());
    ADD_FAILURE() << "no error for a file";
  } catch (const IoError& e) {
    EXPECT_EQ(std::string(e.what()), root / "file.png" + ": not a directory");
  }
}

}  // namespace
}  // namespace efcnet
