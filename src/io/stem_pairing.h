// Pairing by name, shared by images (pair_by_name) and volumes (pair_volumes_by_name): the two
// differ only in which directory entries they list and what they call an entry's stem.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "efcnet/image.h"

namespace efcnet::io {

// stem -> every entry of a directory with that stem, each list sorted.
using EntriesByStem = std::map<std::string, std::vector<std::string>>;

// The visible entries of `dir` (hidden ones, our own temporaries among them, are skipped) that
// `stem_of` gives a stem; IoError when `dir` is missing, not a directory or cannot be listed.
EntriesByStem entries_by_stem(
    const std::string& dir,
    const std::function<std::optional<std::string>(const std::filesystem::directory_entry&)>& stem_of);

// A pair for each stem with exactly one entry on both sides; every other entry is unpaired, or
// ambiguous where its side holds several with that stem.
Pairing pair_stems(const EntriesByStem& anatomical, const EntriesByStem& functional);

}  // namespace efcnet::io
