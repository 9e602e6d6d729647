#include "core/model/hf_writer.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/common/status_macros.h"
#include "core/io/atomic_file.h"
#include "core/io/errno_status.h"
#include "core/io/mmap_file.h"
#include "core/io/remove_tree.h"
#include "core/io/safetensors.h"
#include "core/model/checkpoint.h"
#include "nlohmann/json.hpp"

namespace prunerd {

namespace fs = std::filesystem;

namespace {

struct BufferedTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// What was written, for the index and the final self-check.
struct WrittenTensor {
  DType dtype;
  std::vector<int64_t> shape;
  size_t nbytes;
  int shard;  // 0-based
};

bool DirectoryIsMissingOrEmpty(const fs::path& dir, std::error_code* ec) {
  if (!fs::exists(dir, *ec)) return true;
  if (!fs::is_directory(dir, *ec)) return false;
  return fs::is_empty(dir, *ec);
}

// Copies a file durably (write, fsync) to `to`.
absl::Status CopyFileDurably(const std::string& from, const std::string& to) {
  ASSIGN_OR_RETURN(auto src, MappedFile::Open(from));
  ASSIGN_OR_RETURN(auto out, AtomicFileWriter::Create(to));
  if (src->size() > 0) RETURN_IF_ERROR(out->Append(src->data(), src->size()));
  return out->Commit();
}

}  // namespace

struct HfModelWriter::Impl {
  std::string dir;
  LlamaConfig config;
  std::string base_config_json;
  std::vector<std::string> auxiliary_files;
  HfWriterOptions options;

  std::string temp_dir;  // created on first use
  bool finished = false;
  absl::Status sticky_error;  // a failed flush poisons the writer

  std::vector<BufferedTensor> buffer;
  int64_t buffer_bytes = 0;
  int shards_written = 0;
  std::map<std::string, WrittenTensor, std::less<>> written;

  std::string ShardTempName(int shard) const {
    return absl::StrFormat("%s/shard-%05d.partial", temp_dir, shard + 1);
  }

