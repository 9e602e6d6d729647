// transact_bench: what TransAct costs and what it buys, on one model.
//
//  1. Scoring + slicing (TransActPrune) over N x T calibration tokens, timed as a whole and by
//     stage (embed, load, score, select, slice, store; device-synchronised).
//  2. Forward latency and throughput of the dense and the sliced model, whole model resident
//     on the device, at each batch size with a prefill of P tokens: logits for every position,
//     as a Hugging Face forward computes them. Warm-up runs, then the median of timed runs,
//     each bracketed by device synchronisation.
//
// The calibration tokens are uniform random ids (the benchmark model is random too: timing
// does not depend on the text). Prints a table and writes JSON with --json.
//
//   transact_bench --model /models/llama2-7b-random --device cuda --json out.json
//   transact_bench --model shared/data/models/prose16M --device cpu --calib-samples 4
//       --calib-seqlen 128 --prefill 64 --batches 1,4 --runs 3
//
// Not a test: nothing is asserted.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/api/engine.h"
#include "core/api/job_spec.h"
#include "core/api/proto_json.h"
#include "core/common/arg_parser.h"
#include "core/common/status_macros.h"
#include "core/engine/cuda_util.h"
#include "core/engine/llama_model.h"
#include "core/engine/perplexity.h"
#include "core/engine/torch_util.h"
#include "core/methods/transact.h"
#include "core/model/checkpoint.h"

namespace prunerd {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string model;
  std::string device = "cuda";
  std::string dtype = "auto";
  int64_t calib_samples = 128;
  int64_t calib_seqlen = 2048;
  int64_t calib_batch = 0;
  double attn_ratio = 0.5;
  double mlp_ratio = 0.5;
  int64_t attn_dim = 0;
  int64_t mlp_dim = 0;
  std::string gqa_mode = "kv_groups";
  int64_t shots = 1;
  int64_t prefill = 512;
  std::string batches = "1,16";
  int64_t warmup = 3;
  int64_t runs = 10;
  int64_t seed = 0;
  bool prewarm = true;
  std::string json_path;
};

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Reads every safetensors file of a model directory once, so that the first layer loads of
// the timed pruning come from the page cache as they would in a warm daemon.
void Prewarm(const std::string& path) {
  if (!std::filesystem::is_directory(path)) return;
  std::vector<char> buf(64 << 20);
  for (const auto& e : std::filesystem::directory_iterator(path)) {
    if (e.path().extension() != ".safetensors") continue;
    std::ifstream in(e.path(), std::ios::binary);
    while (in.read(buf.data(), buf.size()) || in.gcount() > 0) {
    }
  }
}

// The whole model on the device in the compute dtype.
struct ResidentModel {
  LlamaConfig config;
  at::Tensor embed, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  RopeCache rope;

  ResidentModel(const LlamaModel& m, const at::Device& device, at::ScalarType dtype, int64_t seqlen)
      : config(m.config) {
    embed = m.embed.to(device, dtype);
    final_norm = m.final_norm.to(device, dtype);
    lm_head = m.lm_head.to(device, dtype);
    for (const LayerWeights& l : m.layers) layers.push_back(l.To(device, dtype));
    rope = MakeRope(config, seqlen, device, dtype);
  }

  at::Tensor Forward(const at::Tensor& tokens) const {
    const int64_t b = tokens.size(0), t = tokens.size(1);
    at::Tensor x = embed.index_select(0, tokens.reshape({-1})).view({b, t, config.hidden_size});
    for (const LayerWeights& w : layers) x = DecoderLayer(w, x, rope, config);
    return at::linear(RmsNorm(x, final_norm, config.rms_norm_eps), lm_head);
  }
};

struct Timing {
  int64_t batch = 0;
  double median_s = 0, min_s = 0;
  double tokens_per_s = 0;
  int64_t peak_bytes = 0;
};

