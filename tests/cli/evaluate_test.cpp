// `efcnet evaluate` run as a user runs it: the built binary on real files.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/metrics.h"
#include "support/command.h"
#include "support/csv.h"
#include "support/required.h"
#include "support/temp_dir.h"

namespace {

namespace m = efcnet::metrics;
using efcnet::testing::contains;
using efcnet::testing::quoted;
using efcnet::testing::TempDir;
using Result = efcnet::testing::CommandResult;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A textured anatomical image, a blob-like functional one and their mean, varied by `seed`.
struct TripleImages {
  cv::Mat a, b, f;
};
TripleImages make_triple(int seed, cv::Size size = {64, 48}) {
  TripleImages t{cv::Mat(size, CV_8U), cv::Mat(size, CV_8UC3), cv::Mat()};
  for (int y = 0; y < size.height; ++y)
    for (int x = 0; x < size.width; ++x) {
      t.a.at<uchar>(y, x) = static_cast<uchar>((x * 37 + y * y * 11 + x * y * seed) % 256);
      const int r = (x - 30) * (x - 30) + (y - 20 - seed) * (y - 20 - seed);
      t.b.at<cv::Vec3b>(y, x) = cv::Vec3b(0, static_cast<uchar>(std::max(0, 255 - r / 3)), 40);
    }
  cv::Mat b_grey;
  cv::extractChannel(t.b, b_grey, 1);
  cv::addWeighted(t.a, 0.5, b_grey, 0.5, 0, t.f);
  return t;
}

class EvaluateCli : public ::testing::Test {
 protected:
  Result run(const std::string& args) {
    return efcnet::testing::run_command(quoted(EFCNET_BINARY) + " evaluate " + args, dir_);
  }

  // Writes DA/name.png, DB/name.png, DF/name.png.
  void write_triple(const std::string& name, const TripleImages& t) {
    for (const char* d : {"A", "B", "F"}) std::filesystem::create_directories(dir_.path() / d);
    ASSERT_TRUE(cv::imwrite(dir_ / ("A/" + name + ".png"), t.a));
    ASSERT_TRUE(cv::imwrite(dir_ / ("B/" + name + ".png"), t.b));
    ASSERT_TRUE(cv::imwrite(dir_ / ("F/" + name + ".png"), t.f));
  }

  m::FusionMetrics library_metrics(const std::string& name) {
    return m::evaluate_fusion(m::read_grey(dir_ / ("A/" + name + ".png")), m::read_grey(dir_ / ("B/" + name + ".png")),
                              m::read_grey(dir_ / ("F/" + name + ".png")));
  }

  std::string single_args(const std::string& name) {
    return "--anatomical " + quoted(dir_ / ("A/" + name + ".png")) + " --functional " +
           quoted(dir_ / ("B/" + name + ".png")) + " --fused " + quoted(dir_ / ("F/" + name + ".png"));
  }

  std::string dir_args() {
    return "--anatomical-dir " + quoted(dir_ / "A") + " --functional-dir " + quoted(dir_ / "B") + " --fused-dir " +
           quoted(dir_ / "F");
  }

  TempDir dir_;
};

TEST_F(EvaluateCli, SingleTripleJsonHasExactlyTheTwelveMetrics) {
  write_triple("x", make_triple(1));
  const Result r = run(single_args("x") + " --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json.size(), m::kMetricNames.size());
  const m::FusionMetrics expected = library_metrics("x");
  for (std::size_t i = 0; i < m::kMetricNames.size(); ++i)
    EXPECT_EQ(json.at(m::kMetricNames[i]).get<double>(), expected[i]) << m::kMetricNames[i];
}

TEST_F(EvaluateCli, SingleTripleTableNamesEveryMetric) {
  write_triple("x", make_triple(2));
  const Result r = run(single_args("x") + " --format table");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), m::kMetricNames.size());
  for (std::size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i].rfind(m::kMetricNames[i], 0), 0u) << lines[i];
}

