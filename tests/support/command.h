// Running a shell command from a test, its exit status and output captured.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "support/temp_dir.h"

namespace efcnet::testing {

// Single-quotes a path or argument for the shell (test paths hold no quotes).
inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline bool contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

struct CommandResult {
  int status = -1;  // exit code, or 128 + signal
  std::string out, err;
};

// Runs `command` through the shell with stdout and stderr captured in (removed) files in `scratch`.
inline CommandResult run_command(const std::string& command, const TempDir& scratch) {
  const std::string out = scratch / ".stdout", err = scratch / ".stderr";
  const int rc = std::system((command + " >" + quoted(out) + " 2>" + quoted(err)).c_str());
  CommandResult r;
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  r.out = slurp(out);
  r.err = slurp(err);
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

}  // namespace efcnet::testing
