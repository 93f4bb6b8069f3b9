// `efcnet compare` run as a user runs it, on phantoms from `efcnet phantom`, with the shipped
// weights; its page is opened in a real headless browser (Debian's chromium).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "efcnet/image.h"
#include "efcnet/metrics.h"
#include "support/command.h"
#include "support/csv.h"
#include "support/required.h"
#include "support/temp_dir.h"

namespace {

namespace fs = std::filesystem;
namespace m = efcnet::metrics;
using efcnet::testing::contains;
using efcnet::testing::quoted;
using efcnet::testing::slurp;
using efcnet::testing::TempDir;
using Json = nlohmann::json;
using Result = efcnet::testing::CommandResult;

const std::string kBinary = EFCNET_BINARY;
const std::string kWeights = std::string(EFCNET_SOURCE_DIR) + "/models/efcnet_default.pth";
const std::string kSeemWeights = std::string(EFCNET_SOURCE_DIR) + "/models/seem_default.pth";

// The dataset: phantoms of several kinds and sizes, named by them; one name needs escaping in
// HTML and in a URL.
struct PhantomPair {
  std::string kind, size, name;
};
const std::vector<PhantomPair> kPhantoms = {{"ct", "48", "ct48"},
                                            {"gfp", "64", "gfp64"},
                                            {"pet", "64", "pet64"},
                                            {"spect", "64", "spect64"},
                                            {"spect", "32", "small & odd #1 100%"}};
const std::vector<std::string> kPairs = {"ct48", "gfp64", "pet64", "small & odd #1 100%", "spect64"};  // sorted
const std::vector<std::string> kRunMethods = {"efcnet", "y-average", "y-max"};

// One comparison for the whole suite: fusing is the slow part.
//   clean   a results directory with every pair (a blend of the inputs);
//   partial pet64 missing, ct48 a truncated PNG, gfp64 of the wrong size, spect64 a TIFF, and a
//           stray image that belongs to no pair.
class CompareCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    const TempDir& d = *dir_;
    for (const char* sub : {"A", "F", "clean", "partial"}) fs::create_directories(d / sub);
    for (const auto& [kind, size, name] : kPhantoms) {
      const Result r = efcnet::testing::run_command(
          quoted(kBinary) + " phantom --kind " + kind + " --size " + size + " --out-dir " + quoted(d / ("ph/" + name)),
          d);
      ASSERT_EQ(r.status, 0) << r.err;
      fs::rename(d / ("ph/" + name + "/anatomical.png"), d / ("A/" + name + ".png"));
      fs::rename(d / ("ph/" + name + "/functional.png"), d / ("F/" + name + ".png"));
      const cv::Mat a = cv::imread(d / ("A/" + name + ".png"), cv::IMREAD_COLOR);
      const cv::Mat f = cv::imread(d / ("F/" + name + ".png"), cv::IMREAD_COLOR);
      cv::Mat blend;
      cv::addWeighted(a, 0.4, f, 0.6, 0, blend);
      ASSERT_TRUE(cv::imwrite(d / ("clean/" + name + ".png"), blend));
      if (name == "spect64") {
        ASSERT_TRUE(cv::imwrite(d / ("partial/" + name + ".tif"), blend));
      } else if (name == "gfp64") {
        ASSERT_TRUE(cv::imwrite(d / "partial/gfp64.png", blend(cv::Rect(0, 0, 32, 32))));
      } else if (name == "ct48") {
        std::vector<unsigned char> png;
        ASSERT_TRUE(cv::imencode(".png", blend, png));
        std::ofstream(d / "partial/ct48.png", std::ios::binary)
            .write(reinterpret_cast<const char*>(png.data()), png.size() / 2);
      } else if (name != "pet64") {
        ASSERT_TRUE(cv::imwrite(d / ("partial/" + name + ".png"), blend));
      }
    }
    ASSERT_TRUE(cv::imwrite(d / "partial/stray.png", cv::Mat(32, 32, CV_8UC1, cv::Scalar(7))));
    ASSERT_TRUE(fs::exists(kWeights)) << kWeights << " (the shipped weights) is missing";

