#include "server/dataset_registry.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace prunerd {

bool IsValidDatasetName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

absl::StatusOr<std::map<std::string, std::string>> DatasetRegistry::List() const {
  std::map<std::string, std::string> out;
  if (dir_.empty()) return out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string file = entry.path().filename().string();
    if (file == "datasets.json" || file.empty() || file[0] == '.') continue;
    if (!entry.is_regular_file(ec)) continue;  // follows symlinks
    const std::string name = entry.path().stem().string();
    if (!IsValidDatasetName(name)) continue;
    out[name] = std::filesystem::absolute(entry.path()).lexically_normal().string();
  }
  const std::string manifest = absl::StrCat(dir_, "/datasets.json");
  struct stat st;
  if (::stat(manifest.c_str(), &st) == 0) {
    std::ifstream in(manifest);
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat(manifest, ": not a JSON object of name -> path"));
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_string() || !IsValidDatasetName(it.key())) {
        return absl::InvalidArgumentError(
            absl::StrCat(manifest, ": bad entry \"", it.key(), "\" (name -> path string)"));
      }
      std::filesystem::path p(it.value().get<std::string>());
      if (p.is_relative()) p = std::filesystem::path(dir_) / p;
      out[it.key()] = std::filesystem::absolute(p).lexically_normal().string();
    }
  }
  return out;
}

std::vector<std::string> DatasetRegistry::Names() const {
  std::vector<std::string> names;
  absl::StatusOr<std::map<std::string, std::string>> all = List();
  if (!all.ok()) return names;
  for (const auto& [name, path] : *all) names.push_back(name);
  return names;
}

absl::StatusOr<std::string> DatasetRegistry::Resolve(absl::string_view field,
                                                     absl::string_view name) const {
  if (!IsValidDatasetName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a dataset name (1-64 of [A-Za-z0-9._-]): \"", name, "\""));
  }
  absl::StatusOr<std::map<std::string, std::string>> all = List();
  if (!all.ok()) return all.status();
  auto it = all->find(std::string(name));
  if (it == all->end()) {
    std::vector<std::string> names;
    for (const auto& [n, p] : *all) names.push_back(n);
    return absl::NotFoundError(absl::StrCat(
        field, ": unknown dataset \"", name,
        "\" (registered: ", names.empty() ? std::string("none") : absl::StrJoin(names, ", "), ")"));
  }
  struct stat st;
  if (::stat(it->second.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(
        absl::StrCat(field, ": dataset \"", name, "\" is registered but its file is missing"));
  }
  return it->second;
}

}  // namespace prunerd
