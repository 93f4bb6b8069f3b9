// Training runs on tiny synthetic data: resume exactness, checkpoints, logs and refusals.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <thread>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "efcnet/model.h"
#include "efcnet/runtime.h"
#include "efcnet/train.h"
#include "efcnet/weights.h"
#include "support/required.h"
#include "support/shared_data.h"
#include "support/temp_dir.h"
#include "train/precision.h"

namespace efcnet {
namespace {

namespace fs = std::filesystem;
using efcnet::testing::TempDir;

// Writes `count` registered pairs of smooth random images (h x w) and a SEEM file made from a
// seeded random init, so no test here needs ../shared.
struct SyntheticData {
  explicit SyntheticData(int count, int h = 16, int w = 24) {
    fs::create_directories(dir / "anatomical");
    fs::create_directories(dir / "functional");
    cv::RNG rng(7);
    for (int i = 0; i < count; ++i) {
      cv::Mat a(h, w, CV_8UC1), f(h, w, CV_8UC3);
      rng.fill(a, cv::RNG::UNIFORM, 0, 256);
      rng.fill(f, cv::RNG::UNIFORM, 0, 256);
      cv::GaussianBlur(a, a, {5, 5}, 1.5);
      cv::GaussianBlur(f, f, {5, 5}, 1.5);
      const std::string name = "slice" + std::to_string(i);
      cv::imwrite(dir / ("anatomical/" + name + ".png"), a);
      cv::imwrite(dir / ("functional/" + name + ".png"), f);
    }
    torch::manual_seed(11);
    SmoothEdgeExtractor seem;
    save_state_dict(module_state_dict(*seem), seem_path());
  }
  std::string anatomical() const { return dir / "anatomical"; }
  std::string functional() const { return dir / "functional"; }
  std::string seem_path() const { return dir / "seem.pth"; }

  NetworkTrainOptions options(const std::string& out, int epochs) const {
    NetworkTrainOptions o;
    o.anatomical_dir = anatomical();
    o.functional_dir = functional();
    o.seem_weights = seem_path();
    o.out_dir = out;
    o.epochs = epochs;
    o.batch_size = 2;
    torch::set_num_threads(1);  // the tests' trainings share the machine with other tests (ctest -j)
    return o;
  }
  TempDir dir;
};

// std::max(a, NaN) is a: a NaN anywhere must make the whole difference NaN, which fails every
// EXPECT_LE against a tolerance.
double nan_or_max(double worst, double value) {
  return std::isnan(worst) || std::isnan(value) ? NAN : std::max(worst, value);
}

double max_state_diff(const std::string& a, const std::string& b) {
  const auto x = read_state_dict(a);
  const auto y = read_state_dict(b);
  EXPECT_EQ(x.size(), y.size());
  double diff = 0.0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    EXPECT_EQ(x[i].first, y[i].first);
    diff =
        nan_or_max(diff, (x[i].second.to(torch::kDouble) - y[i].second.to(torch::kDouble)).abs().max().item<double>());
  }
  return diff;
}

// The loss terms of a run's first step (loss.csv: epoch, step, the terms, seconds).
std::vector<double> first_step_losses(const std::string& dir) {
  std::ifstream in(dir + "/loss.csv");
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  std::vector<double> values;
  std::stringstream fields(row);
  for (std::string field; std::getline(fields, field, ',');) values.push_back(std::stod(field));
  EXPECT_GE(values.size(), 4u) << dir;
  return values.size() >= 4 ? std::vector<double>(values.begin() + 2, values.end() - 1) : values;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) diff = nan_or_max(diff, std::abs(a[i] - b[i]));
  return diff;
}