    run_ = new Result(efcnet::testing::run_command(
        quoted(kBinary) + " compare --anatomical-dir " + quoted(d / "A") + " --functional-dir " + quoted(d / "F") +
            " --output-dir " + quoted(d / "R") + " --method clean=" + quoted(d / "clean") +
            " --method partial=" + quoted(d / "partial") + " --weights " + quoted(kWeights) + " --seem-weights " +
            quoted(kSeemWeights) + " --threads 2",
        d));
  }
  static void TearDownTestSuite() {
    delete run_;
    delete dir_;
  }

  void SetUp() override { ASSERT_TRUE(fs::exists(dir() / "R/scores.json")) << run_->err; }

  static const TempDir& dir() { return *dir_; }
  static const Result& run() { return *run_; }
  static std::string report_dir() { return dir() / "R"; }
  static Json scores_json() { return Json::parse(slurp(dir() / "R/scores.json")); }

  static const Json& method_json(const Json& scores, const std::string& name) {
    for (const Json& method : scores.at("methods")) {
      if (method.at("name") == name) return method;
    }
    throw std::runtime_error("no method " + name + " in scores.json");
  }

  static Result evaluate(const std::string& fused_dir) {
    return efcnet::testing::run_command(quoted(kBinary) + " evaluate --anatomical-dir " + quoted(dir() / "A") +
                                            " --functional-dir " + quoted(dir() / "F") + " --fused-dir " +
                                            quoted(fused_dir) + " --format json",
                                        dir());
  }

  static TempDir* dir_;
  static Result* run_;
};

TempDir* CompareCli::dir_ = nullptr;
Result* CompareCli::run_ = nullptr;

TEST_F(CompareCli, MissingAndCorruptResultsAreNamedAndTheRestIsReported) {
  EXPECT_EQ(run().status, 1) << run().err;
  EXPECT_TRUE(contains(run().err, "missing: partial: pet64")) << run().err;
  EXPECT_TRUE(contains(run().err, "failed: partial: ct48: " + (dir() / "partial/ct48.png"))) << run().err;
  EXPECT_TRUE(contains(run().err, "ignored: " + (dir() / "partial/stray.png"))) << run().err;
  EXPECT_TRUE(
      contains(run().err, "failed: partial: gfp64: " + (dir() / "partial/gfp64.png") + " (32x32) differs in size"))
      << run().err;
  EXPECT_TRUE(contains(run().err, "3 problems")) << run().err;

  const Json scores = scores_json();
  ASSERT_EQ(scores.at("methods").size(), 5u);
  for (const std::string name : {"efcnet", "y-average", "y-max", "clean"}) {
    EXPECT_EQ(method_json(scores, name).at("scored"), kPairs.size()) << name;
  }
  const Json& partial = method_json(scores, "partial");
  EXPECT_EQ(partial.at("scored"), 2u);
  std::map<std::string, Json> files;
  for (const Json& file : partial.at("files")) files[file.at("file")] = file;
  ASSERT_EQ(files.size(), kPairs.size()) << "missing pairs are listed, not dropped";
  EXPECT_TRUE(files.at("pet64").contains("missing"));
  EXPECT_TRUE(contains(files.at("ct48").at("failed").get<std::string>(), dir() / "partial/ct48.png"));
  EXPECT_TRUE(files.at("spect64").contains("SSIM")) << "a TIFF result is scored";

  const std::string html = slurp(dir() / "R/report.html");
  EXPECT_TRUE(contains(html, "missing: no image named pet64 in " + (dir() / "partial")))
      << "the gallery shows it missing";
  EXPECT_TRUE(contains(html, "failed: " + (dir() / "partial/ct48.png"))) << "the gallery names the corrupt file";

  for (const std::string& method : kRunMethods) {
    for (const std::string& pair : kPairs) {
      const cv::Mat fused = cv::imread(dir() / ("R/" + method + "/" + pair + ".png"), cv::IMREAD_UNCHANGED);
      EXPECT_FALSE(fused.empty()) << method << "/" << pair;
    }
  }
  for (const auto& entry : fs::recursive_directory_iterator(report_dir())) {
    EXPECT_NE(entry.path().filename().string().front(), '.') << "a temporary file is left: " << entry.path();
  }
}

