// The comparison's report files (compare.h): scores.csv, scores.json and report.html.
#include "efcnet/compare.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "efcnet/image.h"
#include "io/output_text.h"
#include "metrics/metrics_output.h"

namespace efcnet {
namespace {

using metrics::Better;
using metrics::FusionMetrics;
using metrics::kMetricBetter;
using metrics::kMetricNames;
using Json = nlohmann::ordered_json;
using Status = PairOutcome::Status;
constexpr std::size_t kMetricCount = kMetricNames.size();

// Which fusions each metric favours (the report's notes, after its meaning from metrics.h).
constexpr std::array<const char*, kMetricCount> kMetricFavours = {
    "the fused image's information content alone, blind to the inputs; favours busy, noisy or spread-out grey "
    "levels",
    "the fused image's contrast alone; favours high contrast, such as a maximum",
    "the fused image's row and column differences alone; favours sharp edges and noise",
    "like SF, favours sharpness and noise",
    "favours keeping the inputs' own grey levels (a copy of one input scores high)",
    "how much of what each input has and the other lacks the fused image carries; favours keeping both "
    "sources' distinct content",
    "favours preserved detail and contrast",
    "the inputs' edge strength and orientation kept; favours sharp transfer of both inputs' edges",
    "favours being close to both inputs, as an average is",
    "like MSE, favours averaging",
    "favours averaging-like fusions",
    "lower is better; the inputs' average minimises it, so it favours averaging",
};

const char* better_word(std::size_t metric) { return kMetricBetter[metric] == Better::higher ? "higher" : "lower"; }
const char* better_arrow(std::size_t metric) {
  return kMetricBetter[metric] == Better::higher ? "\xE2\x86\x91" : "\xE2\x86\x93";  // ↑ ↓
}

// The best of `values` for `metric`, ignoring NaN and missing ones.
std::optional<double> best_of(std::size_t metric, const std::vector<std::optional<FusionMetrics>>& values) {
  std::optional<double> best;
  for (const auto& v : values) {
    if (!v || std::isnan((*v)[metric])) continue;
    const double x = (*v)[metric];
    if (!best || (kMetricBetter[metric] == Better::higher ? x > *best : x < *best)) best = x;
  }
  return best;
}

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// A relative path as a URL: every byte but unreserved characters and '/' percent-encoded, so that
// a pair named "a#1" or "50%" still links to its file.
std::string url_of(const std::string& relative_path) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : relative_path) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::vector<std::optional<FusionMetrics>> means_of(const Comparison& c) {
  std::vector<std::optional<FusionMetrics>> means;
  for (const MethodResult& method : c.methods) means.push_back(method.mean());
  return means;
}

// The means that compete for best: those over the most pairs (a mean over fewer pairs is over
// other images, so it is shown but not ranked).
std::vector<std::optional<FusionMetrics>> ranked_means(const Comparison& c) {
  std::size_t most = 0;
  for (const MethodResult& method : c.methods) most = std::max(most, method.scored());
  std::vector<std::optional<FusionMetrics>> ranked;
  for (const MethodResult& method : c.methods) {
    ranked.push_back(method.scored() == most ? method.mean() : std::nullopt);
  }
  return ranked;
}

std::optional<double> seconds_per_pair(const Comparison& c, const ReportContext& context) {
  if (c.pairs.empty()) return std::nullopt;
  return context.seconds / static_cast<double>(c.pairs.size());
}

std::optional<double> fusion_seconds_per_pair(const MethodResult& method) {
  if (!method.ran || method.fused == 0) return std::nullopt;
  return method.fusion_seconds / static_cast<double>(method.fused);
}

// ---- HTML pieces ----

constexpr const char* kStyle = R"(
body { font: 14px/1.45 system-ui, "DejaVu Sans", sans-serif; margin: 24px 32px; color: #222; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0 0 6px; }
table { border-collapse: collapse; }
th, td { padding: 3px 7px; text-align: right; border-bottom: 1px solid #eee; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #ccc; }
.wide { overflow-x: auto; }
.means td, .means th { padding: 3px 6px; font-size: 13px; }
td.best { font-weight: bold; background: #d9efd3; }
td.best::after { content: " \2605"; color: #3a7d2c; }
td.none { color: #999; }
.facts th { color: #666; font-weight: normal; text-align: left; }
.facts td { text-align: left; white-space: normal; }
.legend { color: #555; margin: 6px 0; }
dl.notes { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 10px 0; }
dl.notes dt { font-weight: bold; }
dl.notes dd { margin: 0; color: #444; }
.charts { display: flex; flex-wrap: wrap; gap: 18px 28px; }
.chart { margin: 0; }
.chart figcaption { font-weight: bold; margin-bottom: 2px; }
.chart svg { display: block; }
.problems li { color: #a11; }
.pair { margin: 18px 0 30px; }
.row { display: flex; flex-wrap: wrap; gap: 10px; margin-bottom: 6px; }
.row figure { margin: 0; width: 180px; }
.row img, .placeholder { width: 180px; height: 180px; object-fit: contain; background: #000; display: block; }
.row figcaption { font-size: 12px; text-align: center; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.placeholder { display: flex; align-items: center; justify-content: center; text-align: center; background: #f7f0f0;
               border: 1px dashed #c99; color: #a11; font-size: 12px; box-sizing: border-box; padding: 8px;
               overflow: hidden; word-break: break-word; }
.scores td, .scores th { font-size: 12px; padding: 1px 7px; }
.scores td.problem { text-align: left; color: #a11; white-space: normal; }
img.broken { outline: 3px solid #e00; }
.warning { background: #fdd; border: 1px solid #e99; padding: 8px; }
)";

// Sets data-pictures / data-broken-pictures on <body> once everything has loaded, and says so on
// the page when a picture cannot be shown (e.g. the page was copied without its folders).
constexpr const char* kPictureCheck = R"(
window.addEventListener('load', function () {
  var images = document.images, broken = 0;
  for (var i = 0; i < images.length; ++i) {
    if (!images[i].complete || images[i].naturalWidth === 0) { ++broken; images[i].classList.add('broken'); }
  }
  document.body.setAttribute('data-pictures', images.length);
  document.body.setAttribute('data-broken-pictures', broken);
  if (broken > 0) {
    var p = document.createElement('p');
    p.className = 'warning';
    p.textContent = broken + ' of ' + images.length + ' pictures cannot be shown: keep report.html beside ' +
                    'the folders it was written with.';
    document.body.insertBefore(p, document.body.firstChild);
  }
});
)";

std::string metric_header_cells() {
  std::string html;
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    html += "<th title=\"" + std::string(better_word(i)) + " is better\">" + kMetricNames[i] + " " + better_arrow(i) +
            "</th>";
  }
  return html;
}

std::string metric_cells(const FusionMetrics& m, const std::vector<std::optional<double>>& best) {
  std::string html;
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    const bool is_best = best[i] && m[i] == *best[i];
    html += std::string(is_best ? "<td class=\"best\" title=\"best\">" : "<td>") + table_cell(m[i]) + "</td>";
  }
  return html;
}

std::vector<std::optional<double>> best_per_metric(const std::vector<std::optional<FusionMetrics>>& values) {
  std::vector<std::optional<double>> best;
  for (std::size_t i = 0; i < kMetricCount; ++i) best.push_back(best_of(i, values));
  return best;
}

std::string facts_html(const Comparison& c, const ReportContext& context) {
  std::string html = "<table class=\"facts\">\n";
  auto fact = [&html](const std::string& name, const std::string& value_html) {
    html += "<tr><th>" + name + "</th><td>" + value_html + "</td></tr>\n";
  };
  fact("dataset", std::to_string(c.pairs.size()) + " pairs: anatomical " + html_escape(c.anatomical_dir) +
                      ", functional " + html_escape(c.functional_dir) +
                      (c.unpaired.empty() ? "" : " (" + std::to_string(c.unpaired.size()) + " files unpaired)"));
  std::string methods;
  for (const MethodResult& method : c.methods) {
    methods += "<div><b>" + html_escape(method.name) + "</b> " + html_escape(method.description) + "</div>";
  }
  fact("methods", methods);
  fact("weights", context.weights.empty()
                      ? "none (efcnet not run)"
                      : "network " + html_escape(context.weights) + ", SEEM " + html_escape(context.seem_weights));
  fact("machine", html_escape(context.machine) + ", " + std::to_string(context.threads) + " threads");
  fact("date", html_escape(context.date));
  const auto per_pair = seconds_per_pair(c, context);
  fact("time", (per_pair ? fixed(*per_pair, 2) + " s per pair, " : std::string()) + fixed(context.seconds, 1) +
                   " s in all (fusing, scoring, writing)");
  return html + "</table>\n";
}

std::string problems_html(const Comparison& c) {
  std::vector<std::string> lines;
  for (const std::string& line : c.unpaired) lines.push_back("unpaired: " + line);
  for (std::size_t p = 0; p < c.pairs.size(); ++p) {
    if (!c.pairs[p].problem.empty()) {
      lines.push_back("pair " + c.pairs[p].name + ": " + c.pairs[p].problem);
      continue;
    }
    for (const MethodResult& method : c.methods) {
      const PairOutcome& outcome = method.pairs[p];
      if (outcome.status == Status::missing)
        lines.push_back(method.name + ": " + c.pairs[p].name + " missing: " + outcome.problem);
      if (outcome.status == Status::failed)
        lines.push_back(method.name + ": " + c.pairs[p].name + " failed: " + outcome.problem);
    }
  }
  if (lines.empty()) return {};
  std::string html = "<h2>Problems</h2>\n<ul class=\"problems\">\n";
  for (const std::string& line : lines) html += "<li>" + html_escape(line) + "</li>\n";
  return html + "</ul>\n";
}

std::string means_html(const Comparison& c) {
  const auto means = means_of(c);
  const auto best = best_per_metric(ranked_means(c));
  std::string html =
      "<div class=\"wide\"><table class=\"means\">\n<thead><tr><th>method</th>"
      "<th title=\"pairs scored\">pairs</th><th title=\"seconds per pair in its fusion\">s/pair</th>" +
      metric_header_cells() + "</tr></thead>\n<tbody>\n";
  for (std::size_t m = 0; m < c.methods.size(); ++m) {
    const MethodResult& method = c.methods[m];
    const auto fusion = fusion_seconds_per_pair(method);
    html += "<tr data-method=\"" + html_escape(method.name) + "\"><td title=\"" + html_escape(method.description) +
            "\">" + html_escape(method.name) + "</td><td>" + std::to_string(method.scored()) + " / " +
            std::to_string(c.pairs.size()) + "</td><td>" + (fusion ? fixed(*fusion, 3) : std::string("&ndash;")) +
            "</td>";
    if (means[m]) {
      html += metric_cells(*means[m], best);
    } else {
      html += "<td class=\"none\" colspan=\"" + std::to_string(kMetricCount) + "\">nothing scored</td>";
    }
    html += "</tr>\n";
  }
  html += "</tbody>\n</table></div>\n";
  html +=
      "<p class=\"legend\">Means over the pairs each method has a score for. \xE2\x86\x91 higher is better, "
      "\xE2\x86\x93 lower is better; the best mean of each metric is marked \xE2\x98\x85, among the methods "
      "scored on the most pairs (a mean over fewer pairs is over other images). The metrics are those of the "
      "CDDFuse evaluator (as <code>efcnet evaluate</code>), and no single one ranks fusions: each favours "
      "something.</p>\n<dl class=\"notes\">\n";
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    html += "<dt>" + std::string(kMetricNames[i]) + " " + better_arrow(i) + "</dt><dd>" +
            html_escape(std::string(metrics::kMetricMeanings[i]) + ": " + kMetricFavours[i]) + "</dd>\n";
  }
  return html + "</dl>\n";
}

// A horizontal bar per method, from zero, the best one coloured.
std::string bar_chart_svg(std::size_t metric, const Comparison& c,
                          const std::vector<std::optional<FusionMetrics>>& means, const std::optional<double>& best) {
  std::size_t longest_name = 4;
  for (const MethodResult& method : c.methods) longest_name = std::max(longest_name, method.name.size());
  const double label_width = 12 + 7.0 * static_cast<double>(std::min<std::size_t>(longest_name, 24));
  const double bar_width = 170, value_width = 70, row = 20, top = 4;
  const double width = label_width + bar_width + value_width;
  const double height = top * 2 + row * static_cast<double>(c.methods.size());

  double lo = 0, hi = 0;
  for (const auto& mean : means) {
    if (mean && std::isfinite((*mean)[metric])) {
      lo = std::min(lo, (*mean)[metric]);
      hi = std::max(hi, (*mean)[metric]);
    }
  }
  if (hi == lo) hi = lo + 1;
  auto x_of = [&](double v) { return label_width + (v - lo) / (hi - lo) * bar_width; };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + fixed(width, 0) + "\" height=\"" +
                    fixed(height, 0) + "\" role=\"img\" aria-label=\"" + kMetricNames[metric] + " per method\">\n";
  for (std::size_t m = 0; m < c.methods.size(); ++m) {
    const double y = top + row * static_cast<double>(m);
    svg += "<text x=\"" + fixed(label_width - 6, 1) + "\" y=\"" + fixed(y + 14, 1) +
           "\" text-anchor=\"end\" font-size=\"12\" fill=\"#222\">" + html_escape(c.methods[m].name) + "</text>";
    std::string value_text = "no score";
    double value_x = label_width + 4;
    if (means[m]) {
      const double v = (*means[m])[metric];
      value_text = table_cell(v);
      if (std::isfinite(v)) {
        const double x0 = x_of(0), x1 = x_of(v);
        const bool is_best = best && v == *best;
        svg += "<rect x=\"" + fixed(std::min(x0, x1), 2) + "\" y=\"" + fixed(y + 3, 1) + "\" width=\"" +
               fixed(std::max(std::abs(x1 - x0), 1.0), 2) + "\" height=\"" + fixed(row - 6, 1) + "\" fill=\"" +
               (is_best ? "#3a7d2c" : "#8aa9c8") + "\"><title>" + html_escape(c.methods[m].name) + ": " + value_text +
               "</title></rect>";
        value_x = std::max(x0, x1) + 4;
      }
    }
    svg += "<text x=\"" + fixed(value_x, 1) + "\" y=\"" + fixed(y + 14, 1) + "\" font-size=\"11\" fill=\"#444\">" +
           value_text + "</text>\n";
  }
  const double zero = x_of(0);
  svg += "<line x1=\"" + fixed(zero, 1) + "\" y1=\"0\" x2=\"" + fixed(zero, 1) + "\" y2=\"" + fixed(height, 0) +
         "\" stroke=\"#999\"/>\n</svg>";
  return svg;
}

std::string charts_html(const Comparison& c) {
  const auto means = means_of(c);
  const auto ranked = ranked_means(c);
  std::string html = "<div class=\"charts\">\n";
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    html += "<figure class=\"chart\"><figcaption>" + std::string(kMetricNames[i]) + " " + better_arrow(i) +
            " <small>(" + better_word(i) + " is better)</small></figcaption>\n" +
            bar_chart_svg(i, c, means, best_of(i, ranked)) + "</figure>\n";
  }
  return html + "</div>\n";
}

std::string picture_html(const std::string& picture, const std::string& caption, const std::string& alt) {
  const std::string url = url_of(picture);
  return "<figure><a href=\"" + url + "\" title=\"full size\"><img src=\"" + url + "\" alt=\"" + html_escape(alt) +
         "\"></a><figcaption title=\"" + html_escape(caption) + "\">" + html_escape(caption) + "</figcaption></figure>";
}

std::string placeholder_html(const std::string& text, const std::string& caption) {
  return "<figure><div class=\"placeholder\">" + html_escape(text) + "</div><figcaption title=\"" +
         html_escape(caption) + "\">" + html_escape(caption) + "</figcaption></figure>";
}

std::string pair_html(const Comparison& c, std::size_t p) {
  const ComparedPair& pair = c.pairs[p];
  std::string html = "<section class=\"pair\" id=\"pair-" + html_escape(url_of(pair.name)) + "\">\n<h3>" +
                     html_escape(pair.name) + "</h3>\n<div class=\"row\">";
  if (!pair.problem.empty()) {
    html += placeholder_html(pair.problem, "inputs unreadable") + "</div>\n</section>\n";
    return html;
  }
  html += picture_html(pair.anatomical_picture, "anatomical", pair.name + " anatomical");
  html += picture_html(pair.functional_picture, "functional", pair.name + " functional");
  std::vector<std::optional<FusionMetrics>> scores;
  for (const MethodResult& method : c.methods) {
    const PairOutcome& outcome = method.pairs[p];
    scores.push_back(outcome.status == Status::scored ? std::optional(outcome.scores) : std::nullopt);
    if (!outcome.picture.empty()) {
      html += picture_html(outcome.picture, method.name, pair.name + " " + method.name);
    } else {
      html += placeholder_html(
          std::string(outcome.status == Status::missing ? "missing: " : "failed: ") + outcome.problem, method.name);
    }
  }
  html += "</div>\n<div class=\"wide\"><table class=\"scores\"><thead><tr><th>" + html_escape(pair.name) + "</th>" +
          metric_header_cells() + "</tr></thead><tbody>\n";
  const auto best = best_per_metric(scores);
  for (std::size_t m = 0; m < c.methods.size(); ++m) {
    const PairOutcome& outcome = c.methods[m].pairs[p];
    html += "<tr><td>" + html_escape(c.methods[m].name) + "</td>";
    if (outcome.status == Status::scored) {
      html += metric_cells(outcome.scores, best);
    } else {
      html += "<td class=\"problem\" colspan=\"" + std::to_string(kMetricCount) + "\">" +
              (outcome.status == Status::missing ? "missing: " : "failed: ") + html_escape(outcome.problem) + "</td>";
    }
    html += "</tr>\n";
  }
  return html + "</tbody></table></div>\n</section>\n";
}

}  // namespace

std::string scores_csv(const Comparison& c) {
  std::string csv = "method,file";
  for (const char* name : kMetricNames) csv += std::string(",") + name;
  csv += "\n";
  auto row = [&csv](const std::string& method, const std::string& file, const std::optional<FusionMetrics>& m) {
    csv += csv_text_field(method) + "," + csv_text_field(file);
    for (std::size_t i = 0; i < kMetricCount; ++i) csv += "," + (m ? number_text((*m)[i]) : std::string());
    csv += "\n";
  };
  for (const MethodResult& method : c.methods) {
    for (std::size_t p = 0; p < c.pairs.size(); ++p) {
      const PairOutcome& outcome = method.pairs[p];
      row(method.name, c.pairs[p].name,
          outcome.status == Status::scored ? std::optional(outcome.scores) : std::nullopt);
    }
    row(method.name, "mean", method.mean());
  }
  return csv;
}

std::string scores_json(const Comparison& c, const ReportContext& context) {
  Json document = Json::object();
  Json dataset = Json::object();
  dataset["anatomical_dir"] = c.anatomical_dir;
  dataset["functional_dir"] = c.functional_dir;
  Json pairs = Json::array();
  for (const ComparedPair& pair : c.pairs) {
    Json entry = {{"name", pair.name}, {"anatomical", pair.anatomical}, {"functional", pair.functional}};
    if (!pair.problem.empty()) entry["problem"] = pair.problem;
    pairs.push_back(std::move(entry));
  }
  dataset["pairs"] = std::move(pairs);
  dataset["unpaired"] = c.unpaired;
  document["dataset"] = std::move(dataset);
  document["weights"] = context.weights.empty() ? Json() : Json(context.weights);
  document["seem_weights"] = context.seem_weights.empty() ? Json() : Json(context.seem_weights);
  document["machine"] = context.machine;
  document["threads"] = context.threads;
  document["date"] = context.date;
  document["seconds"] = context.seconds;
  const auto per_pair = seconds_per_pair(c, context);
  document["seconds_per_pair"] = per_pair ? Json(*per_pair) : Json();
  Json metric_list = Json::array();
  for (std::size_t i = 0; i < kMetricCount; ++i) {
    metric_list.push_back({{"name", kMetricNames[i]}, {"better", better_word(i)}});
  }
  document["metrics"] = std::move(metric_list);

  Json methods = Json::array();
  for (const MethodResult& method : c.methods) {
    Json entry = Json::object();
    entry["name"] = method.name;
    entry["description"] = method.description;
    entry["ran"] = method.ran;
    const auto fusion = fusion_seconds_per_pair(method);
    entry["fusion_seconds_per_pair"] = fusion ? Json(*fusion) : Json();
    entry["scored"] = method.scored();
    const auto mean = method.mean();
    entry["mean"] = mean ? metrics_json(*mean) : Json();
    Json files = Json::array();
    for (std::size_t p = 0; p < c.pairs.size(); ++p) {
      const PairOutcome& outcome = method.pairs[p];
      Json file = outcome.status == Status::scored ? metrics_json(outcome.scores, c.pairs[p].name)
                                                   : Json{{"file", c.pairs[p].name}};
      if (outcome.status == Status::missing) file["missing"] = outcome.problem;
      if (outcome.status == Status::failed) file["failed"] = outcome.problem;
      if (!outcome.picture.empty()) file["picture"] = outcome.picture;
      files.push_back(std::move(file));
    }
    entry["files"] = std::move(files);
    methods.push_back(std::move(entry));
  }
  document["methods"] = std::move(methods);
  return json_text(document) + "\n";
}

std::string report_html(const Comparison& c, const ReportContext& context) {
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>efcnet compare: " +
      std::to_string(c.methods.size()) + " methods on " + std::to_string(c.pairs.size()) + " pairs</title>\n<style>" +
      kStyle + "</style>\n</head>\n<body>\n";
  html += "<h1>Fusion methods compared on " + std::to_string(c.pairs.size()) + " pairs</h1>\n";
  html += facts_html(c, context);
  html += problems_html(c);
  html += "<h2>Means</h2>\n" + means_html(c);
  html += "<h2>Per metric</h2>\n" + charts_html(c);
  html +=
      "<h2>Pairs</h2>\n<p class=\"legend\">Anatomical and functional inputs, then each method's fusion, at one "
      "size; click a picture for the full-size file. Under each row, the pair's scores (best of each metric "
      "marked \xE2\x98\x85).</p>\n";
  for (std::size_t p = 0; p < c.pairs.size(); ++p) html += pair_html(c, p);
  html += "<script>" + std::string(kPictureCheck) + "</script>\n</body>\n</html>\n";
  return html;
}

}  // namespace efcnet
