// How many threads "all cores" means (LibTorch-free: the commands and the library share it).
#pragma once

namespace efcnet {

// Cores the system reports (std::thread::hardware_concurrency), at least 1.
int core_count();

// A --threads value resolved: `requested` when positive, else core_count().
int thread_count(int requested);

}  // namespace efcnet