std::string error_of(const std::function<void()>& run) {
  try {
    run();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Trainer, ResumedRunEqualsUninterruptedRun) {
  SyntheticData data(5);  // 2 steps per epoch, one sample dropped
  TempDir out;
  const auto straight = train_network(data.options(out / "straight", 2));
  EXPECT_EQ(straight.steps, 4);
  train_network(data.options(out / "split", 1));
  auto resumed = data.options(out / "split", 2);
  resumed.resume = true;
  const auto second = train_network(resumed);
  EXPECT_EQ(second.first_epoch, 2);
  EXPECT_EQ(second.steps, 2);
  EXPECT_LE(max_state_diff(out / "straight/model_2.pth", out / "split/model_2.pth"), 1e-5);
  EXPECT_GT(max_state_diff(out / "straight/model_1.pth", out / "straight/model_2.pth"), 0.0);  // it did learn
  // Both logs hold the same steps; the resumed one kept epoch 1's rows.
  std::ifstream a(out / "straight/loss.csv"), b(out / "split/loss.csv");
  const auto lines = [](std::ifstream& in) {
    int n = 0;
    for (std::string l; std::getline(in, l);) ++n;
    return n;
  };
  EXPECT_EQ(lines(a), 5);
  EXPECT_EQ(lines(b), 5);
  EXPECT_TRUE(fs::exists(out / "split/loss.png"));
}

// bfloat16 autocast (efcnet train --precision bf16) resumes as exactly as float32, since its
// randomness is the same function of (seed, epoch, step); weights and Adam's moments stay float32.
TEST(Trainer, Bfloat16ResumedRunEqualsUninterruptedRun) {
  if (!bfloat16_training_supported()) {
    GTEST_SKIP() << "this CPU has neither AVX-512 BF16 nor AMX, where bfloat16 training is refused";
  }
  SyntheticData data(5);
  TempDir out;
  const auto bf16 = [&](const std::string& name, int epochs) {
    auto options = data.options(out / name, epochs);
    options.precision = Precision::bfloat16;
    return options;
  };
  train_network(bf16("straight", 2));
  train_network(bf16("split", 1));
  auto resumed = data.options(out / "split", 2);  // float32: not the run so far
  resumed.resume = true;
  const auto message = error_of([&] { train_network(resumed); });
  EXPECT_NE(message.find("bfloat16 = 1, now 0"), std::string::npos) << message;
  resumed.precision = Precision::bfloat16;
  const auto second = train_network(resumed);
  EXPECT_EQ(second.first_epoch, 2);
  EXPECT_EQ(second.steps, 2);
  EXPECT_LE(max_state_diff(out / "straight/model_2.pth", out / "split/model_2.pth"), 1e-5);
  for (const char* file : {"split/model_2.pth", "split/training_state.pth"}) {
    for (const auto& [key, value] : read_state_dict(out / file)) {
      if (value.is_floating_point()) {
        EXPECT_EQ(value.scalar_type(), torch::kFloat32) << file << ": " << key;
      }
    }
  }
  train_network(data.options(out / "float32", 2));
  EXPECT_GT(max_state_diff(out / "straight/model_2.pth", out / "float32/model_2.pth"), 0.0);  // it ran in bfloat16
}

// The refusal for a CPU described without the instructions (whatever this one has), then end to end
// on this CPU, where a CPU without them refuses before anything is written.
TEST(Trainer, Bfloat16IsRefusedByNameWithoutTheInstructions) {
  SyntheticData data(2);
  TempDir out;
  auto options = data.options(out / "run", 1);
  options.precision = Precision::bfloat16;
  CpuFeatures avx512_only;
  avx512_only.avx2_fma = avx512_only.avx512 = true;
  try {
    training::check_precision(options, torch::kCPU, avx512_only, "Example CPU 9000");
    ADD_FAILURE() << "bfloat16 was not refused on a CPU without AVX-512 BF16 and AMX";
  } catch (const OptionError& e) {
    EXPECT_NE(std::string(e.what()).find("Example CPU 9000 lacks"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("AVX-512 BF16 or AMX"), std::string::npos) << e.what();
  }
  CpuFeatures with_bf16 = avx512_only, with_amx = avx512_only;
  with_bf16.avx512_bf16 = true;
  with_amx.amx = true;
  EXPECT_NO_THROW(training::check_precision(options, torch::kCPU, with_bf16, "Example CPU 9000"));
  EXPECT_NO_THROW(training::check_precision(options, torch::kCPU, with_amx, "Example CPU 9000"));
  EXPECT_EQ(bfloat16_training_supported(), cpu_features().avx512_bf16 || cpu_features().amx);
  if (!bfloat16_training_supported()) {
    EXPECT_THROW(train_network(options), OptionError);
    EXPECT_FALSE(fs::exists(out / "run"));
  }
  options.precision = Precision::float32;
  EXPECT_NO_THROW(training::check_precision(options, torch::kCPU, avx512_only, "Example CPU 9000"));
}

// The library leaves process-wide settings to the program that embeds it (runtime.h).
TEST(Trainer, LeavesTheProcessThreadCountAlone) {
  SyntheticData data(2);
  TempDir out;
  torch::set_num_threads(1);
  train_network(data.options(out / "run", 1));
  EXPECT_EQ(torch::get_num_threads(), 1);
}

// LibTorch's own default counts physical cores through cpuinfo, one on some 2-vCPU machines:
// stage 5 of the default-weights recipe ran single-threaded until --threads 0 meant every core.
TEST(Runtime, ZeroThreadsMeansEveryCore) {
  set_threads(0);
  EXPECT_EQ(torch::get_num_threads(), static_cast<int>(std::thread::hardware_concurrency()));
  torch::set_num_threads(1);
}

TEST(Trainer, CheckpointLoadsIntoTheNetworkWithReferenceKeys) {
  SyntheticData data(4);
  TempDir out;
  train_network(data.options(out / "run", 1));
  FusionNetwork network;
  EXPECT_NO_THROW(load_weights(*network, out / "run/model_1.pth"));
  EXPECT_EQ(read_state_dict(out / "run/model_1.pth").size(), 231u);
  EXPECT_FALSE(fs::exists(out / "run/model_0.pth"));
}

TEST(Trainer, PyTorchReadsTheCheckpoint) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    EFCNET_SKIP_UNLESS_CI() << "Debian's python3-torch is not installed; PyTorch cross-check skipped";
  }
  SyntheticData data(2);
  TempDir out;
  train_network(data.options(out / "run", 1));
  const std::string script =
      "import torch,sys; sd=torch.load(sys.argv[1], weights_only=True); "
      "assert len(sd)==231, len(sd); "
      "assert tuple(sd['SU3.GlobalFeature.transformer.0.mlp.fc1.weight'].shape)==(1024,256); "
      "assert sd['conv3_3.bn.num_batches_tracked'].dtype==torch.int64; "
      "assert sum(v.numel() for k,v in sd.items() if 'running' not in k and 'num_batches' not in k)==7459145";
  EXPECT_EQ(std::system(("/usr/bin/python3 -c \"" + script + "\" " + (out / "run/model_1.pth")).c_str()), 0);
}

