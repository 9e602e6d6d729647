// File: engine.h
//
// The engine's entry points, torch-free: the daemon and the CLI include only this (and
// job_spec.h / progress.h) and never see libtorch's headers.
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

namespace prunerd {

struct EvalSpec {
  std::string model_path;
  std::string tokenizer_path;  // "" = the model's own
  std::string data_path;
  int64_t seqlen = 0;          // 0 = min(2048, the model's max_position_embeddings)
  int64_t max_windows = 0;     // 0 = all
  std::string device = "cpu";
  std::string dtype = "float32";  // float32, float16, bfloat16, auto (the checkpoint's)
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
// (evaluate pruned), write the pruned model. Returns the report as JSON text (schema in
// core/engine/report.h); on error nothing partial is left in spec.output_dir.
struct PruneResult {
  std::string report_json;
  double ppl_dense = 0;   // 0 when not evaluated
  double ppl_pruned = 0;  // 0 when not evaluated
  double sparsity = 0;    // zeros / weights over the pruned linear layers (or parameter
                          // reduction for TransAct)
  std::string output_dir;
};
absl::StatusOr<PruneResult> RunPruneJob(const PruneJobSpec& spec,
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