TEST_F(EvaluateCli, GoldenTripleMatchesTheReferenceEvaluator) {
  const std::string golden = std::string(EFCNET_SHARED_DIR) + "/golden/metrics";
  if (!std::filesystem::exists(golden + "/expected.json")) EFCNET_SKIP_UNLESS_CI() << "no golden metrics in " << golden;
  std::ifstream in(golden + "/expected.json");
  const auto triple = nlohmann::json::parse(in).at(1);
  const Result r = run("--anatomical " + quoted(golden + "/" + triple.at("anatomical").get<std::string>()) +
                       " --functional " + quoted(golden + "/" + triple.at("functional").get<std::string>()) +
                       " --fused " + quoted(golden + "/" + triple.at("fused").get<std::string>()) + " --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json got = nlohmann::json::parse(r.out);
  for (const auto& [name, value] : triple.at("metrics").items()) {
    const double want = value;
    EXPECT_NEAR(got.at(name).get<double>(), want, std::max(1e-3 * std::abs(want), 1e-4)) << name;
  }
}

TEST_F(EvaluateCli, DirectoriesCsvRowsAndMean) {
  write_triple("t1", make_triple(1));
  write_triple("t2", make_triple(2));
  write_triple("t3", make_triple(3));
  const Result r = run(dir_args() + " --format csv");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 5u) << r.out;
  EXPECT_EQ(lines[0], "file,EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM,PSNR,CC,MSE");
  double sum[12] = {};
  for (int row = 1; row <= 3; ++row) {
    const std::string name = "t" + std::to_string(row);
    const m::FusionMetrics expected = library_metrics(name);
    std::istringstream cells(lines[row]);
    std::string cell;
    std::getline(cells, cell, ',');
    EXPECT_EQ(cell, name);
    for (std::size_t i = 0; i < 12; ++i) {
      std::getline(cells, cell, ',');
      EXPECT_EQ(std::stod(cell), expected[i]) << name << " " << m::kMetricNames[i];  // shortest round-trip text
      sum[i] += expected[i];
    }
  }
  std::istringstream mean(lines[4]);
  std::string cell;
  std::getline(mean, cell, ',');
  EXPECT_EQ(cell, "mean");
  for (std::size_t i = 0; i < 12; ++i) {
    std::getline(mean, cell, ',');
    EXPECT_NEAR(std::stod(cell), sum[i] / 3, 1e-12 * std::abs(sum[i])) << m::kMetricNames[i];
  }
}

TEST_F(EvaluateCli, OneThreadAndManyGiveTheSameTable) {
  for (int i = 1; i <= 5; ++i) write_triple("t" + std::to_string(i), make_triple(i));
  const Result one = run(dir_args() + " --format csv --threads 1");
  const Result many = run(dir_args() + " --format csv --threads 4");
  ASSERT_EQ(one.status, 0) << one.err;
  ASSERT_EQ(many.status, 0) << many.err;
  EXPECT_EQ(one.out, many.out);
}

TEST_F(EvaluateCli, DirectoriesJson) {
  write_triple("t1", make_triple(1));
  write_triple("t2", make_triple(2));
  const Result r = run(dir_args() + " --format json");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json.at("files").size(), 2u);
  EXPECT_EQ(json.at("files").at(1).at("file"), "t2");
  EXPECT_EQ(json.at("files").at(1).at("VIF").get<double>(), library_metrics("t2").VIF);
  EXPECT_EQ(json.at("mean").size(), m::kMetricNames.size());
}

// File names are data: a comma, a quote or a line break stays inside one CSV field (RFC 4180), and
// a name a spreadsheet would run as a formula starts with an apostrophe; the numbers are as ever.
TEST_F(EvaluateCli, OddFileNamesStayOneCsvFieldAndNeverRunAsFormulas) {
  const std::vector<std::string> names = {"+x", "-2", "=1+1", "@SUM(A1)", "a,b", "line\nbreak", "say \"hi\""};
  for (std::size_t i = 0; i < names.size(); ++i) write_triple(names[i], make_triple(static_cast<int>(i) + 1));
  const Result r = run(dir_args() + " --format csv");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto rows = efcnet::testing::parse_csv(r.out);
  ASSERT_EQ(rows.size(), names.size() + 2) << r.out;
  const std::vector<std::string> shown = {"'+x", "'-2", "'=1+1", "'@SUM(A1)", "a,b", "line\nbreak", "say \"hi\""};
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& row = rows[i + 1];
    ASSERT_EQ(row.size(), 13u) << r.out;
    EXPECT_EQ(row[0], shown[i]);
    const m::FusionMetrics expected = library_metrics(names[i]);
    for (std::size_t k = 0; k < 12; ++k) EXPECT_EQ(std::stod(row[k + 1]), expected[k]) << names[i];
  }
  EXPECT_EQ(rows.back()[0], "mean");
}

