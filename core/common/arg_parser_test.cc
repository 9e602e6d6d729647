#include "core/common/arg_parser.h"

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace prunerd {
namespace {

using ::testing::HasSubstr;

TEST(ArgParserTest, ParsesAllKindsAndForms) {
  ArgParser p("t", "test");
  std::string model;
  int64_t seqlen = 2048;
  double ratio = 0.5;
  bool json = false, eval = true;
  std::vector<std::string> labels;
  p.AddString("model", &model, "m", true);
  p.AddInt("seqlen", &seqlen, "s");
  p.AddDouble("ratio", &ratio, "r");
  p.AddBool("json", &json, "j");
  p.AddBool("eval", &eval, "e");
  p.AddRepeated("label", &labels, "l");
  ASSERT_TRUE(p.Parse({"--model", "/m", "--seqlen=512", "--ratio", "0.25", "--json",
                       "--no-eval", "--label", "a=1", "--label=b=2", "pos", "--", "--x"})
                  .ok());
  EXPECT_EQ(model, "/m");
  EXPECT_EQ(seqlen, 512);
  EXPECT_DOUBLE_EQ(ratio, 0.25);
  EXPECT_TRUE(json);
  EXPECT_FALSE(eval);
  EXPECT_THAT(labels, ::testing::ElementsAre("a=1", "b=2"));
  EXPECT_THAT(p.positional(), ::testing::ElementsAre("pos", "--x"));
  EXPECT_TRUE(p.WasSet("seqlen"));
  EXPECT_FALSE(p.help_requested());
}

TEST(ArgParserTest, ErrorsNameTheOption) {
  {
    ArgParser p("t", "test");
    int64_t n = 0;
    p.AddInt("n", &n, "n");
    absl::Status s = p.Parse({"--n", "x"});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("--n: not an integer: x"));
  }
  {
    ArgParser p("t", "test");
    absl::Status s = p.Parse({"--bogus"});
    EXPECT_THAT(s.message(), HasSubstr("unknown option --bogus"));
  }
  {
    ArgParser p("t", "test");
    std::string m;
    p.AddString("model", &m, "m", true);
    EXPECT_THAT(p.Parse(std::vector<std::string>{}).message(), HasSubstr("--model is required"));
  }
  {
    ArgParser p("t", "test");
    std::string m;
    p.AddString("model", &m, "m");
    EXPECT_THAT(p.Parse({"--model"}).message(), HasSubstr("--model: needs a value"));
  }
}

TEST(ArgParserTest, EnvironmentFallbackAndHelp) {
  setenv("ARG_PARSER_TEST_TARGET", "host:1", 1);
  ArgParser p("prunectl info", "Shows the server.");
  std::string target = "localhost:50051";
  p.AddString("target", &target, "server address", false, "ARG_PARSER_TEST_TARGET");
  ASSERT_TRUE(p.Parse(std::vector<std::string>{}).ok());
  EXPECT_EQ(target, "host:1");
  std::string help = p.Help();
  EXPECT_THAT(help, HasSubstr("usage: prunectl info"));
  EXPECT_THAT(help, HasSubstr("(default: localhost:50051)"));
  EXPECT_THAT(help, HasSubstr("[env ARG_PARSER_TEST_TARGET]"));

  ArgParser q("x", "y");
  ASSERT_TRUE(q.Parse({"--help"}).ok());
  EXPECT_TRUE(q.help_requested());
}

}  // namespace
}  // namespace prunerd
