// File: arg_parser.h
//
// A small command-line parser for subcommands (`prunerd eval --model M --seqlen 512`,
// `prunectl submit ...`). Abseil flags are process-global, which does not fit a binary whose
// subcommands take different options; this parser is per-call and generates the help text.
//
//   ArgParser p("prunerd eval", "Perplexity of a model on a text file.");
//   std::string model; int64_t seqlen = 2048; bool json = false;
//   p.AddString("model", &model, "model directory or llama2.c .bin", /*required=*/true);
//   p.AddInt("seqlen", &seqlen, "tokens per window");
//   p.AddBool("json", &json, "print the JSON report only");
//   absl::Status s = p.Parse(argc, argv);  // argv[0] is the first option, not the program
//   if (p.help_requested()) { std::cout << p.Help(); return 0; }
//
// Accepts --name value, --name=value, --flag, --no-flag, and "--" to end options; positional
// arguments are collected in positional(). Environment fallbacks: AddString(..., env="VAR")
// reads VAR when the option is absent. Errors name the option ("--seqlen: not an integer: x").
//
// Thread-safety: not thread-safe; one parser per parse.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace prunerd {

class ArgParser {
 public:
  ArgParser(std::string command, std::string description);

  void AddString(std::string name, std::string* out, std::string help, bool required = false,
                 std::string env = "");
  void AddInt(std::string name, int64_t* out, std::string help, bool required = false);
  void AddDouble(std::string name, double* out, std::string help, bool required = false);
  void AddBool(std::string name, bool* out, std::string help);
  // An option that may repeat (--label k=v --label k2=v2).
  void AddRepeated(std::string name, std::vector<std::string>* out, std::string help);

  // Parses argv[0..argc). InvalidArgument on unknown options, missing values or required
  // options, unparsable numbers. With --help/-h, returns OK and sets help_requested().
  absl::Status Parse(int argc, const char* const* argv);
  absl::Status Parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }
  // True when the option was given on the command line (or from its environment variable).
  bool WasSet(std::string_view name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  std::string Help() const;
  // The registered option names (without "--"), in registration order.
  std::vector<std::string> OptionNames() const;

 private:
  struct Option {
    std::string name;
    std::string help;
    std::string env;
    bool required = false;
    bool is_bool = false;
    bool repeated = false;
    bool set = false;
    std::string default_text;
    std::function<absl::Status(const std::string&)> assign;
  };
  Option* Find(std::string_view name);
  void Add(Option opt);

  std::string command_;
  std::string description_;
  std::vector<Option> options_;
  std::vector<std::string> positional_;
  bool help_requested_ = false;
};

}  // namespace prunerd
