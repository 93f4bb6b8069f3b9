// The progress reporter: a redrawn bar on a terminal, sparse plain lines elsewhere.
#include <cstdio>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "efcnet/progress.h"

namespace efcnet {
namespace {

struct CapturedFile {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file{std::tmpfile(), &std::fclose};
  std::string text() {
    std::fflush(file.get());
    std::rewind(file.get());
    std::string out;
    for (int c; (c = std::fgetc(file.get())) != EOF;) out.push_back(static_cast<char>(c));
    return out;
  }
};

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

TEST(ProgressBar, PlainModePrintsAFewWholeLines) {
  CapturedFile out;
  {
    ProgressBar bar(100, out.file.get(), false);
    for (int i = 0; i < 100; ++i) {
      if (i == 50) bar.message("failed: x: reason");
      bar.advance();
    }
  }
  const std::string text = out.text();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_EQ(text.find("\033"), std::string::npos);
  EXPECT_LE(count(text, "progress: "), 11u);  // about one per 10%
  EXPECT_GE(count(text, "progress: "), 10u);
  EXPECT_NE(text.find("progress: 100/100  100%"), std::string::npos) << text;
  EXPECT_NE(text.find("\nfailed: x: reason\n"), std::string::npos) << text;
}

TEST(ProgressBar, TerminalModeRedrawsOneLine) {
  CapturedFile out;
  {
    ProgressBar bar(4, out.file.get(), true);
    bar.advance();
    bar.message("unpaired: y.png");
    bar.advance();
    bar.advance();
    bar.advance();
    bar.finish();
  }
  const std::string text = out.text();
  EXPECT_NE(text.find("[##############################]  4/4  100%"), std::string::npos) << text;
  EXPECT_NE(text.find("\r\033[Kunpaired: y.png\n"), std::string::npos) << text;
  ASSERT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(count(text, "\n"), 2u);  // the message and the finished bar
}

TEST(ProgressBar, ExtraAdvancesAreIgnored) {
  CapturedFile out;
  {
    ProgressBar bar(1, out.file.get(), false);
    bar.advance();
    bar.advance();
  }
  EXPECT_EQ(count(out.text(), "progress: "), 1u);
}

}  // namespace
}  // namespace efcnet