// What `efcnet evaluate` says of each method's files is what the report says of the method.
TEST_F(CompareCli, MeansEqualEvaluates) {
  const Json scores = scores_json();
  std::map<std::string, std::string> fused_dirs{{"clean", dir() / "clean"}, {"partial", dir() / "partial"}};
  for (const std::string& method : kRunMethods) fused_dirs[method] = dir() / ("R/" + method);
  const std::string html = slurp(dir() / "R/report.html");
  const std::string means_table = html.substr(html.find("<table class=\"means\">"));

  for (const auto& [method, fused_dir] : fused_dirs) {
    const Result r = evaluate(fused_dir);
    EXPECT_EQ(r.status, method == "partial" ? 1 : 0) << method << ": " << r.err;
    const Json evaluated = Json::parse(r.out);
    const Json& compared = method_json(scores, method);
    ASSERT_FALSE(compared.at("mean").is_null()) << method;
    for (const char* metric : m::kMetricNames) {
      EXPECT_EQ(compared.at("mean").at(metric).get<double>(), evaluated.at("mean").at(metric).get<double>())
          << method << " " << metric;
    }
    std::map<std::string, Json> by_file;
    for (const Json& file : compared.at("files")) by_file[file.at("file")] = file;
    ASSERT_EQ(evaluated.at("files").size(), compared.at("scored").get<std::size_t>()) << method;
    for (const Json& file : evaluated.at("files")) {
      for (const char* metric : m::kMetricNames) {
        EXPECT_EQ(by_file.at(file.at("file")).at(metric).get<double>(), file.at(metric).get<double>())
            << method << " " << file.at("file") << " " << metric;
      }
    }

    // The page's table shows the same means, to its four decimals.
    const auto row = means_table.find("<tr data-method=\"" + method + "\">");
    ASSERT_NE(row, std::string::npos) << method;
    const std::string row_html = means_table.substr(row, means_table.find("</tr>", row) - row);
    std::vector<std::string> cells;
    const std::regex cell("<td[^>]*>(-?[0-9]+\\.[0-9]+)</td>");
    for (std::sregex_iterator it(row_html.begin(), row_html.end(), cell), end; it != end; ++it)
      cells.push_back((*it)[1]);
    ASSERT_GE(cells.size(), m::kMetricNames.size()) << row_html;
    for (std::size_t i = 0; i < m::kMetricNames.size(); ++i) {
      char expected[32];
      std::snprintf(expected, sizeof expected, "%.4f", evaluated.at("mean").at(m::kMetricNames[i]).get<double>());
      EXPECT_EQ(cells[cells.size() - m::kMetricNames.size() + i], expected) << method << " " << m::kMetricNames[i];
    }
  }
}

