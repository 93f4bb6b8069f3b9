// `efcnet train --nproc-per-node N`: starts the ranks of this host itself, as torchrun would.
#pragma once

#include <string>

namespace efcnet::cli {

struct LocalLaunch {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr;  // empty: 127.0.0.1 on a free port (one host only)
  int master_port = 0;
};

// Runs this process's own command line (less the launcher's options) once per local rank, with
// the torchrun variables set (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK,
// MASTER_ADDR, MASTER_PORT), and waits for them. When one fails, it says which and stops the
// others; SIGINT/SIGTERM/SIGHUP are passed on. Returns the first failure's exit code (128 + signal
// for a rank killed by a signal), or 0.
int launch_local_ranks(const LocalLaunch& launch);

}  // namespace efcnet::cli
