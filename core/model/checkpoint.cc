#include "core/model/checkpoint.h"

#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/io/mmap_file.h"
#include "core/model/llama2c_reader.h"
#include "nlohmann/json.hpp"

namespace prunerd {

namespace fs = std::filesystem;

namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kAuxiliaryFiles[] = {"tokenizer.model", "tokenizer_config.json",
                                           "tokenizer.json", "special_tokens_map.json",
                                           "generation_config.json"};

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// A shard name from the index must be a plain file name inside the model directory.
bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

struct RequiredTensor {
  std::string name;
  std::vector<int64_t> shape;
};

std::vector<RequiredTensor> RequiredTensors(const LlamaConfig& c) {
  std::vector<RequiredTensor> out;
  out.push_back({std::string(kEmbedName), {c.vocab_size, c.hidden_size}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    out.push_back({InputNormName(l), {c.hidden_size}});
    for (Proj p : kAllProjs) {
      std::array<int64_t, 2> s = ProjShape(c, p);
      out.push_back({ProjWeightName(l, p), {s[0], s[1]}});
      if (p == Proj::kO) out.push_back({PostAttnNormName(l), {c.hidden_size}});
    }
  }
  out.push_back({std::string(kFinalNormName), {c.hidden_size}});
  if (!c.tie_word_embeddings)
    out.push_back({std::string(kLmHeadName), {c.vocab_size, c.hidden_size}});
  return out;
}

}  // namespace

absl::Status ValidateTensors(const LlamaConfig& config,
                             const std::map<std::string, TensorView, std::less<>>& tensors,
                             std::string_view where) {
  const absl::string_view w = AbslView(where);
  std::vector<RequiredTensor> required = RequiredTensors(config);
  int missing = 0;
  const RequiredTensor* first_missing = nullptr;
  for (const RequiredTensor& r : required) {
    if (tensors.find(r.name) == tensors.end()) {
      if (first_missing == nullptr) first_missing = &r;
      ++missing;
    }
  }
  if (missing > 0) {
    std::string more = missing > 1 ? absl::StrCat(" (and ", missing - 1, " more)") : "";
    return absl::InvalidArgumentError(absl::StrCat(w, ": missing tensor \"", first_missing->name,
                                                   "\" (expected shape ",
                                                   ShapeString(first_missing->shape), ")", more));
  }
  for (const RequiredTensor& r : required) {
    const TensorView& t = tensors.find(r.name)->second;
    if (t.shape != r.shape) {
      return absl::InvalidArgumentError(absl::StrCat(w, ": tensor \"", r.name, "\" has shape ",
                                                     ShapeString(t.shape), ", expected ",
                                                     ShapeString(r.shape)));
    }
    if (!IsFloating(t.dtype)) {
      return absl::InvalidArgumentError(
          absl::StrCat(w, ": tensor \"", r.name, "\" has dtype ", AbslView(DTypeName(t.dtype)),
                       ", expected a floating type (F32, F16 or BF16)"));
    }
    const size_t expected_bytes = static_cast<size_t>(t.numel()) * DTypeSize(t.dtype);
    if (t.nbytes != expected_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          w, ": tensor \"", r.name, "\" holds ", t.nbytes, " bytes, expected ", expected_bytes));
    }
  }
  return absl::OkStatus();
}

// Builds Checkpoints; a friend of Checkpoint.
class CheckpointLoader {
 public:
  static absl::Status LoadHuggingFace(const std::string& dir, Checkpoint* ckpt);
  static absl::Status LoadLlama2c(const std::string& path, Checkpoint* ckpt);

 private:
  static absl::Status AddShard(std::unique_ptr<SafetensorsFile> shard, Checkpoint* ckpt);
};

absl::Status CheckpointLoader::AddShard(std::unique_ptr<SafetensorsFile> shard, Checkpoint* ckpt) {
  for (const std::string& name : shard->names()) {
    ASSIGN_OR_RETURN(TensorView view, shard->Get(name));
    if (!ckpt->tensors_.emplace(name, view).second) {
      return absl::InvalidArgumentError(absl::StrCat(ckpt->path_, ": tensor \"", name,
                                                     "\" appears in more than one shard (also in ",
                                                     shard->path(), ")"));
    }
  }
  ckpt->shards_.push_back(std::move(shard));
  return absl::OkStatus();
}

