// fuse_files: reader thread -> network (the calling thread) -> writer thread.
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "efcnet/pipeline.h"
#include "pipeline/bounded_queue.h"

namespace efcnet {

ImagePairData read_image_pair(const std::string& anatomical_path, const std::string& functional_path,
                              const ImageReadOptions& options) {
  ImagePairData pair{read_anatomical(anatomical_path, options), read_functional(functional_path, options)};
  if (pair.anatomical.size() != pair.functional.size()) {
    throw IoError(anatomical_path + " (" + size_text(pair.anatomical) + ") and " + functional_path + " (" +
                  size_text(pair.functional) + ") differ in size");
  }
  return pair;
}

BatchOutcome fuse_files(const std::vector<FusionJob>& jobs, const std::function<PairFusion()>& make_fusion,
                        WriteMode mode, const JobReport& report, const ImageReadOptions& read_options) {
  struct Decoded {
    std::size_t job;
    ImagePairData images;
    std::string error;
  };
  struct Fused {
    std::size_t job;
    cv::Mat image;
  };

  std::atomic<std::size_t> fused_count{0}, failed_count{0};
  std::mutex report_mutex;
  auto finish = [&](std::size_t job, const std::string& failure) {
    ++(failure.empty() ? fused_count : failed_count);
    if (report) {
      std::lock_guard<std::mutex> lock(report_mutex);
      report(jobs[job], failure);
    }
  };

  // Two items ahead at most: only a couple of decoded images wait in memory for the network.
  BoundedQueue<Decoded> decoded(2);
  BoundedQueue<Fused> fused(2);
  std::thread reader([&] {
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      Decoded item{i, {}, {}};
      try {
        item.images = read_image_pair(jobs[i].anatomical, jobs[i].functional, read_options);
      } catch (const std::exception& e) {
        item.error = e.what();
      }
      if (!decoded.push(std::move(item))) break;
    }
    decoded.close();
  });
  std::thread writer([&] {
    while (auto item = fused.pop()) {
      std::string failure;
      try {
        write_image_atomic(jobs[item->job].output, item->image, mode);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      finish(item->job, failure);
    }
  });
  {
    // Stops and joins both threads however this block is left (make_fusion's error included); the
    // writer drains what the network has produced before it stops.
    struct Stopper {
      BoundedQueue<Decoded>& decoded;
      BoundedQueue<Fused>& fused;
      std::thread& reader;
      std::thread& writer;
      ~Stopper() {
        decoded.close();
        fused.close();
        reader.join();
        writer.join();
      }
    } stopper{decoded, fused, reader, writer};

    const PairFusion fuse = make_fusion();
    while (auto item = decoded.pop()) {
      const FusionJob& job = jobs[item->job];
      if (!item->error.empty()) {
        finish(item->job, item->error);
        continue;
      }
      try {
        fused.push({item->job, fuse(item->images.anatomical, item->images.functional)});
      } catch (const std::exception& e) {
        finish(item->job, job.anatomical + " + " + job.functional + ": " + e.what());
      }
    }
  }
  return {fused_count.load(), failed_count.load()};
}

}  // namespace efcnet