std::vector<Timing> TimeForward(const LlamaModel& m, const Args& a, const at::Device& device,
                                at::ScalarType dtype, const std::vector<int64_t>& batches) {
  c10::InferenceMode inference;
  ResidentModel rm(m, device, dtype, a.prefill);
  std::vector<Timing> out;
  for (int64_t b : batches) {
    at::manual_seed(a.seed + b);
    at::Tensor tokens = at::randint(3, m.config.vocab_size, {b, a.prefill}, at::kLong).to(device);
    ResetDevicePeak(device);
    for (int64_t i = 0; i < a.warmup; ++i) rm.Forward(tokens);
    std::vector<double> s;
    for (int64_t i = 0; i < a.runs; ++i) {
      Synchronize(device);
      const auto t0 = Clock::now();
      at::Tensor logits = rm.Forward(tokens);
      Synchronize(device);
      s.push_back(Seconds(t0, Clock::now()));
    }
    std::sort(s.begin(), s.end());
    Timing t;
    t.batch = b;
    t.median_s = s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
    t.min_s = s.front();
    t.tokens_per_s = double(b * a.prefill) / t.median_s;
    t.peak_bytes = DevicePeakBytes(device);
    out.push_back(t);
  }
  return out;
}

json TimingJson(const std::vector<Timing>& ts) {
  json j = json::array();
  for (const Timing& t : ts) {
    j.push_back({{"batch", t.batch},
                 {"latency_ms_median", 1e3 * t.median_s},
                 {"latency_ms_min", 1e3 * t.min_s},
                 {"tokens_per_s", t.tokens_per_s},
                 {"peak_device_bytes", t.peak_bytes}});
  }
  return j;
}