absl::Status CheckpointLoader::LoadHuggingFace(const std::string& dir, Checkpoint* ckpt) {
  const fs::path root(dir);
  const std::string config_path = (root / "config.json").string();
  if (!IsRegularFile(config_path)) {
    return absl::NotFoundError(absl::StrCat(
        dir, ": no config.json (expected a Hugging Face model directory or a llama2.c .bin)"));
  }
  ASSIGN_OR_RETURN(ckpt->config_json_, ReadFileToString(config_path));
  auto config = ParseHfConfig(ckpt->config_json_);
  if (!config.ok()) return Annotate(config.status(), dir);
  ckpt->config_ = *config;

  const fs::path index_path = root / kIndexFile;
  if (IsRegularFile(index_path)) {
    const std::string where = index_path.string();
    ASSIGN_OR_RETURN(std::string index_text, ReadFileToString(where));
    nlohmann::json index = nlohmann::json::parse(index_text, nullptr, false);
    if (index.is_discarded() || !index.is_object()) {
      return absl::InvalidArgumentError(where + ": not a JSON object");
    }
    if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
      return absl::InvalidArgumentError(where + ": missing \"weight_map\" object");
    }
    const nlohmann::json& weight_map = index["weight_map"];
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : weight_map.items()) {
      if (!shard.is_string() || !IsPlainFileName(shard.get<std::string>())) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": weight_map entry for \"", tensor,
                                                       "\" is not a file name: ", shard.dump()));
      }
      shard_names.insert(shard.get<std::string>());
    }
    if (shard_names.empty()) return absl::InvalidArgumentError(where + ": empty weight_map");
    for (const std::string& shard : shard_names) {
      if (!IsRegularFile(root / shard)) {
        return absl::NotFoundError(absl::StrCat(where, ": shard \"", shard,
                                                "\" named in weight_map does not exist in ", dir));
      }
    }
    for (const std::string& shard : shard_names) {
      ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open((root / shard).string()));
      RETURN_IF_ERROR(AddShard(std::move(file), ckpt));
    }
    for (const auto& [tensor, shard] : weight_map.items()) {
      const std::string shard_path = (root / shard.get<std::string>()).string();
      bool found = false;
      for (const auto& file : ckpt->shards_) {
        if (file->path() == shard_path) found = file->Contains(tensor);
      }
      if (!found) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": weight_map puts tensor \"", tensor,
                                                       "\" in ", shard.get<std::string>(),
                                                       " but that shard does not contain it"));
      }
    }
  } else if (IsRegularFile(root / kSingleFile)) {
    ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open((root / kSingleFile).string()));
    RETURN_IF_ERROR(AddShard(std::move(file), ckpt));
  } else if (IsRegularFile(root / "pytorch_model.bin") ||
             IsRegularFile(root / "pytorch_model.bin.index.json")) {
    return absl::UnimplementedError(
        absl::StrCat(dir,
                     ": only safetensors weights are supported; pytorch_model.bin "
                     "(pickle) is not. Convert with transformers' save_pretrained()"));
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir, ": no ", kSingleFile, " or ", kIndexFile, " in the model directory"));
  }

  // With tied embeddings the output layer is the embedding; a stored copy is ignored, as
  // transformers does when it ties the weights.
  if (ckpt->config_.tie_word_embeddings) {
    auto it = ckpt->tensors_.find(kLmHeadName);
    if (it != ckpt->tensors_.end()) ckpt->tensors_.erase(it);
  }
  RETURN_IF_ERROR(ValidateTensors(ckpt->config_, ckpt->tensors_, dir));

  ckpt->source_files_.push_back(config_path);
  if (IsRegularFile(index_path)) ckpt->source_files_.push_back(index_path.string());
  for (const auto& shard : ckpt->shards_) ckpt->source_files_.push_back(shard->path());
  for (const char* name : kAuxiliaryFiles) {
    if (IsRegularFile(root / name)) ckpt->auxiliary_files_.push_back((root / name).string());
  }
  if (IsRegularFile(root / "tokenizer.model")) {
    ckpt->tokenizer_path_ = (root / "tokenizer.model").string();
  }
  return absl::OkStatus();
}

absl::Status CheckpointLoader::LoadLlama2c(const std::string& path, Checkpoint* ckpt) {
  ASSIGN_OR_RETURN(Llama2cModel model, ReadLlama2cCheckpoint(path));
  ckpt->config_ = model.config;
  for (auto& [name, tensor] : model.tensors) {
    ckpt->tensors_.emplace(name, tensor.view());
    ckpt->owned_.push_back(std::move(tensor));
  }
  RETURN_IF_ERROR(ValidateTensors(ckpt->config_, ckpt->tensors_, path));
  ckpt->source_files_.push_back(path);
  ckpt->tokenizer_path_ = FindLlama2cTokenizer(path);
  if (!ckpt->tokenizer_path_.empty()) ckpt->auxiliary_files_.push_back(ckpt->tokenizer_path_);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    return absl::NotFoundError(absl::StrCat("model path ", path, " does not exist"));
  }
  auto ckpt = std::unique_ptr<Checkpoint>(new Checkpoint());
  ckpt->path_ = path;
  if (fs::is_directory(st)) {
    ckpt->format_ = CheckpointFormat::kHuggingFace;
    RETURN_IF_ERROR(CheckpointLoader::LoadHuggingFace(path, ckpt.get()));
    return ckpt;
  }
  if (!fs::is_regular_file(st)) {
    return absl::InvalidArgumentError(absl::StrCat("model path ", path, " is not a file"));
  }
  if (absl::EndsWith(path, ".safetensors") || absl::EndsWith(path, ".json")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model path ", path,
        " is a file of a Hugging Face model: pass the directory that holds config.json"));
  }
  ckpt->format_ = CheckpointFormat::kLlama2c;
  RETURN_IF_ERROR(CheckpointLoader::LoadLlama2c(path, ckpt.get()));
  return ckpt;
}

absl::StatusOr<TensorView> Checkpoint::Get(std::string_view name) const {
  if (config_.tie_word_embeddings && name == kLmHeadName) name = kEmbedName;
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    return absl::NotFoundError(
        absl::StrCat("tensor \"", AbslView(name), "\" not found in checkpoint ", path_));
  }
  return it->second;
}

std::vector<std::string> Checkpoint::TensorNames() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  return names;
}

int64_t Checkpoint::TotalBytes() const {
  int64_t total = 0;
  for (const auto& [name, view] : tensors_) total += static_cast<int64_t>(view.nbytes);
  return total;
}

}  // namespace prunerd