TEST_F(CompareCli, CsvAndJsonAgree) {
  const Json scores = scores_json();
  std::istringstream csv(slurp(dir() / "R/scores.csv"));
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  EXPECT_EQ(line, "method,file,EN,SD,SF,AG,MI,SCD,VIF,Qabf,SSIM,PSNR,CC,MSE");
  std::size_t rows = 0;
  while (std::getline(csv, line)) {
    ++rows;
    std::vector<std::string> cells;
    std::stringstream cells_in(line);
    for (std::string cell; std::getline(cells_in, cell, ',');) cells.push_back(cell);
    if (line.back() == ',') cells.push_back("");
    ASSERT_EQ(cells.size(), 14u) << line;
    const Json& method = method_json(scores, cells[0]);
    Json expected;
    if (cells[1] == "mean") {
      expected = method.at("mean");
    } else {
      for (const Json& file : method.at("files")) {
        if (file.at("file") == cells[1]) expected = file;
      }
    }
    ASSERT_FALSE(expected.is_null()) << line;
    for (std::size_t i = 0; i < m::kMetricNames.size(); ++i) {
      const std::string& cell = cells[2 + i];
      if (!expected.contains(m::kMetricNames[i])) {
        EXPECT_EQ(cell, "") << line;  // a missing or failed result
      } else {
        EXPECT_EQ(std::stod(cell), expected.at(m::kMetricNames[i]).get<double>()) << line;
      }
    }
  }
  EXPECT_EQ(rows, 5 * (kPairs.size() + 1));  // every method has every pair and a mean
}

// ---- in a browser ----

std::optional<std::string> find_chromium() {
  for (const char* name : {"chromium", "chromium-browser"}) {
    const char* path_env = std::getenv("PATH");
    std::stringstream dirs(path_env ? path_env : "");
    for (std::string d; std::getline(dirs, d, ':');) {
      const fs::path candidate = fs::path(d) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
    }
  }
  return std::nullopt;
}

// A relative URL back to the file path it names.
std::string percent_decoded(const std::string& url) {
  std::string path;
  for (std::size_t i = 0; i < url.size(); ++i) {
    if (url[i] == '%' && i + 2 < url.size()) {
      path += static_cast<char>(std::stoi(url.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      path += url[i];
    }
  }
  return path;
}

std::string chromium_command(const std::string& chromium, const TempDir& profile, const std::string& what,
                             const std::string& page) {
  // --no-sandbox: the suite may run as root; --virtual-time-budget lets the page finish loading.
  return "timeout 180 " + quoted(chromium) + " --headless --no-sandbox --disable-gpu --no-first-run " +
         "--disable-dev-shm-usage --hide-scrollbars --user-data-dir=" + quoted(profile.path().string()) +
         " --window-size=1280,1600 --virtual-time-budget=10000 " + what + " " + quoted("file://" + page);
}

TEST_F(CompareCli, BrowserShowsEveryMethodAndEveryPicture) {
  const auto chromium = find_chromium();
  if (!chromium)
    EFCNET_SKIP_UNLESS_CI() << "chromium is not installed (scripts/install-deps installs it); browser test";
  const std::string page = dir() / "R/report.html";
  TempDir profile;

  const std::string shot = profile / "shot.png";
  const Result screenshot =
      efcnet::testing::run_command(chromium_command(*chromium, profile, "--screenshot=" + quoted(shot), page), profile);
  ASSERT_EQ(screenshot.status, 0) << screenshot.err;
  const cv::Mat image = cv::imread(shot, cv::IMREAD_COLOR);
  ASSERT_FALSE(image.empty()) << shot;
  EXPECT_EQ(image.size(), cv::Size(1280, 1600));
  cv::Scalar mean, deviation;
  cv::meanStdDev(image, mean, deviation);
  EXPECT_GT(deviation[0] + deviation[1] + deviation[2], 30) << "the screenshot is blank";
  cv::Mat ink;
  cv::inRange(image, cv::Scalar(0, 0, 0), cv::Scalar(120, 120, 120), ink);
  EXPECT_GT(cv::countNonZero(ink), 2000) << "no text or pictures on the screenshot";

  const Result dom = efcnet::testing::run_command(chromium_command(*chromium, profile, "--dump-dom", page), profile);
  ASSERT_EQ(dom.status, 0) << dom.err;
  for (const std::string name : {"efcnet", "y-average", "y-max", "clean", "partial"}) {
    EXPECT_TRUE(contains(dom.out, "<tr data-method=\"" + name + "\">")) << name << " is not in the rendered page";
  }
  // inputs and the five methods for every pair, less partial's missing, corrupt and wrongly sized ones
  const std::size_t pictures = kPairs.size() * 7 - 3;
  EXPECT_TRUE(contains(dom.out, "data-pictures=\"" + std::to_string(pictures) + "\"")) << dom.out.substr(0, 2000);
  EXPECT_TRUE(contains(dom.out, "data-broken-pictures=\"0\"")) << "the browser could not show every picture";

  std::set<std::string> sources;
  const std::regex img("<img src=\"([^\"]+)\"");
  for (std::sregex_iterator it(dom.out.begin(), dom.out.end(), img), end; it != end; ++it) sources.insert((*it)[1]);
  EXPECT_EQ(sources.size(), pictures);
  for (const std::string& source : sources) {
    EXPECT_FALSE(cv::imread(report_dir() + "/" + percent_decoded(source), cv::IMREAD_UNCHANGED).empty()) << source;
  }
}

// ---- what needs no comparison ----

// Command lines refused before anything is fused, in a directory of their own.
class CompareOptions : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* sub : {"A", "F", "results"}) fs::create_directories(dir_ / sub);
  }
  Result compare(const std::string& args) {
    return efcnet::testing::run_command(quoted(kBinary) + " compare --anatomical-dir " + quoted(dir_ / "A") +
                                            " --functional-dir " + quoted(dir_ / "F") + " " + args,
                                        dir_);
  }
  // A 32x32 pair A/<name>.png, F/<name>.png.
  void write_pair(const std::string& name) {
    const efcnet::Phantom p = efcnet::make_phantom(32, efcnet::PhantomKind::spect);
    ASSERT_TRUE(cv::imwrite(dir_ / ("A/" + name + ".png"), p.anatomical));
    ASSERT_TRUE(cv::imwrite(dir_ / ("F/" + name + ".png"), p.functional));
  }
  TempDir dir_;
};

