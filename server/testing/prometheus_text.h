// File: prometheus_text.h
//
// A strict parser of the Prometheus text exposition format (0.0.4), written from the format's
// documentation as a test oracle for /metrics: "# HELP name text", "# TYPE name type", sample
// lines "name{label="value",...} value [timestamp]", label values with \\ \" \n escapes,
// values as Go floats (+Inf, -Inf, NaN). Every sample must belong to a family announced by a
// TYPE line (histogram/summary samples through their _bucket/_sum/_count suffixes), and
// families must not repeat.
//
//   ASSIGN_OR_RETURN(auto families, ParsePrometheusText(body));
//   double v = families.at("prunerd_jobs").Value({{"state", "queued"}});
//
// Thread-safety: pure functions and values.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace prunerd {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromFamily {
  std::string name;
  std::string type;
  std::string help;
  std::vector<PromSample> samples;
  // The value of the sample named `sample_name` (default: the family name) with exactly these
  // labels; nullopt when absent.
  std::optional<double> Find(const std::map<std::string, std::string>& labels,
                             const std::string& sample_name = "") const {
    const std::string n = sample_name.empty() ? name : sample_name;
    for (const PromSample& s : samples) {
      if (s.name == n && s.labels == labels) return s.value;
    }
    return std::nullopt;
  }
};

namespace prom_internal {

inline bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

inline absl::StatusOr<double> ParseValue(const std::string& s) {
  if (s == "+Inf" || s == "Inf") return INFINITY;
  if (s == "-Inf") return -INFINITY;
  if (s == "NaN") return NAN;
  if (s.empty()) return absl::InvalidArgumentError("empty value");
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return absl::InvalidArgumentError("bad value: " + s);
  return v;
}

}  // namespace prom_internal

inline absl::StatusOr<std::map<std::string, PromFamily>> ParsePrometheusText(
    const std::string& text) {
  using namespace prom_internal;
  std::map<std::string, PromFamily> families;
  std::string current;
  int line_no = 0;
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("the exposition must end with a newline");
  }
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  for (const std::string& line : lines) {
    ++line_no;
    auto err = [&](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, ": ", what, ": ", line));
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 3 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        const std::string& name = parts[2];
        if (name.empty() || !IsNameStart(name[0])) return err("bad metric name");
        for (char c : name) {
          if (!IsNameChar(c)) return err("bad metric name");
        }
        PromFamily& f = families[name];
        f.name = name;
        if (parts[1] == "TYPE") {
          if (!f.type.empty()) return err("second TYPE line");
          if (parts.size() != 4) return err("TYPE without a type");
          static const char* kTypes[] = {"counter", "gauge", "histogram", "summary", "untyped"};
          bool ok = false;
          for (const char* t : kTypes) ok = ok || parts[3] == t;
          if (!ok) return err("unknown type");
          if (!f.samples.empty()) return err("TYPE after samples");
          f.type = parts[3];
        } else {
          f.help = parts.size() == 4 ? parts[3] : "";
        }
        current = name;
      }
      continue;
    }
    // A sample.
    size_t i = 0;
    if (!IsNameStart(line[0])) return err("bad sample name");
    while (i < line.size() && IsNameChar(line[i])) ++i;
    PromSample s;
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t start = i;
        if (!IsNameStart(line[i])) return err("bad label name");
        while (i < line.size() && IsNameChar(line[i])) ++i;
        const std::string lname = line.substr(start, i - start);
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          return err("expected =\" after a label name");
        }
        i += 2;
        std::string value;
        for (;;) {
          if (i >= line.size()) return err("unterminated label value");
          const char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) return err("dangling escape");
            const char e = line[i++];
            if (e == 'n') {
              value.push_back('\n');
            } else if (e == '\\' || e == '"') {
              value.push_back(e);
            } else {
              return err("bad escape");
            }
          } else {
            value.push_back(c);
          }
        }
        if (s.labels.count(lname)) return err("repeated label");
        s.labels[lname] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return err("unterminated label set");
      ++i;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return err("expected a space before the value");
    std::vector<std::string> rest = absl::StrSplit(line.substr(i + 1), ' ');
    if (rest.empty() || rest.size() > 2) return err("expected value [timestamp]");
    absl::StatusOr<double> v = ParseValue(rest[0]);
    if (!v.ok()) return err(std::string(v.status().message()));
    s.value = *v;
    // The sample must belong to the current family.
    auto fit = families.find(current);
    if (fit == families.end() || fit->second.type.empty()) return err("sample before TYPE");
    PromFamily& f = fit->second;
    bool belongs = s.name == f.name;
    if (f.type == "histogram" || f.type == "summary") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        belongs = belongs || s.name == f.name + suffix;
      }
    }
    if (!belongs) return err("sample outside its family " + f.name);
    f.samples.push_back(std::move(s));
  }
  return families;
}

}  // namespace prunerd