TEST(Trainer, RefusesToOverwriteARunWithoutResume) {
  SyntheticData data(2);
  TempDir out;
  train_network(data.options(out / "run", 1));
  const auto message = error_of([&] { train_network(data.options(out / "run", 1)); });
  EXPECT_NE(message.find("already holds a training run"), std::string::npos) << message;
}

TEST(Trainer, RefusesToResumeWithOtherOptions) {
  SyntheticData data(4);
  TempDir out;
  train_network(data.options(out / "run", 1));
  auto options = data.options(out / "run", 2);
  options.resume = true;
  options.batch_size = 4;
  const auto message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find("batch_size"), std::string::npos) << message;
}

TEST(Trainer, SeemOfTheWholeImageCutToACropThatIsTheImageEqualsSeemOnTheCrop) {
  SyntheticData data(4);
  TempDir out;
  auto whole = data.options(out / "whole", 1), on_crops = data.options(out / "on_crops", 1);
  for (auto* options : {&whole, &on_crops}) {
    options->crop_height = 16;
    options->crop_width = 24;
  }
  whole.seem_on_whole_images = true;
  train_network(whole);
  train_network(on_crops);
  train_network(data.options(out / "uncropped", 1));
  // The first step's losses: the weights after it would also carry Adam's lr-sized steps on
  // gradients that are float noise around zero.
  const auto expected = first_step_losses(out / "uncropped");
  EXPECT_LE(max_diff(first_step_losses(out / "whole"), expected), 1e-5);  // float32 sums
  EXPECT_LE(max_diff(first_step_losses(out / "on_crops"), expected), 1e-5);
}