TEST_F(CompareOptions, HelpExplainsEveryOption) {
  const Result r = efcnet::testing::run_command(quoted(kBinary) + " compare --help", dir_);
  EXPECT_EQ(r.status, 0);
  for (const char* text :
       {"--anatomical-dir", "--functional-dir", "--output-dir",    "--method",  "NAME=DIR",    "--no-efcnet",
        "--no-baselines",   "--weights",        "--seem-weights",  "--threads", "--overwrite", "report.html",
        "scores.csv",       "scores.json",      "y-average",       "y-max",     "stem",        "missing",
        "atomically",       "efcnet evaluate",  "exit status is 1"}) {
    EXPECT_TRUE(contains(r.out, text)) << "compare --help lacks '" << text << "'";
  }
}

TEST_F(CompareOptions, AnExistingReportIsKeptWithoutOverwrite) {
  fs::create_directories(dir_ / "R");
  std::ofstream(dir_ / "R/report.html") << "an earlier report";
  const Result r = compare("--no-efcnet --output-dir " + quoted(dir_ / "R"));
  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(contains(r.err, (dir_ / "R/report.html") + ": already exists (pass --overwrite")) << r.err;
  EXPECT_EQ(slurp(dir_ / "R/report.html"), "an earlier report");
  EXPECT_EQ(efcnet::testing::list_dir(dir_ / "R").size(), 1u);
}

TEST_F(CompareOptions, UnusableMethodsAreRefusedBeforeAnyWork) {
  const std::string out = "--output-dir " + quoted(dir_ / "refused") + " ";
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"--method 'bad name=" + (dir_ / "results") + "'", "letters, digits"},
           {"--method y-max=" + quoted(dir_ / "results"), "already a method"},
           {"--method r=" + quoted(dir_ / "results") + " --method r=" + quoted(dir_ / "results"), "already a method"},
           {"--method nowhere=" + quoted(dir_ / "none"), "not a directory"},
           {"--method results", "NAME=DIR"},
           {"--no-baselines", "no methods"},
           {"--weights " + quoted(dir_ / "w.pth"), "which --no-efcnet leaves out"}}) {
    const Result r = compare("--no-efcnet " + out + args);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_TRUE(contains(r.err, message)) << args << ": " << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "refused"));
  const Result same =
      compare("--no-efcnet --output-dir " + quoted(dir_ / "results") + " --method r=" + quoted(dir_ / "results"));
  EXPECT_EQ(same.status, 1);
  EXPECT_TRUE(contains(same.err, "is an input directory")) << same.err;
}