absl::Status Run(const Args& a) {
  ASSIGN_OR_RETURN(at::Device device, ParseDevice(a.device));
  ASSIGN_OR_RETURN(v1::GqaMode mode, ParseEnum<v1::GqaMode>(a.gqa_mode, "--gqa-mode"));
  ASSIGN_OR_RETURN(v1::DType want_dtype, ParseEnum<v1::DType>(a.dtype, "--dtype"));
  std::vector<int64_t> batches;
  for (absl::string_view s : absl::StrSplit(a.batches, ',', absl::SkipEmpty())) {
    int64_t b;
    if (!absl::SimpleAtoi(s, &b) || b < 1) {
      return absl::InvalidArgumentError(absl::StrCat("--batches: bad batch size ", s));
    }
    batches.push_back(b);
  }
  if (a.runs < 1 || a.warmup < 0) return absl::InvalidArgumentError("--runs >= 1, --warmup >= 0");

  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> opened, Checkpoint::Open(a.model));
  std::shared_ptr<const Checkpoint> ckpt(std::move(opened));
  ASSIGN_OR_RETURN(LlamaModel dense, LoadLlama(ckpt));
  ASSIGN_OR_RETURN(at::ScalarType dtype,
                   ResolveComputeDType(want_dtype, dense.config.torch_dtype, device));
  if (a.calib_seqlen > dense.config.max_position_embeddings ||
      a.prefill > dense.config.max_position_embeddings) {
    return absl::InvalidArgumentError("--calib-seqlen / --prefill exceed max_position_embeddings");
  }
  const std::string device_name =
      device.is_cuda() ? CudaDeviceName(device.has_index() ? device.index() : 0) : "cpu";
  std::printf(
      "model %s: %lld layers, hidden %lld, %lld heads / %lld KV of %lld, d_ff %lld, "
      "%.3f B parameters\ndevice %s, compute %s, torch %s\n",
      a.model.c_str(), (long long)dense.config.num_hidden_layers,
      (long long)dense.config.hidden_size, (long long)dense.config.num_attention_heads,
      (long long)dense.config.num_key_value_heads, (long long)dense.config.head_dim,
      (long long)dense.config.intermediate_size, dense.config.NumParameters() / 1e9,
      device_name.c_str(), c10::toString(dtype), TorchVersion().c_str());
  if (a.prewarm) {
    const auto t0 = Clock::now();
    Prewarm(a.model);
    std::printf("page cache warmed in %.1f s\n", Seconds(t0, Clock::now()));
  }

  // 1. Dense forward.
  std::vector<Timing> dense_t;
  absl::Status s =
      TorchCall("dense forward", [&] { dense_t = TimeForward(dense, a, device, dtype, batches); });
  RETURN_IF_ERROR(s);
  ReleaseDeviceCache(device);

  // 2. Scoring + slicing.
  ASSIGN_OR_RETURN(LlamaModel sliced, LoadLlama(ckpt));
  at::manual_seed(a.seed);
  const at::Tensor calib =
      at::randint(3, dense.config.vocab_size, {a.calib_samples, a.calib_seqlen}, at::kLong);
  v1::TransActOptions opts;
  opts.set_attn_ratio(a.attn_ratio);
  opts.set_mlp_ratio(a.mlp_ratio);
  opts.set_attn_dim(a.attn_dim);
  opts.set_mlp_dim(a.mlp_dim);
  opts.set_shots(static_cast<int32_t>(a.shots));
  opts.set_gqa_mode(mode);
  ForwardOptions fwd{.device = device, .dtype = dtype, .batch_size = a.calib_batch};
  absl::StatusOr<v1::TransActReport> details;
  Synchronize(device);
  const auto p0 = Clock::now();
  s = TorchCall("transact", [&] { details = TransActPrune(sliced, calib, opts, fwd, nullptr); });
  Synchronize(device);
  const double prune_s = Seconds(p0, Clock::now());
  RETURN_IF_ERROR(s);
  RETURN_IF_ERROR(details.status());
  ReleaseDeviceCache(device);

  // 3. Sliced forward.
  std::vector<Timing> sliced_t;
  s = TorchCall("sliced forward",
                [&] { sliced_t = TimeForward(sliced, a, device, dtype, batches); });
  RETURN_IF_ERROR(s);

  // Report.
  const json report = json::parse(ProtoToJson(*details));
  const json& stages = report["stage_seconds"];
  std::printf("\nscoring + slicing: %lld x %lld calibration tokens, batch %lld, %.2f s total\n",
              (long long)a.calib_samples, (long long)a.calib_seqlen, (long long)details->batch(),
              prune_s);
  for (const auto& [stage, secs] : stages.items()) {
    std::printf("  %-8s %8.3f s\n", stage.c_str(), secs.get<double>());
  }
  std::printf("  peak device memory %.2f GiB\n",
              double(details->peak_device_bytes()) / double(1 << 30));
  auto row = [](const char* name, const LlamaConfig& c) {
    std::printf(
        "%-7s heads %3lld / KV %3lld, d_ff %6lld, %8.3f B params, KV cache %7lld "
        "values/token\n",
        name, (long long)c.num_attention_heads, (long long)c.num_key_value_heads,
        (long long)c.intermediate_size, c.NumParameters() / 1e9,
        (long long)c.KvCacheValuesPerToken());
  };
  std::printf("\n");
  row("dense", dense.config);
  row("sliced", sliced.config);
  std::printf("\nforward, prefill %lld, median of %lld runs after %lld warm-up\n",
              (long long)a.prefill, (long long)a.runs, (long long)a.warmup);
  std::printf("%6s | %12s %12s | %12s %12s | %8s\n", "batch", "dense ms", "dense tok/s",
              "sliced ms", "sliced tok/s", "speedup");
  json speedups = json::array();
  for (size_t i = 0; i < batches.size(); ++i) {
    const double sp = dense_t[i].median_s / sliced_t[i].median_s;
    speedups.push_back({{"batch", batches[i]}, {"speedup", sp}});
    std::printf("%6lld | %12.2f %12.0f | %12.2f %12.0f | %7.2fx\n", (long long)batches[i],
                1e3 * dense_t[i].median_s, dense_t[i].tokens_per_s, 1e3 * sliced_t[i].median_s,
                sliced_t[i].tokens_per_s, sp);
  }

  if (!a.json_path.empty()) {
    json out = {{"benchmark", "transact"},
                {"model", a.model},
                {"device", device_name},
                {"compute_dtype", std::string(c10::toString(dtype))},
                {"torch", TorchVersion()},
                {"calibration",
                 {{"samples", a.calib_samples},
                  {"seqlen", a.calib_seqlen},
                  {"tokens", a.calib_samples * a.calib_seqlen},
                  {"text", "random ids"}}},
                {"options",
                 {{"attn_ratio", a.attn_ratio},
                  {"mlp_ratio", a.mlp_ratio},
                  {"attn_dim", a.attn_dim},
                  {"mlp_dim", a.mlp_dim},
                  {"gqa_mode", a.gqa_mode},
                  {"shots", a.shots}}},
                {"prune_seconds", prune_s},
                {"prune_stages", stages},
                {"prune_peak_device_bytes", details->peak_device_bytes()},
                {"dense", report["dense"]},
                {"pruned", report["pruned"]},
                {"forward",
                 {{"prefill", a.prefill},
                  {"warmup", a.warmup},
                  {"runs", a.runs},
                  {"logits", "all positions"},
                  {"dense", TimingJson(dense_t)},
                  {"sliced", TimingJson(sliced_t)},
                  {"speedup", speedups}}}};
    std::ofstream f(a.json_path);
    f << out.dump(2) << "\n";
    if (!f) return absl::InternalError(absl::StrCat("cannot write ", a.json_path));
    std::printf("\nwrote %s\n", a.json_path.c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) {
  using prunerd::ArgParser;
  prunerd::Args a;
  ArgParser p("transact_bench",
              "TransAct scoring + slicing time, and dense vs sliced forward latency.");
  p.AddString("model", &a.model, "Hugging Face directory or llama2.c .bin", /*required=*/true);
  p.AddString("device", &a.device, "cpu, cuda, cuda:N");
  p.AddString("dtype", &a.dtype, "auto (the model's; fp32 on cpu), float32, float16, bfloat16");
  p.AddInt("calib-samples", &a.calib_samples, "calibration windows");
  p.AddInt("calib-seqlen", &a.calib_seqlen, "tokens per calibration window");
  p.AddInt("calib-batch", &a.calib_batch, "windows per scoring forward; 0 = automatic");
  p.AddDouble("attn-ratio", &a.attn_ratio, "fraction of the attention dim removed");
  p.AddDouble("mlp-ratio", &a.mlp_ratio, "fraction of the MLP dim removed");
  p.AddInt("attn-dim", &a.attn_dim, "explicit attention dim to keep (overrides the ratio)");
  p.AddInt("mlp-dim", &a.mlp_dim, "explicit MLP dim to keep (overrides the ratio)");
  p.AddString("gqa-mode", &a.gqa_mode, "kv_groups or query_heads");
  p.AddInt("shots", &a.shots, "iterative shots");
  p.AddInt("prefill", &a.prefill, "tokens per sequence in the forward timing");
  p.AddString("batches", &a.batches, "comma-separated batch sizes");
  p.AddInt("warmup", &a.warmup, "untimed forward runs per batch size");
  p.AddInt("runs", &a.runs, "timed forward runs per batch size (median reported)");
  p.AddInt("seed", &a.seed, "random seed of the token ids");
  p.AddBool("prewarm", &a.prewarm, "read the safetensors files once before timing");
  p.AddString("json", &a.json_path, "write the results as JSON here");
  absl::Status s = p.Parse(argc - 1, argv + 1);
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  if (s.ok()) s = prunerd::Run(a);
  if (!s.ok()) {
    std::cerr << "transact_bench: " << s << "\n";
    return 1;
  }
  return 0;
}