TEST(Trainer, SeemOnStripsSeesTheirBordersAsEdges) {
  SyntheticData data(4);
  TempDir out;
  auto whole = data.options(out / "whole", 1), on_crops = data.options(out / "on_crops", 1);
  for (auto* options : {&whole, &on_crops}) {
    options->crop_height = 12;  // windows at rows 0..4 and columns 0..4 of the 16x24 images
    options->crop_width = 20;
  }
  whole.seem_on_whole_images = true;
  train_network(whole);
  train_network(on_crops);
  EXPECT_GT(max_diff(first_step_losses(out / "whole"), first_step_losses(out / "on_crops")), 1e-3);
}

TEST(Trainer, ResumesOnlyWithTheSameSeemInput) {
  SyntheticData data(4);
  TempDir out;
  auto options = data.options(out / "run", 1);
  options.crop_height = 12;
  options.crop_width = 24;
  options.seem_on_whole_images = true;
  train_network(options);
  options.epochs = 2;
  options.resume = true;
  options.seem_on_whole_images = false;
  auto message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find("seem_on_whole_images = 1, now 0"), std::string::npos) << message;
  // A state written before the setting existed comes from a run with SEEM on its crops.
  StateDict old_state;
  for (auto& entry : read_state_dict(out / "run/training_state.pth")) {
    if (entry.first != "meta.seem_on_whole_images") old_state.push_back(entry);
  }
  save_state_dict(old_state, out / "run/training_state.pth");
  options.seem_on_whole_images = true;
  message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find("seem_on_whole_images = 0, now 1"), std::string::npos) << message;
  options.seem_on_whole_images = false;
  EXPECT_EQ(train_network(options).first_epoch, 2);
}

TEST(Trainer, SourceTermsAreLoggedAddToTheTotalAndMustMatchOnResume) {
  SyntheticData data(4);
  TempDir out;
  const auto plain = data.options(out / "plain", 1);
  auto options = data.options(out / "run", 1);
  options.intensity_weight = 3.0;
  options.texture_weight = 2.0;
  train_network(plain);
  train_network(options);
  std::ifstream log(out / "run/loss.csv");
  std::string header;
  std::getline(log, header);
  EXPECT_NE(header.find(",edge_anatomical,intensity,texture,total,"), std::string::npos) << header;
  // Same seed, same first batch and weights: the authors' four terms agree, and the run with the
  // source terms logs two positive ones more, which its total includes.
  const auto authors = first_step_losses(out / "plain"), with_terms = first_step_losses(out / "run");
  ASSERT_EQ(authors.size(), 5u);  // four terms and the total
  ASSERT_EQ(with_terms.size(), 7u);
  EXPECT_LE(max_diff(std::vector<double>(with_terms.begin(), with_terms.begin() + 4),
                     std::vector<double>(authors.begin(), authors.begin() + 4)),
            1e-6);
  EXPECT_GT(with_terms[4], 0.0);
  EXPECT_GT(with_terms[5], 0.0);
  EXPECT_NEAR(with_terms[6], authors[4] + with_terms[4] + with_terms[5], 1e-5);
  options.epochs = 2;
  options.resume = true;
  options.intensity_weight = 0.0;
  EXPECT_NE(error_of([&] { train_network(options); }).find("intensity_weight_millionths = 3000000, now 0"),
            std::string::npos);
  options.intensity_weight = -1.0;
  EXPECT_NE(error_of([&] { train_network(options); }).find("intensity_weight must be"), std::string::npos);
  options.intensity_weight = 3.0;
  options.texture_weight = 0.5;
  EXPECT_NE(error_of([&] { train_network(options); }).find("texture_weight_millionths = 2000000, now 500000"),
            std::string::npos);
  options.texture_weight = 1001.0;
  EXPECT_NE(error_of([&] { train_network(options); }).find("texture_weight must be"), std::string::npos);
  options.texture_weight = 2.0;
  EXPECT_EQ(train_network(options).first_epoch, 2);
}