// File names are data in every report file: RFC 4180 fields and no formulas in the CSV, U+FFFD
// for the bytes of a name that is not UTF-8 in the JSON. The three files are replaced together:
// none of them may be left from the earlier report beside new ones.
TEST_F(CompareOptions, OddFileNamesReachEveryReportFileAndAllThreeAreReplacedTogether) {
  const std::vector<std::string> names = {"=HYPERLINK(x)", "a,b \"c\"", "caf\xe9"};  // sorted
  for (const std::string& name : names) write_pair(name);
  for (const char* file : {"report.html", "scores.csv", "scores.json"}) {
    fs::create_directories(dir_ / "R");
    std::ofstream(dir_ / ("R/" + std::string(file))) << "the earlier report";
  }
  const Result r = compare("--no-efcnet --overwrite --output-dir " + quoted(dir_ / "R"));
  ASSERT_EQ(r.status, 0) << r.err;

  const auto rows = efcnet::testing::parse_csv(slurp(dir_ / "R/scores.csv"));
  ASSERT_EQ(rows.size(), 1 + 2 * (names.size() + 1));
  const std::vector<std::string> shown = {"'=HYPERLINK(x)", "a,b \"c\"", "caf\xe9", "mean"};
  for (std::size_t i = 0; i < shown.size(); ++i) {
    ASSERT_EQ(rows[1 + i].size(), 14u);
    EXPECT_EQ(rows[1 + i][0], "y-average");
    EXPECT_EQ(rows[1 + i][1], shown[i]);
  }
  const Json scores = Json::parse(slurp(dir_ / "R/scores.json"));
  EXPECT_EQ(scores.at("dataset").at("pairs").at(2).at("name"), "caf\xEF\xBF\xBD");
  EXPECT_EQ(scores.at("methods").at(0).at("files").at(0).at("file"), names[0]);
  const std::string html = slurp(dir_ / "R/report.html");
  EXPECT_TRUE(contains(html, "caf\xe9")) << "the page names the pair";
}

// A results directory inside --output-dir would be written into before it is read (y-max's own
// images here), or hold the report's pictures: refused before any work, whatever --overwrite says.
TEST_F(CompareOptions, AResultsDirectoryInsideTheOutputDirectoryIsRefused) {
  write_pair("x");
  fs::create_directories(dir_ / "R/y-max");
  const cv::Mat earlier(32, 32, CV_8UC1, cv::Scalar(7));
  ASSERT_TRUE(cv::imwrite(dir_ / "R/y-max/x.png", earlier));
  const std::string png = slurp(dir_ / "R/y-max/x.png");
  const Result r = compare("--no-efcnet --overwrite --output-dir " + quoted(dir_ / "R") +
                           " --method old=" + quoted(dir_ / "R/y-max"));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_TRUE(contains(r.err, (dir_ / "R/y-max") + ": is inside --output-dir " + (dir_ / "R"))) << r.err;
  EXPECT_EQ(slurp(dir_ / "R/y-max/x.png"), png);
  EXPECT_EQ(efcnet::testing::list_dir(dir_ / "R"), (std::set<std::string>{"y-max"}));

  const Result anatomical = compare("--no-efcnet --output-dir " + quoted(dir_.path().string()));
  EXPECT_EQ(anatomical.status, 1) << anatomical.err;
  EXPECT_TRUE(contains(anatomical.err, (dir_ / "A") + ": is inside --output-dir")) << anatomical.err;
}

}  // namespace