  absl::Status EnsureTempDir() {
    if (!temp_dir.empty()) return absl::OkStatus();
    std::error_code ec;
    const fs::path target(dir);
    if (!DirectoryIsMissingOrEmpty(target, &ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("output directory ", dir, " exists and is not empty"));
    }
    fs::path parent = target.parent_path();
    if (parent.empty()) parent = ".";
    fs::create_directories(parent, ec);
    if (ec) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
    }
    std::string tmpl = dir;
    while (!tmpl.empty() && tmpl.back() == '/') tmpl.pop_back();
    tmpl += ".partial-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) {
      return ErrnoToStatus(errno, "create temporary directory for", dir);
    }
    temp_dir = buf.data();
    ::chmod(temp_dir.c_str(), 0755);
    return absl::OkStatus();
  }

  absl::Status FlushShard() {
    if (buffer.empty()) return absl::OkStatus();
    std::vector<NamedTensor> views;
    views.reserve(buffer.size());
    for (const BufferedTensor& t : buffer) {
      views.push_back({t.name, TensorView{t.dtype, t.shape, t.bytes.data(), t.bytes.size()}});
    }
    RETURN_IF_ERROR(SafetensorsWriter::Write(ShardTempName(shards_written), views,
                                             {{"format", options.metadata_format}}));
    for (const BufferedTensor& t : buffer) {
      written[t.name] = WrittenTensor{t.dtype, t.shape, t.bytes.size(), shards_written};
    }
    ++shards_written;
    buffer.clear();
    buffer_bytes = 0;
    return absl::OkStatus();
  }

  absl::Status Add(const std::string& name, const TensorView& tensor) {
    if (finished) return absl::FailedPreconditionError("HfModelWriter: Add after Finish");
    RETURN_IF_ERROR(sticky_error);
    if (name.empty()) return absl::InvalidArgumentError("HfModelWriter: empty tensor name");
    if (written.count(name) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("HfModelWriter: tensor \"", name, "\" added twice"));
    }
    for (const BufferedTensor& t : buffer) {
      if (t.name == name) {
        return absl::InvalidArgumentError(
            absl::StrCat("HfModelWriter: tensor \"", name, "\" added twice"));
      }
    }
    const size_t expected = static_cast<size_t>(tensor.numel()) * DTypeSize(tensor.dtype);
    if (tensor.nbytes != expected || (expected > 0 && tensor.data == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat("HfModelWriter: tensor \"", name, "\" ",
                                                     ShapeString(tensor.shape), " needs ", expected,
                                                     " bytes but the view holds ", tensor.nbytes));
    }
    absl::Status s = EnsureTempDir();
    if (s.ok() && !buffer.empty() &&
        buffer_bytes + static_cast<int64_t>(tensor.nbytes) > options.max_shard_bytes) {
      s = FlushShard();
    }
    if (!s.ok()) {
      sticky_error = s;
      return s;
    }
    BufferedTensor t{name, tensor.dtype, tensor.shape, {}};
    const uint8_t* src = static_cast<const uint8_t*>(tensor.data);
    t.bytes.assign(src, src + tensor.nbytes);
    buffer_bytes += static_cast<int64_t>(tensor.nbytes);
    buffer.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status Finish() {
    if (finished) return absl::FailedPreconditionError("HfModelWriter: Finish called twice");
    RETURN_IF_ERROR(sticky_error);
    RETURN_IF_ERROR(EnsureTempDir());
    RETURN_IF_ERROR(FlushShard());

    // The written tensor set must make a loadable model.
    std::map<std::string, TensorView, std::less<>> views;
    for (const auto& [name, t] : written) {
      views.emplace(name, TensorView{t.dtype, t.shape, nullptr, t.nbytes});
    }
    RETURN_IF_ERROR(Annotate(config.Validate(), "HfModelWriter"));
    RETURN_IF_ERROR(ValidateTensors(config, views, "HfModelWriter (" + dir + ")"));

    // Final shard names, then the index.
    const int n = shards_written;
    std::vector<std::string> shard_names;
    for (int i = 0; i < n; ++i) {
      shard_names.push_back(n == 1 ? std::string("model.safetensors")
                                   : absl::StrFormat("model-%05d-of-%05d.safetensors", i + 1, n));
      const std::string to = temp_dir + "/" + shard_names.back();
      if (::rename(ShardTempName(i).c_str(), to.c_str()) != 0) {
        return ErrnoToStatus(errno, "rename shard to", to);
      }
    }
    if (n > 1) {
      nlohmann::ordered_json index;
      int64_t total_size = 0;
      int64_t total_parameters = 0;
      for (const auto& [name, t] : written) {
        total_size += static_cast<int64_t>(t.nbytes);
        total_parameters += NumElements(t.shape);
      }
      index["metadata"] = {{"total_parameters", total_parameters}, {"total_size", total_size}};
      nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
      for (const auto& [name, t] : written) weight_map[name] = shard_names[t.shard];
      index["weight_map"] = std::move(weight_map);
      RETURN_IF_ERROR(
          WriteFileAtomic(temp_dir + "/model.safetensors.index.json", index.dump(2) + "\n"));
    }
    RETURN_IF_ERROR(
        WriteFileAtomic(temp_dir + "/config.json", ToHfConfigJson(config, base_config_json)));

    std::set<std::string> copied = {"config.json", "model.safetensors",
                                    "model.safetensors.index.json"};
    for (const std::string& shard : shard_names) copied.insert(shard);
    for (const std::string& from : auxiliary_files) {
      std::string name = fs::path(from).filename().string();
      // transformers' LlamaTokenizer looks for "tokenizer.model"; llama2.c models ship their
      // SentencePiece model under other names (tok512.model).
      if (name != "tokenizer.model" && absl::EndsWith(name, ".model")) name = "tokenizer.model";
      if (!copied.insert(name).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "HfModelWriter: auxiliary file ", from, " would overwrite ", name, " in the output"));
      }
      RETURN_IF_ERROR(Annotate(CopyFileDurably(from, temp_dir + "/" + name),
                               "HfModelWriter: copying auxiliary file"));
    }
    RETURN_IF_ERROR(FsyncDirectory(temp_dir));

    std::error_code ec;
    if (!DirectoryIsMissingOrEmpty(dir, &ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("output directory ", dir, " exists and is not empty"));
    }
    // rename(2) replaces an empty directory atomically.
    if (::rename(temp_dir.c_str(), dir.c_str()) != 0) {
      return ErrnoToStatus(errno, "rename " + temp_dir + " to", dir);
    }
    finished = true;
    temp_dir.clear();
    fs::path parent = fs::path(dir).parent_path();
    return FsyncDirectory(parent.empty() ? "." : parent.string());
  }
};

HfModelWriter::HfModelWriter(std::string dir, LlamaConfig config, std::string base_config_json,
                             std::vector<std::string> auxiliary_files, HfWriterOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  while (impl_->dir.size() > 1 && impl_->dir.back() == '/') impl_->dir.pop_back();
  impl_->config = std::move(config);
  impl_->base_config_json = std::move(base_config_json);
  impl_->auxiliary_files = std::move(auxiliary_files);
  impl_->options = std::move(options);
  if (impl_->options.max_shard_bytes <= 0) impl_->options.max_shard_bytes = 1;
}

HfModelWriter::~HfModelWriter() {
  if (!impl_->temp_dir.empty()) {
    (void)RemoveTree(impl_->temp_dir);
  }
}

absl::Status HfModelWriter::Add(const std::string& name, const TensorView& tensor) {
  return impl_->Add(name, tensor);
}

absl::Status HfModelWriter::Finish() { return impl_->Finish(); }

}  // namespace prunerd
