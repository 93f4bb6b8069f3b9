#include "efcnet/threads.h"

#include <algorithm>
#include <thread>

namespace efcnet {

int core_count() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

int thread_count(int requested) { return requested > 0 ? requested : core_count(); }

}  // namespace efcnet