// Largest change of the BatchNorm statistics (running averages and batch counts), and of
// everything else, between two state dicts.
std::pair<double, double> statistics_and_parameter_changes(const std::string& before, const std::string& after) {
  const auto x = read_state_dict(before);
  const auto y = read_state_dict(after);
  EXPECT_EQ(x.size(), y.size());
  double statistics = 0.0, parameters = 0.0;
  for (size_t i = 0; i < std::min(x.size(), y.size()); ++i) {
    const double change = (x[i].second.to(torch::kDouble) - y[i].second.to(torch::kDouble)).abs().max().item<double>();
    const bool statistic = x[i].first.find(".running_") != std::string::npos ||
                           x[i].first.find(".num_batches_tracked") != std::string::npos;
    double& worst = statistic ? statistics : parameters;
    worst = nan_or_max(worst, change);
  }
  return {statistics, parameters};
}

TEST(Trainer, FrozenBatchNormStatisticsStayWhileTheWeightsTrainAndMustMatchOnResume) {
  SyntheticData data(4);
  TempDir out;
  train_network(data.options(out / "start", 1));
  const std::string start = out / "start/model_1.pth";
  auto frozen = data.options(out / "frozen", 1);
  frozen.init_weights = start;
  frozen.freeze_batchnorm_statistics = true;
  auto unfrozen = data.options(out / "unfrozen", 1);
  unfrozen.init_weights = start;
  train_network(frozen);
  train_network(unfrozen);
  const auto [frozen_statistics, frozen_parameters] =
      statistics_and_parameter_changes(start, out / "frozen/model_1.pth");
  EXPECT_EQ(frozen_statistics, 0.0);
  EXPECT_GT(frozen_parameters, 0.0);
  const auto [unfrozen_statistics, unfrozen_parameters] =
      statistics_and_parameter_changes(start, out / "unfrozen/model_1.pth");
  EXPECT_GT(unfrozen_statistics, 0.0);
  EXPECT_GT(unfrozen_parameters, 0.0);
  // Same first batch and weights: normalised by the running statistics instead of the batch's,
  // the first step's loss differs.
  EXPECT_GT(max_diff(first_step_losses(out / "frozen"), first_step_losses(out / "unfrozen")), 1e-4);

  frozen.epochs = 2;
  frozen.resume = true;
  frozen.freeze_batchnorm_statistics = false;
  EXPECT_NE(error_of([&] { train_network(frozen); }).find("freeze_batchnorm_statistics = 1, now 0"), std::string::npos);
  frozen.freeze_batchnorm_statistics = true;
  EXPECT_EQ(train_network(frozen).first_epoch, 2);
  EXPECT_EQ(statistics_and_parameter_changes(start, out / "frozen/model_2.pth").first, 0.0);

  auto fresh = data.options(out / "fresh", 1);
  fresh.freeze_batchnorm_statistics = true;
  EXPECT_NE(error_of([&] { train_network(fresh); }).find("freeze_batchnorm_statistics needs init_weights"),
            std::string::npos);
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ino_t inode_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_ino;
}

