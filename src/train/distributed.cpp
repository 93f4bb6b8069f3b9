// Data-parallel training on c10d: rendezvous, collectives with fault reports naming the missing
// rank, bucketed gradient averaging overlapped with backward, synchronised BatchNorm.
#include "train/distributed.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "c10d_compat.h"

namespace efcnet {

bool distributed_training_available() {
#ifdef EFCNET_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

#ifndef EFCNET_HAVE_GLOO

struct DistributedGroup::Backend {};
struct DistributedGroup::Pending::Work {};

DistributedGroup::DistributedGroup(const DistributedOptions&, const torch::Device&) {
  throw TrainingError(
      "this efcnet was built without c10d's Gloo backend (the gloo headers, Debian's libgloo-dev, were missing), "
      "so it trains in one process only; install libgloo-dev and rebuild to train on several ranks");
}
DistributedGroup::~DistributedGroup() = default;
void DistributedGroup::Pending::wait() {}
void DistributedGroup::broadcast_from_rank0(std::vector<torch::Tensor>) {}
void DistributedGroup::all_reduce_sum(torch::Tensor) {}
DistributedGroup::Pending DistributedGroup::all_reduce_sum_async(torch::Tensor) { return {}; }
void DistributedGroup::barrier() {}
void DistributedGroup::agree(const std::string&) {}
void DistributedGroup::check_equal(uint64_t, const std::string&) {}
void DistributedGroup::post_error(const std::string&) noexcept {}
void DistributedGroup::fail(const std::string& cause) { throw DistributedFault(cause); }

#else

namespace {

using Clock = std::chrono::steady_clock;

std::string seconds_text(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", static_cast<double>(duration.count()) / 1000.0);
  return text;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size(); ++i) text += (i ? ", " : "") + std::to_string(ranks[i]);
  return text;
}

std::vector<uint8_t> to_bytes(const std::string& text) { return {text.begin(), text.end()}; }
std::string from_bytes(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

std::string store_key(const std::string& kind, int rank) { return "efcnet/" + kind + "/" + std::to_string(rank); }

// The local address that packets to the master leave from: on several hosts that is the interface
// the peers can reach this rank on too (a UDP connect() sends nothing, it only picks the route).
std::string address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (const int err = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); err != 0) {
    throw TrainingError("cannot resolve the master address '" + host + "': " + ::gai_strerror(err));
  }
  std::string address;
  for (addrinfo* a = found; a != nullptr && address.empty(); a = a->ai_next) {
    const int fd = ::socket(a->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    char text[INET6_ADDRSTRLEN] = {};
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      const void* raw = local.ss_family == AF_INET6
                            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                            : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
      if (::inet_ntop(local.ss_family, raw, text, sizeof text) != nullptr) address = text;
    }
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (address.empty()) throw TrainingError("no route from this host to the master " + host);
  return address;
}

std::shared_ptr< ::gloo::transport::Device> gloo_device(const DistributedOptions& options) {
  // The variable PyTorch users already set on hosts with several interfaces.
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface != nullptr && *interface != '\0') {
    return ::c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  return ::c10d::ProcessGroupGloo::createDeviceForHostname(address_towards(options.master_addr, options.master_port));
}

}  // namespace

struct DistributedGroup::Backend {
  c10::intrusive_ptr< ::c10d::Store> store;
  c10::intrusive_ptr<c10d_compat::Backend> collectives;
  bool failed = false;
};

struct DistributedGroup::Pending::Work {
  c10::intrusive_ptr< ::c10d::Work> work;
};

DistributedGroup::DistributedGroup(const DistributedOptions& options, const torch::Device& device)
    : rank_(options.rank),
      world_size_(options.world_size),
      master_(options.master_addr + ":" + std::to_string(options.master_port)),
      timeout_(static_cast<int64_t>(options.timeout_seconds * 1000.0)),
      device_(device),
      backend_(std::make_unique<Backend>()) {
  if (world_size_ < 1) throw TrainingError("the world size must be at least 1, not " + std::to_string(world_size_));
  if (rank_ < 0 || rank_ >= world_size_) {
    throw TrainingError("rank " + std::to_string(rank_) + " is outside the world of " + std::to_string(world_size_) +
                        " ranks (0.." + std::to_string(world_size_ - 1) + ")");
  }
  if (options.master_port < 1 || options.master_port > 65535) {
    throw TrainingError("the master port must be in 1..65535, not " + std::to_string(options.master_port));
  }
  if (timeout_.count() < 100) throw TrainingError("the distributed timeout must be at least 0.1 s");
  // The roll call after a fault gets a slice of the timeout, so that a hung peer is still named
  // within it: collectives give up after (timeout - grace), the roll call takes at most grace.
  grace_ = std::min<std::chrono::milliseconds>(std::chrono::seconds(10), timeout_ / 4);

  ::c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(options.master_port);
  store_options.isServer = rank_ == 0 && !options.launcher_hosts_store;
  store_options.numWorkers = world_size_;
  store_options.waitWorkers = false;  // the check-in below names who is missing instead
  store_options.timeout = timeout_;
  store_host_ = options.launcher_hosts_store ? "the launcher" : "rank 0";
  try {
    auto tcp = c10::make_intrusive< ::c10d::TCPStore>(options.master_addr, store_options);
    // The prefix torch.distributed uses on an agent's store, so that a restarted attempt starts afresh.
    backend_->store = tcp;
    if (options.launcher_hosts_store) {
      backend_->store =
          c10::make_intrusive< ::c10d::PrefixStore>("/worker/attempt_" + std::to_string(options.restart_count), tcp);
    }
  } catch (const std::exception& e) {
    if (store_options.isServer)
      throw TrainingError("rank 0 cannot host the rendezvous at " + master_ + ": " + e.what());
    throw TrainingError("rank " + std::to_string(rank_) + ": " + store_host_ + " did not come up at " + master_ +
                        " within " + seconds_text(timeout_) + " (" + e.what() + ")");
  }

  auto& store = *backend_->store;
  // Two processes with one RANK would pair up with the wrong peers instead of failing.
  if (store.add(store_key("claims", rank_), 1) != 1) {
    throw TrainingError("another process has already joined " + master_ + " as rank " + std::to_string(rank_) +
                        "; every process needs its own RANK");
  }
  store.set(store_key("joined", rank_), to_bytes(std::to_string(world_size_)));
  const auto deadline = Clock::now() + timeout_;
  std::vector<int> missing;
  for (;;) {
    missing.clear();
    for (int r = 0; r < world_size_; ++r) {
      if (!store.check({store_key("joined", r)})) missing.push_back(r);
    }
    if (missing.empty() || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!missing.empty()) {
    throw TrainingError(rank_list(missing) + " did not join the rendezvous at " + master_ + " within " +
                        seconds_text(timeout_) + " (this is rank " + std::to_string(rank_) + " of " +
                        std::to_string(world_size_) +
                        "); start every rank with the same master address and world size");
  }
  for (int r = 0; r < world_size_; ++r) {
    const std::string theirs = from_bytes(store.get(store_key("joined", r)));
    if (theirs != std::to_string(world_size_)) {
      throw TrainingError("rank " + std::to_string(r) + " was started with a world size of " + theirs + ", rank " +
                          std::to_string(rank_) + " with " + std::to_string(world_size_));
    }
  }

  auto prefixed = c10::make_intrusive< ::c10d::PrefixStore>("efcnet/c10d", backend_->store);
  guarded([&] {
#ifdef USE_C10D_NCCL
    if (device_.is_cuda()) {
      auto nccl_options = ::c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout_ - grace_;
      backend_->collectives =
          c10::make_intrusive< ::c10d::ProcessGroupNCCL>(prefixed, rank_, world_size_, nccl_options);
      return;
    }
#endif
    auto gloo_options = ::c10d::ProcessGroupGloo::Options::create(timeout_ - grace_);
    gloo_options->devices.push_back(gloo_device(options));
    backend_->collectives = c10::make_intrusive< ::c10d::ProcessGroupGloo>(prefixed, rank_, world_size_, gloo_options);
  });
}

DistributedGroup::~DistributedGroup() {
  // After a fault the backend may still hold collectives that can never complete, and its
  // destructor would wait for them: the process is about to exit, so it is left behind.
  if (backend_ && backend_->failed) (void)backend_->collectives.release();
}

template <typename Collective>
void DistributedGroup::guarded(Collective&& collective) {
  if (backend_->failed) throw DistributedFault("rank " + std::to_string(rank_) + ": the group already failed");
  try {
    collective();
  } catch (const TrainingError&) {
    throw;
  } catch (const std::exception& e) {
    fail(e.what());
  }
}

torch::Tensor DistributedGroup::on_device(const torch::Tensor& tensor) const { return tensor.to(device_); }

void DistributedGroup::Pending::wait() {
  if (!work_) return;
  const auto work = std::move(work_);
  group_->guarded([&] { work->work->wait(); });
}

void DistributedGroup::broadcast_from_rank0(std::vector<torch::Tensor> tensors) {
  torch::NoGradGuard no_grad;
  // c10d broadcasts one tensor per call (a list means one per GPU): one flat tensor per dtype.
  std::vector<torch::ScalarType> types;
  for (const auto& t : tensors) {
    if (std::find(types.begin(), types.end(), t.scalar_type()) == types.end()) types.push_back(t.scalar_type());
  }
  for (const auto type : types) {
    std::vector<torch::Tensor> members, flat_parts;
    for (const auto& t : tensors) {
      if (t.scalar_type() == type) members.push_back(t), flat_parts.push_back(on_device(t).reshape({-1}));
    }
    std::vector<torch::Tensor> flat{torch::cat(flat_parts)};
    ::c10d::BroadcastOptions broadcast_options;
    broadcast_options.rootRank = 0;
    guarded([&] { backend_->collectives->broadcast(flat, broadcast_options)->wait(); });
    int64_t offset = 0;
    for (auto& t : members) {
      t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

void DistributedGroup::all_reduce_sum(torch::Tensor tensor) { all_reduce_sum_async(std::move(tensor)).wait(); }

DistributedGroup::Pending DistributedGroup::all_reduce_sum_async(torch::Tensor tensor) {
  Pending pending;
  pending.group_ = this;
  pending.work_ = std::make_shared<Pending::Work>();
  bytes_all_reduced_ += tensor.numel() * tensor.element_size();
  std::vector<torch::Tensor> tensors{std::move(tensor)};
  guarded([&] { pending.work_->work = backend_->collectives->allreduce(tensors); });
  return pending;
}

void DistributedGroup::barrier() { all_reduce_sum(on_device(torch::zeros({1}))); }

void DistributedGroup::agree(const std::string& local_error) {
  const std::string round = "agree" + std::to_string(agreements_++);
  if (!local_error.empty()) guarded([&] { backend_->store->set(store_key(round, rank_), to_bytes(local_error)); });
  auto failed = torch::zeros({world_size_}, torch::kInt64);
  failed[rank_] = local_error.empty() ? 0 : 1;
  failed = on_device(failed);
  all_reduce_sum(failed);
  failed = failed.cpu();
  if (failed.sum().item<int64_t>() == 0) return;
  if (!local_error.empty()) throw TrainingError(local_error);
  std::string message;
  guarded([&] {
    for (int r = 0; r < world_size_; ++r) {
      if (failed[r].item<int64_t>() == 0) continue;
      message += (message.empty() ? "" : "\n") + std::string("rank ") + std::to_string(r) +
                 " cannot go on: " + from_bytes(backend_->store->get(store_key(round, r)));
    }
  });
  throw TrainingError(message);
}

void DistributedGroup::check_equal(uint64_t digest, const std::string& what) {
  auto digests = torch::zeros({world_size_}, torch::kInt64);
  int64_t as_signed;
  std::memcpy(&as_signed, &digest, sizeof as_signed);
  digests[rank_] = as_signed;
  digests = on_device(digests);
  all_reduce_sum(digests);  // each slot has one non-zero term, so the sum is exact
  digests = digests.cpu();
  std::vector<int> differing;
  for (int r = 1; r < world_size_; ++r) {
    if (digests[r].item<int64_t>() != digests[0].item<int64_t>()) differing.push_back(r);
  }
  if (!differing.empty()) throw TrainingError(rank_list(differing) + ": " + what + " differ from rank 0's");
}

void DistributedGroup::post_error(const std::string& message) noexcept {
  try {
    backend_->store->set(store_key("error", rank_), to_bytes(message));
  } catch (const std::exception&) {
    // Best effort: the peers then report this rank as gone without its reason.
  }
}

void DistributedGroup::fail(const std::string& cause) {
  backend_->failed = true;
  std::vector<int> missing;
  std::string reasons;
  bool answered = false;  // whether the roll call itself could be held
  try {
    auto& store = *backend_->store;
    store.set(store_key("alive", rank_), to_bytes("1"));
    const auto deadline = Clock::now() + grace_;
    for (;;) {
      std::vector<int> absent;
      for (int r = 0; r < world_size_; ++r) {
        if (r != rank_ && !store.check({store_key("alive", r)})) absent.push_back(r);
      }
      missing = absent;
      if (missing.empty() || Clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    answered = true;
    for (const int r : missing) {
      if (store.check({store_key("error", r)})) {
        reasons += "\nrank " + std::to_string(r) + " had stopped with: " + from_bytes(store.get(store_key("error", r)));
      }
    }
  } catch (const std::exception& e) {
    // The store lives in rank 0's process (or the launcher's): when it no longer answers, that is gone.
    missing = store_host_ == "rank 0" ? std::vector<int>{0} : std::vector<int>{};
    reasons = "\n(the rendezvous store that " + store_host_ + " hosts at " + master_ +
              " no longer answers: " + e.what() + ")";
  }
  const std::string where =
      "distributed training stopped on rank " + std::to_string(rank_) + " of " + std::to_string(world_size_) + ": ";
  if (missing.empty()) {
    throw DistributedFault(where + "a collective failed" +
                           (answered ? " although every rank answered a roll call" : "") + ": " + cause + reasons);
  }
  throw DistributedFault(where + rank_list(missing) +
                         " did not answer (died, hangs, or cannot be reached; the timeout is " +
                         seconds_text(timeout_) + ")" + reasons + "\nthe collective that failed: " + cause);
}

#endif  // EFCNET_HAVE_GLOO

// ---- gradient averaging ----

GradientAverager::GradientAverager(DistributedGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes)
    : group_(group), parameters_(std::move(parameters)), slots_(parameters_.size()) {
  std::vector<int64_t> bucket_numel;
  int64_t bucket_used = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const auto& p = parameters_[k];
    const int64_t bytes = p.numel() * p.element_size();
    const bool fits = !buckets_.empty() && bucket_used + bytes <= bucket_bytes &&
                      parameters_[buckets_.back().members.front()].options().type_equal(p.options());
    if (!fits) {
      buckets_.emplace_back();
      bucket_numel.push_back(0);
      bucket_used = 0;
    }
    slots_[k].bucket = buckets_.size() - 1;
    slots_[k].offset = bucket_numel.back();
    buckets_.back().members.push_back(k);
    bucket_numel.back() += p.numel();
    bucket_used += bytes;
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    buckets_[b].flat =
        torch::zeros({bucket_numel[b]}, parameters_[buckets_[b].members.front()].options().requires_grad(false));
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    slots_[k].hook = parameters_[k].register_hook([this, k](const torch::Tensor& grad) { on_gradient(k, grad); });
  }
}

GradientAverager::~GradientAverager() {
  for (size_t k = 0; k < parameters_.size(); ++k) parameters_[k].remove_hook(slots_[k].hook);
}

int64_t GradientAverager::bytes_per_step() const {
  int64_t bytes = 0;
  for (const auto& b : buckets_) bytes += b.flat.numel() * b.flat.element_size();
  return bytes;
}

void GradientAverager::begin_step() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& slot : slots_) slot.received = false;
  for (auto& bucket : buckets_) bucket.waiting = bucket.members.size(), bucket.started = false;
  next_bucket_ = 0;
  armed_ = true;
}

void GradientAverager::on_gradient(size_t index, const torch::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;
  torch::NoGradGuard no_grad;
  auto& slot = slots_[index];
  auto& bucket = buckets_[slot.bucket];
  auto place = bucket.flat.narrow(0, slot.offset, grad.numel());
  if (slot.received) {
    // A second backward pass in the same step; its bucket must not have left yet.
    if (bucket.started)
      throw TrainingError("a gradient arrived after its bucket was all-reduced; run one backward per step");
    place.add_(grad.reshape({-1}));
    return;
  }
  place.copy_(grad.reshape({-1}));
  slot.received = true;
  --bucket.waiting;
  start_ready_buckets();
}

void GradientAverager::start_ready_buckets() {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].waiting == 0) {
    auto& bucket = buckets_[next_bucket_++];
    bucket.pending = group_.all_reduce_sum_async(bucket.flat);
    bucket.started = true;
  }
}

void GradientAverager::finish_step() {
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < parameters_.size(); ++k) {
    auto& bucket = buckets_[slots_[k].bucket];
    if (slots_[k].received || bucket.started) continue;
    bucket.flat.narrow(0, slots_[k].offset, parameters_[k].numel()).zero_();
    --bucket.waiting;
  }
  start_ready_buckets();
  for (auto& bucket : buckets_) {
    bucket.pending.wait();
    bucket.flat.div_(group_.world_size());
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    auto& p = parameters_[k];
    const auto average = buckets_[slots_[k].bucket].flat.narrow(0, slots_[k].offset, p.numel()).view_as(p);
    if (p.grad().defined()) {
      p.mutable_grad().copy_(average);
    } else {
      p.mutable_grad() = average.clone();
    }
  }
}

// ---- synchronised BatchNorm ----

namespace {

// Sum over ranks whose backward is again a sum over ranks: d(sum_s x_s)/d(x_r) is the identity,
// so rank r's input gradient is the sum of every rank's gradient of the total.
struct AllReduceSumFunction : torch::autograd::Function<AllReduceSumFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* context, const torch::Tensor& local,
                               DistributedGroup* group) {
    // Saved data holds IValues only; the group outlives the graph (the trainer owns both).
    context->saved_data["group"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(group));
    auto total = local.clone();
    group->all_reduce_sum(total);
    return total;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list grad_outputs) {
    auto* group = reinterpret_cast<DistributedGroup*>(static_cast<intptr_t>(context->saved_data["group"].toInt()));
    auto total = grad_outputs[0].contiguous().clone();
    group->all_reduce_sum(total);
    return {total, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sync_batch_norm(DistributedGroup& group, torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "sync_batch_norm expects (N, C, H, W), got ", input.sizes());
  const auto& options = bn.options;
  const int64_t channels = input.size(1);
  const std::vector<int64_t> per_channel{0, 2, 3};
  const std::vector<int64_t> shape{1, channels, 1, 1};
  // float64 so that E[x^2] - E[x]^2 loses nothing that float32 BatchNorm would keep.
  const auto x = input.to(torch::kDouble);
  const auto local = torch::cat({x.sum(per_channel), (x * x).sum(per_channel),
                                 torch::full({1}, static_cast<double>(input.numel() / channels), x.options())});
  const auto global = AllReduceSumFunction::apply(local, &group);
  const double count = global[2 * channels].item<double>();
  const auto mean = global.narrow(0, 0, channels) / count;
  const auto variance = global.narrow(0, channels, channels) / count - mean * mean;  // biased, as normalisation uses
  auto scale = (variance + options.eps()).rsqrt();
  if (bn.weight.defined()) scale = scale * bn.weight.to(torch::kDouble);
  auto output = (input - mean.to(input.scalar_type()).view(shape)) * scale.to(input.scalar_type()).view(shape);
  if (bn.bias.defined()) output = output + bn.bias.view(shape);

  if (options.track_running_stats()) {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked += 1;
    const double factor = options.momentum() ? *options.momentum() : 1.0 / bn.num_batches_tracked.item<double>();
    const auto unbiased = variance * (count / std::max(count - 1.0, 1.0));
    bn.running_mean.mul_(1.0 - factor).add_(mean.to(bn.running_mean.scalar_type()), factor);
    bn.running_var.mul_(1.0 - factor).add_(unbiased.to(bn.running_var.scalar_type()), factor);
  }
  return output;
}

uint64_t tensor_digest(const std::vector<torch::Tensor>& tensors) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t digest = 0xcbf29ce484222325ULL;
  for (const auto& t : tensors) {
    const auto bytes_tensor = t.detach().to(torch::kCPU).contiguous();
    const auto* bytes = static_cast<const unsigned char*>(bytes_tensor.data_ptr());
    const size_t size = static_cast<size_t>(bytes_tensor.numel()) * bytes_tensor.element_size();
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
      uint64_t word;
      std::memcpy(&word, bytes + i, sizeof word);
      digest = (digest ^ word) * kPrime;
      digest ^= digest >> 29;
    }
    for (; i < size; ++i) digest = (digest ^ bytes[i]) * kPrime;
    digest = (digest ^ size) * kPrime;
  }
  return digest;
}

}  // namespace efcnet
