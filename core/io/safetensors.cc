#include "core/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/io/atomic_file.h"
#include "nlohmann/json.hpp"

namespace prunerd {
namespace {

// The reference implementation refuses headers above 100 MB; a header that large would describe
// about a million tensors, far beyond any LLaMA checkpoint.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

uint64_t ReadLittleEndian64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct ParsedEntry {
  std::string name;
  TensorView view;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Validates one tensor entry of the header against a data section of `data_size` bytes.
absl::StatusOr<ParsedEntry> ParseEntry(const std::string& where, const std::string& name,
                                       const nlohmann::json& entry, uint64_t data_size) {
  auto error = [&](std::string_view problem) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": tensor \"", name, "\": ", AbslView(problem)));
  };
  if (!entry.is_object()) return error("header entry is not a JSON object");
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) return error(absl::StrCat("missing field \"", field, "\""));
  }
  ParsedEntry out;
  out.name = name;

  const nlohmann::json& dtype = entry["dtype"];
  if (!dtype.is_string()) return error("field \"dtype\" is not a string");
  auto parsed_dtype = DTypeFromName(dtype.get_ref<const std::string&>());
  if (!parsed_dtype.ok()) return error(std::string(parsed_dtype.status().message()));
  out.view.dtype = *parsed_dtype;

  const nlohmann::json& shape = entry["shape"];
  if (!shape.is_array()) return error("field \"shape\" is not an array");
  uint64_t numel = 1;
  for (const nlohmann::json& d : shape) {
    if (!d.is_number_unsigned()) {
      return error(absl::StrCat("shape ", shape.dump(), " is not a list of non-negative integers"));
    }
    uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel)) {
      return error(absl::StrCat("shape ", shape.dump(), " has too many elements"));
    }
    out.view.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, DTypeSize(out.view.dtype), &nbytes) ||
      nbytes > static_cast<uint64_t>(INT64_MAX)) {
    return error(absl::StrCat("shape ", shape.dump(), " has too many bytes"));
  }

  const nlohmann::json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return error(absl::StrCat("data_offsets ", offsets.dump(),
                              " is not a pair of non-negative integers [begin, end]"));
  }
  out.begin = offsets[0].get<uint64_t>();
  out.end = offsets[1].get<uint64_t>();
  if (out.begin > out.end) {
    return error(absl::StrCat("data_offsets [", out.begin, ", ", out.end, "] has begin > end"));
  }
  if (out.end - out.begin != nbytes) {
    return error(absl::StrCat("dtype ", AbslView(DTypeName(out.view.dtype)), " shape ",
                              ShapeString(out.view.shape), " needs ", nbytes,
                              " bytes but data_offsets [", out.begin, ", ", out.end, "] span ",
                              out.end - out.begin, " bytes"));
  }
  if (out.end > data_size) {
    return absl::DataLossError(
        absl::StrCat(where, ": tensor \"", name, "\": data_offsets [", out.begin, ", ", out.end,
                     "] point outside the file: the data section has only ", data_size,
                     " bytes (truncated file or corrupt header)"));
  }
  out.view.nbytes = static_cast<size_t>(nbytes);
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto map, MappedFile::Open(path));
  const std::string where = "safetensors file " + path;
  const uint64_t size = map->size();
  if (size < 8) {
    return absl::DataLossError(
        absl::StrCat(where, ": file has ", size, " bytes, too short for the 8-byte header length"));
  }
  const uint64_t header_len = ReadLittleEndian64(map->data());
  if (header_len > kMaxHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": header length ", header_len,
                                                   " exceeds the limit of ", kMaxHeaderBytes,
                                                   " bytes (not a safetensors file?)"));
  }
  if (header_len > size - 8) {
    return absl::DataLossError(absl::StrCat(where, ": header length says ", header_len,
                                            " bytes but only ", size - 8,
                                            " bytes follow it (truncated file)"));
  }
  const char* header_begin = reinterpret_cast<const char*>(map->data() + 8);
  nlohmann::json header = nlohmann::json::parse(header_begin, header_begin + header_len,
                                                /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) {
    return absl::InvalidArgumentError(where + ": header is not valid JSON");
  }
  if (!header.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": header is not a JSON object (found ", header.type_name(), ")"));
  }

  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->path_ = path;
  std::vector<ParsedEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) {
        return absl::InvalidArgumentError(where + ": \"__metadata__\" is not a JSON object");
      }
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": \"__metadata__\" value for \"", mkey, "\" is not a string"));
        }
        file->metadata_[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    ASSIGN_OR_RETURN(ParsedEntry entry, ParseEntry(where, key, value, data_size));
    entries.push_back(std::move(entry));
  }

  std::sort(entries.begin(), entries.end(), [](const ParsedEntry& a, const ParsedEntry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  const ParsedEntry* previous = nullptr;  // the last non-empty tensor
  for (const ParsedEntry& e : entries) {
    if (e.begin == e.end) continue;
    if (previous != nullptr && e.begin < previous->end) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": tensors \"", previous->name, "\" [", previous->begin, ", ", previous->end,
          ") and \"", e.name, "\" [", e.begin, ", ", e.end, ") overlap"));
    }
    previous = &e;
  }

  const uint8_t* data = map->data() + data_start;
  for (ParsedEntry& e : entries) {
    e.view.data = e.view.nbytes > 0 ? data + e.begin : data;
    file->names_.push_back(e.name);
    file->tensors_.emplace(e.name, std::move(e.view));
  }
  file->map_ = std::move(map);
  return file;
}

bool SafetensorsFile::Contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

absl::StatusOr<TensorView> SafetensorsFile::Get(std::string_view name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tensor \"", AbslView(name), "\" not found in ", path_));
  }
  return it->second;
}

absl::Status SafetensorsWriter::Write(const std::string& path,
                                      const std::vector<NamedTensor>& tensors,
                                      const std::map<std::string, std::string>& metadata) {
  const std::string where = "writing " + path;
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = std::move(meta);
  }
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const NamedTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": invalid tensor name \"", t.name, "\""));
    }
    if (!seen.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate tensor name \"", t.name, "\""));
    }
    for (int64_t d : t.view.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": tensor \"", t.name, "\" has negative shape ", ShapeString(t.view.shape)));
      }
    }
    const uint64_t expected = static_cast<uint64_t>(t.view.numel()) * DTypeSize(t.view.dtype);
    if (expected != t.view.nbytes) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": tensor \"", t.name, "\" ",
                                                     AbslView(DTypeName(t.view.dtype)), " ",
                                                     ShapeString(t.view.shape), " needs ", expected,
                                                     " bytes but the view holds ", t.view.nbytes));
    }
    if (t.view.nbytes > 0 && t.view.data == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": tensor \"", t.name, "\" has no data"));
    }
    header[t.name] = {{"dtype", std::string(DTypeName(t.view.dtype))},
                      {"shape", t.view.shape},
                      {"data_offsets", {offset, offset + t.view.nbytes}}};
    offset += t.view.nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned (as the reference writer does).
  text.append((8 - (text.size() % 8)) % 8, ' ');
  uint8_t len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));

  ASSIGN_OR_RETURN(auto writer, AtomicFileWriter::Create(path));
  RETURN_IF_ERROR(writer->Append(len, sizeof(len)));
  RETURN_IF_ERROR(writer->Append(text.data(), text.size()));
  for (const NamedTensor& t : tensors) {
    if (t.view.nbytes > 0) RETURN_IF_ERROR(writer->Append(t.view.data, t.view.nbytes));
  }
  return writer->Commit();
}

}  // namespace prunerd