// loss.csv grows by one appended line per step in the same file (not rewritten whole, which costs
// the square of the steps), and a resume cuts, in place, what no checkpoint holds: rows of an
// unfinished epoch and a line torn by a crash.
TEST(Trainer, LossLogIsAppendedInPlaceAndResumeCutsWhatNoCheckpointHolds) {
  SyntheticData data(2);  // one step per epoch
  TempDir out;
  train_network(data.options(out / "run", 1));
  const std::string log = out / "run/loss.csv";
  const std::string epoch1 = file_text(log);
  ASSERT_EQ(std::count(epoch1.begin(), epoch1.end(), '\n'), 2) << epoch1;
  const ino_t inode = inode_of(log);
  const std::string stale = "2,2,0.5,0.5,0.5,0.5,2,9.000\n";
  std::ofstream(log, std::ios::app) << stale << "2,3,0.4";  // a killed epoch 2, its last line torn
  auto options = data.options(out / "run", 2);
  options.resume = true;
  train_network(options);
  const std::string resumed = file_text(log);
  EXPECT_EQ(inode_of(log), inode) << "loss.csv was replaced, not appended to";
  ASSERT_EQ(resumed.rfind(epoch1, 0), 0u) << resumed;
  const std::string added = resumed.substr(epoch1.size());
  EXPECT_EQ(added.rfind("2,2,", 0), 0u) << added;
  EXPECT_EQ(std::count(added.begin(), added.end(), '\n'), 1) << added;
  EXPECT_NE(added, stale);
}

// An optimizer step that leaves weights non-finite (the largest double as lr: Adam's step size
// overflows to infinity) is named with the parameter and the step, and nothing is saved after it:
// the last good checkpoint and its state stay. The loss of that step was still finite.
TEST(Trainer, NonFiniteWeightsAfterAStepStopTheRunBeforeACheckpoint) {
  SyntheticData data(2);  // one step per epoch
  TempDir out;
  train_network(data.options(out / "run", 1));
  const std::string state = file_text(out / "run/training_state.pth");
  auto options = data.options(out / "run", 2);
  options.resume = true;
  options.lr = std::numeric_limits<double>::max();
  try {
    train_network(options);
    ADD_FAILURE() << "a step to infinite weights was checkpointed";
  } catch (const TrainingError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("after step 2 (epoch 2)"), std::string::npos) << message;
    const auto quote = message.find('\'');
    const std::string name = message.substr(quote + 1, message.find('\'', quote + 1) - quote - 1);
    EXPECT_TRUE(FusionNetwork()->named_parameters().contains(name)) << message;
  }
  EXPECT_FALSE(fs::exists(out / "run/model_2.pth"));
  EXPECT_EQ(file_text(out / "run/training_state.pth"), state);
  FusionNetwork network;
  load_weights(*network, out / "run/model_1.pth");
  for (const auto& p : network->parameters()) ASSERT_TRUE(torch::isfinite(p).all().item<bool>());
}

TEST(Trainer, RefusesACorruptTrainingState) {
  SyntheticData data(2);
  TempDir out;
  train_network(data.options(out / "run", 1));
  std::ofstream(out / "run/training_state.pth", std::ios::trunc) << "not a checkpoint";
  auto options = data.options(out / "run", 2);
  options.resume = true;
  const auto message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find("training_state.pth"), std::string::npos) << message;
}

