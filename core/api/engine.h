// File: engine.h
//
// The engine's entry points, torch-free: the daemon and the CLI include only this (and
// job_spec.h / progress.h) and never see libtorch's headers. The engine speaks the API's
// protobuf types (spec.proto, engine.proto).
//
//   EvalSpec spec{.model_path = "/m/prose16M", .data_path = "wiki.test.raw", .seqlen = 512};
//   ASSIGN_OR_RETURN(EvalResult r, EvaluatePerplexity(spec, [](const Progress&) { return true; }));
//
// Errors: InvalidArgument for bad input (files named), NotFound for missing files,
// Cancelled when the callback returned false, ResourceExhausted for device out-of-memory,
// Internal for anything libtorch threw (c10::Error is caught here and never escapes).
//
// Thread-safety: calls may run concurrently on different devices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/job_spec.h"
#include "core/api/progress.h"
#include "prunerd/v1/engine.pb.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

struct EvalSpec {
  std::string model_path;
  std::string tokenizer_path;  // "" = the model's own
  std::string data_path;
  int64_t seqlen = 0;          // 0 = min(2048, the model's max_position_embeddings)
  int64_t max_windows = 0;     // 0 = all
  std::string device = "cpu";
  v1::DType dtype = v1::DTYPE_FLOAT32;  // DTYPE_AUTO: the checkpoint's on GPUs
  int64_t batch_size = 0;         // windows per forward; 0 = automatic
};

struct EvalResult {
  double perplexity = 0;
  double mean_nll = 0;        // mean over windows of the window's mean NLL (nats/token)
  int64_t windows = 0;
  int64_t seqlen = 0;
  int64_t corpus_tokens = 0;  // tokens in the tokenized corpus, BOS included
  double seconds = 0;
  std::vector<double> window_nll;
};

absl::StatusOr<EvalResult> EvaluatePerplexity(const EvalSpec& spec,
                                              const ProgressCallback& progress);

// Runs a prune job end to end: load, (evaluate dense), calibrate, prune layer by layer,
// (evaluate pruned), write the pruned model, and returns the typed report
// (proto/prunerd/v1/engine.proto). `spec` is resolved: model, tokenizer and data sources are
// filesystem paths (DataSource.uri), dataset names already looked up; defaults need not be
// filled in. On error nothing partial is left in options.output_dir.
struct RunOptions {
  std::string device = "cpu";  // "cpu", "cuda", "cuda:N"
  std::string output_dir;      // where the pruned model goes; "" = not written
};
absl::StatusOr<v1::PruneReport> RunPruneJob(const v1::JobSpec& spec, const RunOptions& options,
                                            const ProgressCallback& progress);


// Devices the engine can use ("cpu" always; "cuda:N" for each visible GPU).
struct DeviceInfo {
  std::string name;          // "cuda:0"
  std::string description;   // "NVIDIA H100 80GB HBM3"
  int64_t total_memory = 0;  // bytes (0 for cpu)
  int64_t free_memory = 0;
};
std::vector<DeviceInfo> ListDevices();
// Bytes of device memory held by this process's allocator on `device` (0 for cpu/unknown).
int64_t DeviceMemoryAllocated(const std::string& device);

// "1.13.0" / "2.11.0+cu130"-ish, for --version and build info.
std::string TorchVersion();

}  // namespace prunerd
