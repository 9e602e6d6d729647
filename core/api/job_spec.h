// File: job_spec.h
//
// What a prune job asks for, independent of how it arrived (CLI flags, gRPC JobSpec, JSON).
// ValidateJobSpec() checks everything that can be checked without touching files and names the
// offending field in an InvalidArgument ("ratio: must be in [0, 1), got 1.2"). Names for enums
// are lower-case strings ("wanda", "2:4", "output1") shared by the CLI, the proto mapping and
// the JSON report.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace prunerd {

enum class Method { kMagnitude, kWanda, kSparseGpt, kBarber, kTransAct };
std::string_view MethodName(Method m);  // "magnitude", "wanda", "sparsegpt", "barber", "transact"
absl::StatusOr<Method> ParseMethod(std::string_view name);

// Unstructured at `ratio`, or N:M (N zeros in every M consecutive input columns) when m > 0.
struct SparsityPattern {
  double ratio = 0.5;
  int n = 0;
  int m = 0;
  bool is_nm() const { return m > 0; }
  double effective_ratio() const { return is_nm() ? double(n) / m : ratio; }
};
// "unstructured" / "0.5" style is the ratio; "2:4" is N:M. ToString gives "2:4" or "unstructured".
absl::StatusOr<SparsityPattern> ParseNM(std::string_view text);  // "2:4" -> {0.5, 2, 4}
std::string PatternName(const SparsityPattern& p);

// LLM-Barber (methods.md §5).
enum class BarberGranularity { kOutput1, kInput1, kLayer, kBlock };
enum class BarberMetric { kWD, kW, kD };
std::string_view BarberGranularityName(BarberGranularity g);
absl::StatusOr<BarberGranularity> ParseBarberGranularity(std::string_view s);
std::string_view BarberMetricName(BarberMetric m);
absl::StatusOr<BarberMetric> ParseBarberMetric(std::string_view s);

struct BarberOptions {
  Method init = Method::kWanda;  // magnitude, wanda or sparsegpt
  double tau = 0.01;             // mask rebuilding ratio, in [0, 1]
  BarberGranularity granularity = BarberGranularity::kOutput1;
  BarberMetric metric = BarberMetric::kWD;
  bool retain_reconstruction = false;  // keep SparseGPT's updated values on kept weights
  // Precision of the dense block's forward/backward behind the gradient scores: "auto" follows
  // the compute dtype (float32 → float32 as the reference; float16/bfloat16 → bfloat16
  // operands), or "float32", "tf32" (CUDA tensor cores, fp32 accumulation), "bfloat16". The
  // loss and the Σ G² accumulators are fp32 always.
  std::string grad_precision = "auto";
  // Measure each block's output MSE after the rebuild (one more forward per block; reported).
  bool measure_block_mse = true;
};

struct SparseGptOptions {
  double percdamp = 0.01;
  int64_t blocksize = 128;
};

// TransAct (methods.md §6). Targets: either ratios of the module sizes (fraction removed) or
// explicit dims; a dim > 0 wins over the ratio.
enum class GqaMode { kKvGroups, kQueryHeads };
std::string_view GqaModeName(GqaMode g);  // "kv_groups", "query_heads"
absl::StatusOr<GqaMode> ParseGqaMode(std::string_view s);

struct TransActOptions {
  double attn_ratio = 0.5;   // fraction of the attention dim (heads * head_dim) removed
  double mlp_ratio = 0.5;    // fraction of the MLP intermediate size removed
  int64_t attn_dim = 0;      // explicit target attention dim (query heads * head_dim)
  int64_t mlp_dim = 0;       // explicit target MLP intermediate size
  int shots = 1;             // iterative schedule, re-scoring between shots
  GqaMode gqa_mode = GqaMode::kKvGroups;
};

// A text / jsonl / pre-tokenized file (text_data.h).
struct DataSpec {
  std::string path;
  int64_t num_samples = 128;  // calibration windows (ignored for evaluation)
  int64_t seqlen = 0;         // tokens per window; 0 = min(2048, max_position_embeddings)
  uint64_t seed = 0;
  int64_t max_windows = 0;    // evaluation: 0 = all windows
};

struct PruneJobSpec {
  std::string model_path;      // Hugging Face directory or llama2.c .bin
  std::string tokenizer_path;  // "" = the model's own
  Method method = Method::kWanda;
  SparsityPattern pattern;
  BarberOptions barber;
  SparseGptOptions sparsegpt;
  TransActOptions transact;
  DataSpec calibration;
  std::optional<DataSpec> evaluation;  // perplexity before and after when set
  bool eval_dense = true;              // also evaluate the unpruned model
  bool eval_calibration = true;        // perplexity on the calibration windows before/after
  std::string device = "cpu";          // "cpu", "cuda", "cuda:N"
  std::string dtype = "auto";          // compute/storage dtype of the layers: auto (model's; fp32 on cpu), float32, float16, bfloat16
  int64_t batch_size = 0;              // calibration sequences per forward; 0 = automatic
  std::string output_dir;              // where the pruned model goes; "" = not written
};

// InvalidArgument naming the field. Does not touch the filesystem.
absl::Status ValidateJobSpec(const PruneJobSpec& spec);

}  // namespace prunerd