TEST(Trainer, NamesBadDataBeforeStarting) {
  SyntheticData data(3);
  cv::imwrite(data.dir / "anatomical/lonely.png", cv::Mat(16, 24, CV_8UC1, cv::Scalar(3)));
  cv::imwrite(data.dir / "anatomical/slice1.png", cv::Mat(20, 24, CV_8UC1, cv::Scalar(3)));  // size mismatch
  std::ofstream(data.dir / "functional/slice2.png", std::ios::trunc) << "\x89PNG\r\n";       // truncated
  TempDir out;
  const auto message = error_of([&] { train_network(data.options(out / "run", 1)); });
  EXPECT_NE(message.find("unpaired: " + (data.dir / "anatomical/lonely.png")), std::string::npos) << message;
  EXPECT_NE(message.find("slice1.png"), std::string::npos) << message;
  EXPECT_NE(message.find("slice2.png"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(out / "run/model_1.pth"));
}

// The packed file carries the same samples in the same order: the same run, bit for bit.
TEST(Trainer, PackedPairsTrainTheSameRunAsTheirDirectories) {
  SyntheticData data(4);
  TempDir out;
  EXPECT_EQ(pack_training_pairs(data.anatomical(), data.functional(), out / "pairs.pth"), 4);
  auto from_directories = data.options(out / "directories", 2);
  from_directories.crop_height = 12;
  from_directories.crop_width = 20;
  auto from_file = from_directories;
  from_file.out_dir = out / "packed";
  from_file.anatomical_dir.clear();
  from_file.functional_dir.clear();
  from_file.packed_pairs = out / "pairs.pth";
  train_network(from_directories);
  train_network(from_file);
  EXPECT_EQ(first_step_losses(out / "directories"), first_step_losses(out / "packed"));
  EXPECT_EQ(max_state_diff(out / "directories/model_2.pth", out / "packed/model_2.pth"), 0.0);
  // The planes are the functional image's Y plane and the anatomical image, as uint8.
  const auto packed = read_state_dict(out / "pairs.pth");
  ASSERT_EQ(packed.size(), 8u);
  EXPECT_EQ(packed[0].first, "slice0/functional");
  EXPECT_EQ(packed[1].first, "slice0/anatomical");
  EXPECT_EQ(packed[1].second.scalar_type(), torch::kUInt8);
  const cv::Mat anatomical = cv::imread(data.dir / "anatomical/slice0.png", cv::IMREAD_GRAYSCALE);
  EXPECT_TRUE(torch::equal(packed[1].second,
                           torch::from_blob(anatomical.data, {anatomical.rows, anatomical.cols}, torch::kUInt8)));
}

TEST(Trainer, NamesWhatIsWrongWithAPackedFile) {
  SyntheticData data(2);
  TempDir out;
  StateDict dict;
  dict.emplace_back("a/functional", torch::zeros({16, 24}, torch::kUInt8));
  dict.emplace_back("b/functional", torch::zeros({16, 24}, torch::kUInt8));
  dict.emplace_back("b/anatomical", torch::zeros({16, 24}, torch::kFloat32));
  dict.emplace_back("c", torch::zeros({16, 24}, torch::kUInt8));
  save_state_dict(dict, out / "bad.pth");
  auto options = data.options(out / "run", 1);
  options.anatomical_dir.clear();
  options.functional_dir.clear();
  options.packed_pairs = out / "bad.pth";
  const auto message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find(out / "bad.pth" + ": 'a' has no anatomical plane"), std::string::npos) << message;
  EXPECT_NE(message.find("'b/anatomical' is not a non-empty (H,W) uint8 plane"), std::string::npos) << message;
  EXPECT_NE(message.find("'c' is not <name>/functional or <name>/anatomical"), std::string::npos) << message;

  std::ofstream(out / "truncated.pth", std::ios::trunc) << "PK";
  options.packed_pairs = out / "truncated.pth";
  EXPECT_NE(error_of([&] { train_network(options); }).find(out / "truncated.pth"), std::string::npos);

  options.anatomical_dir = data.anatomical();  // both sources at once
  EXPECT_NE(error_of([&] { train_network(options); }).find("either packed_pairs or"), std::string::npos);
  EXPECT_FALSE(fs::exists(out / "run/model_1.pth"));
}

// The CPU against itself: the check runs end to end and agrees exactly (a GPU is checked where lent).
TEST(Trainer, DeviceCheckOfTheCpuAgainstItselfPasses) {
  SyntheticData data(2);
  TempDir out;
  auto options = data.options(out / "run", 1);
  options.intensity_weight = 3.0;
  options.texture_weight = 2.0;
  const DeviceCheck check = check_training_device(options);
  EXPECT_TRUE(check.passed);
  EXPECT_EQ(check.device, "cpu");
  EXPECT_EQ(check.largest_term_difference, 0.0);
  EXPECT_EQ(check.largest_gradient_difference, 0.0);
  EXPECT_TRUE(std::isfinite(check.total_loss) && check.total_loss > 0.0) << check.total_loss;
  EXPECT_FALSE(fs::exists(out / "run"));  // a check writes nothing
}

