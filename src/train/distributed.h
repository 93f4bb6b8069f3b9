// Data-parallel training over c10d, PyTorch's own distributed engine (Gloo on CPU, NCCL on CUDA):
// the process group with its rendezvous, gradient averaging in buckets overlapped with backward,
// synchronised BatchNorm, and faults reported by the rank that went missing.
// LibTorch-dependent, like model.h; the options are DistributedOptions in train.h.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "efcnet/train.h"

namespace efcnet {

// A collective failed because a peer died or stopped answering; the message names the rank(s).
class DistributedFault : public TrainingError {
 public:
  using TrainingError::TrainingError;
};

class DistributedGroup {
 public:
  // Rendezvous: rank 0 hosts a TCPStore at master_addr:master_port, every rank checks in there,
  // then a Gloo group (NCCL for a CUDA `device` where LibTorch has it) connects them all. A rank
  // missing after options.timeout_seconds is named in the TrainingError every other rank throws.
  DistributedGroup(const DistributedOptions& options, const torch::Device& device);
  ~DistributedGroup();
  DistributedGroup(const DistributedGroup&) = delete;
  DistributedGroup& operator=(const DistributedGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // An all-reduce in flight; wait() throws a DistributedFault like the blocking collectives.
  class Pending {
   public:
    void wait();

   private:
    friend class DistributedGroup;
    struct Work;
    DistributedGroup* group_ = nullptr;
    std::shared_ptr<Work> work_;
  };

  // Collectives, in place. Every rank must call them in the same order with the same shapes.
  void broadcast_from_rank0(std::vector<torch::Tensor> tensors);
  void all_reduce_sum(torch::Tensor tensor);
  Pending all_reduce_sum_async(torch::Tensor tensor);
  void barrier();

  // Every rank passes its own error (empty if it has none); if any rank has one, every rank
  // throws a TrainingError: its own message, or the failing ranks' messages.
  void agree(const std::string& local_error);

  // Every rank passes a digest of something that must be equal everywhere (data, parameters);
  // throws a TrainingError naming the ranks whose digest differs from rank 0's.
  void check_equal(uint64_t digest, const std::string& what);

  // Leaves this rank's error on the store before it exits, so the peers' fault report can quote it.
  void post_error(const std::string& message) noexcept;

  // Bytes this process has passed to all-reduce so far.
  int64_t bytes_all_reduced() const { return bytes_all_reduced_.load(); }

 private:
  struct Backend;
  // After a collective failed: a roll call on the store finds which ranks are gone, and the
  // DistributedFault thrown names them (with the error a rank left there, if any).
  [[noreturn]] void fail(const std::string& cause);
  template <typename Collective>
  void guarded(Collective&& collective);
  torch::Tensor on_device(const torch::Tensor& tensor) const;

  int rank_ = 0;
  int world_size_ = 1;
  std::string master_;
  std::string store_host_;  // "rank 0", or "the launcher" when torchrun's agent hosts the store
  std::chrono::milliseconds timeout_{0};
  std::chrono::milliseconds grace_{0};
  torch::Device device_{torch::kCPU};
  int64_t agreements_ = 0;
  std::atomic<int64_t> bytes_all_reduced_{0};
  std::unique_ptr<Backend> backend_;
};

// Averages the gradients of `parameters` over the group in a few flat buckets. Each parameter's
// gradient is copied into its bucket as autograd produces it (a hook), and a full bucket starts
// its all-reduce while backward goes on; buckets start in a fixed order so every rank issues the
// same sequence of collectives. Parameters are bucketed in reverse registration order, roughly
// the order backward reaches them. A parameter that gets no gradient in a step counts as zero.
class GradientAverager {
 public:
  GradientAverager(DistributedGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes);
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;

  // Arms the hooks for one backward pass.
  void begin_step();
  // After backward: waits for every bucket and sets each parameter's .grad to the rank average.
  void finish_step();

  size_t bucket_count() const { return buckets_.size(); }
  int64_t bytes_per_step() const;

 private:
  struct Slot {
    size_t bucket;
    int64_t offset;
    bool received = false;
    unsigned hook = 0;
  };
  struct Bucket {
    torch::Tensor flat;
    std::vector<size_t> members;
    size_t waiting = 0;
    bool started = false;
    DistributedGroup::Pending pending;
  };
  void on_gradient(size_t index, const torch::Tensor& grad);
  void start_ready_buckets();  // with mutex_ held

  DistributedGroup& group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t next_bucket_ = 0;
  bool armed_ = false;
  std::mutex mutex_;
};

// Training-mode BatchNorm with statistics over every rank's batch: one all-reduce of per-channel
// sum, sum of squares and count (in float64) in a custom autograd function whose backward
// all-reduces the statistics' gradients, so backward too sees the whole global batch. Running
// statistics are updated as BatchNorm2d would for the global batch. Install it with
// BatchNormOverride (model.h).
torch::Tensor sync_batch_norm(DistributedGroup& group, torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& input);

// A 64-bit digest of the tensors' bytes, for checking that replicas agree.
uint64_t tensor_digest(const std::vector<torch::Tensor>& tensors);

}  // namespace efcnet