// A name that is not UTF-8 reaches JSON with U+FFFD for its stray bytes, and CSV as it is.
TEST_F(EvaluateCli, ANameThatIsNotUtf8IsReplacedInJsonAndKeptInCsv) {
  write_triple("caf\xe9", make_triple(1));
  write_triple("t2", make_triple(2));
  const Result json = run(dir_args() + " --format json");
  ASSERT_EQ(json.status, 0) << json.err;
  const nlohmann::json files = nlohmann::json::parse(json.out).at("files");
  EXPECT_EQ(files.at(0).at("file"), "caf\xEF\xBF\xBD");
  EXPECT_EQ(files.at(0).at("EN").get<double>(), library_metrics("caf\xe9").EN);
  const Result csv = run(dir_args() + " --format csv");
  ASSERT_EQ(csv.status, 0) << csv.err;
  EXPECT_EQ(efcnet::testing::parse_csv(csv.out).at(1).at(0), "caf\xe9");
}

TEST_F(EvaluateCli, DegenerateValuesAreNullInJsonAndSpelledOutInCsv) {
  // A constant anatomical image makes SCD and CC NaN; F equal to A and B makes PSNR infinite.
  TripleImages flat = make_triple(1);
  flat.a.setTo(90);
  write_triple("flat", flat);
  const cv::Mat same = make_triple(2).a;
  write_triple("same", {same, same, same});
  const Result json = run(dir_args() + " --format json");
  ASSERT_EQ(json.status, 0) << json.err;
  const nlohmann::json files = nlohmann::json::parse(json.out).at("files");
  EXPECT_TRUE(files.at(0).at("SCD").is_null());
  EXPECT_TRUE(files.at(0).at("CC").is_null());
  EXPECT_TRUE(files.at(1).at("PSNR").is_null());
  EXPECT_EQ(files.at(1).at("MSE").get<double>(), 0.0);
  const Result csv = run(dir_args() + " --format csv");
  ASSERT_EQ(csv.status, 0) << csv.err;
  const auto lines = lines_of(csv.out);
  ASSERT_EQ(lines.size(), 4u) << csv.out;
  EXPECT_TRUE(contains(lines[1], ",nan,")) << lines[1];
  EXPECT_TRUE(contains(lines[2], ",inf,")) << lines[2];
}

TEST_F(EvaluateCli, UnpairedAndUnreadableFilesAreNamedAndTheRestScored) {
  write_triple("good", make_triple(1));
  write_triple("broken", make_triple(2));
  std::ofstream(dir_ / "F/broken.png", std::ios::trunc) << "not a png";
  ASSERT_TRUE(cv::imwrite(dir_ / "A/lonely.png", make_triple(3).a));
  write_triple("small", make_triple(4, {16, 40}));
  const Result r = run(dir_args() + " --format csv");
  EXPECT_EQ(r.status, 1);
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;  // header, good, mean
  EXPECT_EQ(lines[1].rfind("good,", 0), 0u);
  EXPECT_TRUE(contains(r.err, "unpaired: " + (dir_ / "A/lonely.png"))) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: broken: " + (dir_ / "F/broken.png"))) << r.err;
  EXPECT_TRUE(contains(r.err, "failed: small: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "16x40")) << r.err;
}

TEST_F(EvaluateCli, SizeMismatchNamesTheFiles) {
  write_triple("x", make_triple(1));
  ASSERT_TRUE(cv::imwrite(dir_ / "F/x.png", make_triple(1, {64, 47}).f));
  const Result r = run(single_args("x"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines_of(r.err).size(), 1u) << r.err;
  EXPECT_TRUE(contains(r.err, "efcnet: error: ")) << r.err;
  EXPECT_TRUE(contains(r.err, dir_ / "F/x.png")) << r.err;
  EXPECT_TRUE(contains(r.err, "differ in size")) << r.err;
}

TEST_F(EvaluateCli, MissingFileIsNamed) {
  write_triple("x", make_triple(1));
  std::filesystem::remove(dir_ / "B/x.png");
  const Result r = run(single_args("x"));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, dir_ / "B/x.png" + ": no such file")) << r.err;
}

TEST_F(EvaluateCli, ModesAreExclusive) {
  write_triple("x", make_triple(1));
  const Result both = run(single_args("x") + " " + dir_args());
  EXPECT_EQ(both.status, 1);
  EXPECT_TRUE(contains(both.err, "either")) << both.err;
  const Result partial = run("--anatomical " + quoted(dir_ / "A/x.png"));
  EXPECT_EQ(partial.status, 1);
  EXPECT_TRUE(contains(partial.err, "--fused")) << partial.err;
}

}  // namespace
