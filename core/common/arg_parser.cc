#include "core/common/arg_parser.h"

#include <cstdlib>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace prunerd {

ArgParser::ArgParser(std::string command, std::string description)
    : command_(std::move(command)), description_(std::move(description)) {}

void ArgParser::Add(Option opt) { options_.push_back(std::move(opt)); }

ArgParser::Option* ArgParser::Find(std::string_view name) {
  for (Option& o : options_) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

void ArgParser::AddString(std::string name, std::string* out, std::string help, bool required,
                          std::string env) {
  Option o{.name = std::move(name), .help = std::move(help), .env = std::move(env),
           .required = required, .default_text = *out};
  o.assign = [out](const std::string& v) {
    *out = v;
    return absl::OkStatus();
  };
  Add(std::move(o));
}

void ArgParser::AddInt(std::string name, int64_t* out, std::string help, bool required) {
  Option o{.name = name, .help = std::move(help), .required = required,
           .default_text = std::to_string(*out)};
  o.assign = [out, name](const std::string& v) {
    int64_t x;
    if (!absl::SimpleAtoi(v, &x)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": not an integer: ", v));
    }
    *out = x;
    return absl::OkStatus();
  };
  Add(std::move(o));
}

void ArgParser::AddDouble(std::string name, double* out, std::string help, bool required) {
  std::ostringstream def;
  def << *out;
  Option o{.name = name, .help = std::move(help), .required = required,
           .default_text = def.str()};
  o.assign = [out, name](const std::string& v) {
    double x;
    if (!absl::SimpleAtod(v, &x)) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": not a number: ", v));
    }
    *out = x;
    return absl::OkStatus();
  };
  Add(std::move(o));
}

void ArgParser::AddBool(std::string name, bool* out, std::string help) {
  Option o{.name = name, .help = std::move(help), .is_bool = true,
           .default_text = *out ? "true" : "false"};
  o.assign = [out, name](const std::string& v) {
    if (v == "true" || v == "1" || v == "yes") {
      *out = true;
    } else if (v == "false" || v == "0" || v == "no") {
      *out = false;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--", name, ": not a boolean: ", v));
    }
    return absl::OkStatus();
  };
  Add(std::move(o));
}

void ArgParser::AddRepeated(std::string name, std::vector<std::string>* out, std::string help) {
  Option o{.name = std::move(name), .help = std::move(help), .repeated = true};
  o.assign = [out](const std::string& v) {
    out->emplace_back(v);
    return absl::OkStatus();
  };
  Add(std::move(o));
}

absl::Status ArgParser::Parse(int argc, const char* const* argv) {
  std::vector<std::string> args(argv, argv + argc);
  return Parse(args);
}

absl::Status ArgParser::Parse(const std::vector<std::string>& args) {
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      help_requested_ = true;
      return absl::OkStatus();
    }
    std::string_view body(a);
    body.remove_prefix(body.substr(0, 2) == "--" ? 2 : 1);
    std::string name(body);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Option* opt = Find(name);
    if (opt == nullptr && !has_value && name.rfind("no-", 0) == 0) {
      Option* neg = Find(name.substr(3));
      if (neg != nullptr && neg->is_bool) {
        neg->set = true;
        absl::Status s = neg->assign("false");
        if (!s.ok()) return s;
        continue;
      }
    }
    if (opt == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(command_, ": unknown option --", name, " (see --help)"));
    }
    if (!has_value) {
      if (opt->is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, ": needs a value"));
      }
    }
    opt->set = true;
    absl::Status s = opt->assign(value);
    if (!s.ok()) return s;
  }
  for (Option& o : options_) {
    if (!o.set && !o.env.empty()) {
      if (const char* v = std::getenv(o.env.c_str()); v != nullptr && *v != '\0') {
        o.set = true;
        absl::Status s = o.assign(v);
        if (!s.ok()) return s;
      }
    }
    if (o.required && !o.set) {
      return absl::InvalidArgumentError(absl::StrCat(command_, ": --", o.name, " is required"));
    }
  }
  return absl::OkStatus();
}

bool ArgParser::WasSet(std::string_view name) const {
  for (const Option& o : options_) {
    if (o.name == name) return o.set;
  }
  return false;
}

std::vector<std::string> ArgParser::OptionNames() const {
  std::vector<std::string> names;
  for (const Option& o : options_) names.push_back(o.name);
  return names;
}

std::string ArgParser::Help() const {
  std::ostringstream out;
  out << "usage: " << command_ << " [options]\n\n" << description_ << "\n\noptions:\n";
  for (const Option& o : options_) {
    std::string left = "  --" + o.name + (o.is_bool ? "" : " VALUE");
    out << left;
    if (left.size() < 28) out << std::string(28 - left.size(), ' ');
    else out << "\n" << std::string(28, ' ');
    out << o.help;
    if (o.required) out << " (required)";
    else if (!o.default_text.empty()) out << " (default: " << o.default_text << ")";
    if (!o.env.empty()) out << " [env " << o.env << "]";
    if (o.repeated) out << " [repeatable]";
    out << "\n";
  }
  out << "  --help                    this text\n";
  return out.str();
}

}  // namespace prunerd