TEST(Trainer, CropsMustFitTheImages) {
  SyntheticData data(2);
  TempDir out;
  auto options = data.options(out / "run", 1);
  options.crop_height = 32;
  options.crop_width = 24;
  const auto message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find("smaller than the crop"), std::string::npos) << message;
}

TEST(Trainer, RefusesAStepBeyondTheAvailableMemoryBeforeStarting) {
  SyntheticData data(2);
  TempDir out;
  auto options = data.options(out / "run", 1);
  options.batch_size = 1 << 24;  // terabytes of activations
  const auto message = error_of([&] { train_network(options); });
  EXPECT_NE(message.find("needs about"), std::string::npos) << message;
  EXPECT_NE(message.find("(MemAvailable)"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(fs::path(out / "run") / "training_state.pth"));
}

TEST(TrainingMemoryEstimate, GrowsWithThePixelsAndARefusalNamesWhatWouldFit) {
  for (const auto precision : {Precision::float32, Precision::bfloat16}) {
    for (const bool kept : {false, true}) {
      const auto shape = [&](int64_t batch, int64_t height) {
        return TrainingStepShape{batch, height, 256, precision, kept};
      };
      const int64_t full = estimated_training_step_bytes(shape(4, 256));
      EXPECT_GT(full, estimated_training_step_bytes(shape(4, 64)));
      EXPECT_GT(full, estimated_training_step_bytes(shape(2, 256)));
      EXPECT_TRUE(training_memory_shortfall(shape(4, 256), full).empty());
      // One byte short: three images of 256x256 fit, and so does every row count up to the one named.
      const auto message = training_memory_shortfall(shape(4, 256), full - 1);
      EXPECT_NE(message.find("a training step on 4 x 256x256 needs about"), std::string::npos) << message;
      EXPECT_NE(message.find("batch size 3, or crops of 256x"), std::string::npos) << message;
      const auto crop = message.find("crops of 256x");
      ASSERT_NE(crop, std::string::npos) << message;
      const int64_t rows = std::stoll(message.substr(crop + 13));
      EXPECT_LE(estimated_training_step_bytes(shape(4, rows)), full - 1);
      EXPECT_GT(estimated_training_step_bytes(shape(4, rows + 1)), full - 1);
    }
  }
  // Keeping freed blocks costs memory, never saves it.
  EXPECT_GT(estimated_training_step_bytes({4, 256, 256, Precision::float32, true}),
            estimated_training_step_bytes({4, 256, 256, Precision::float32, false}));
}

TEST(Trainer, SeemTrainingLowersItsLoss) {
  SyntheticData data(4, 24, 24);
  TempDir out;
  SeemTrainOptions options;
  options.functional_dir = data.functional();
  options.out_dir = out / "seem";
  options.epochs = 30;
  options.batch_size = 4;
  options.lr = 1e-2;
  const auto summary = train_seem(options);
  EXPECT_EQ(summary.last_epoch, 30);
  SmoothEdgeExtractor seem;
  EXPECT_NO_THROW(load_weights(*seem, out / "seem/seem_30.pth"));
  std::ifstream log(out / "seem/loss.csv");
  std::string header, first, line, last;
  std::getline(log, header);
  std::getline(log, first);
  while (std::getline(log, line)) last = line;
  EXPECT_EQ(header, "epoch,step,mse,seconds");
  const auto mse = [](const std::string& row) { return std::stod(row.substr(row.find(',', row.find(',') + 1) + 1)); };
  EXPECT_LT(mse(last), mse(first));
}

}  // namespace
}  // namespace efcnet
