// synth_model: writes a LLaMA-architecture Hugging Face directory with random weights, for
// timing benchmarks (pruning costs the same on random weights; quality is measured on the
// bundled pretrained models). Weights are uniform with standard deviation --std (norm weights
// are 1), fp16 or bf16 or fp32, deterministic for a seed, generated on all cores.
//
//   synth_model --preset llama2-7b --tokenizer llama2/tokenizer.model --out /tmp/llama7b
//
// Presets: llama2-7b (32 layers, hidden 4096, 32 heads, MLP 11008, vocab 32000, 4096 positions)
// and tiny (2 layers, hidden 64). Any field can be overridden (--layers 4 ...).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/arg_parser.h"
#include "core/model/hf_writer.h"

namespace prunerd {
namespace {

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffffu;
  if (exp <= 0) {  // subnormal or zero (weights here are never tiny enough to matter)
    if (exp < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - exp);
    return static_cast<uint16_t>(sign | ((mant + (1u << (shift - 1))) >> shift));
  }
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  if (mant & 0x1000u) ++h;  // round half up
  return static_cast<uint16_t>(h);
}

uint16_t FloatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// splitmix64: a counter-based generator, so chunks can be filled in parallel deterministically.
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

HostTensor Random(DType dtype, std::vector<int64_t> shape, double std_dev, uint64_t seed,
                  bool ones) {
  HostTensor t = HostTensor::Zeros(dtype, std::move(shape));
  const int64_t n = t.numel();
  const float a = static_cast<float>(std_dev * std::sqrt(3.0));  // uniform[-a, a] has this std
  uint8_t* out = static_cast<uint8_t*>(t.mutable_data());
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < threads; ++w) {
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += threads) {
        float v = 1.0f;
        if (!ones) {
          const double u = (Mix(seed ^ (static_cast<uint64_t>(i) * 0x2545F4914F6CDD1Dull)) >> 11) *
                           (1.0 / 9007199254740992.0);
          v = static_cast<float>((2.0 * u - 1.0) * a);
        }
        if (dtype == DType::kF32) {
          std::memcpy(out + 4 * i, &v, 4);
        } else {
          const uint16_t h = dtype == DType::kF16 ? FloatToHalf(v) : FloatToBf16(v);
          std::memcpy(out + 2 * i, &h, 2);
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  return t;
}

int Main(int argc, char** argv) {
  std::string preset = "llama2-7b", out, tokenizer, dtype_name = "float16";
  int64_t layers = 0, hidden = 0, heads = 0, kv_heads = 0, mlp = 0, vocab = 0, seed = 0;
  double std_dev = 0.02;
  ArgParser p("synth_model", "Writes a LLaMA model with random weights (for timing).");
  p.AddString("preset", &preset, "llama2-7b or tiny");
  p.AddString("out", &out, "output directory (must not exist)", true);
  p.AddString("tokenizer", &tokenizer, "tokenizer.model to copy into the model directory");
  p.AddString("dtype", &dtype_name, "float16, bfloat16 or float32");
  p.AddInt("layers", &layers, "override the number of layers");
  p.AddInt("hidden", &hidden, "override hidden_size");
  p.AddInt("heads", &heads, "override num_attention_heads");
  p.AddInt("kv-heads", &kv_heads, "override num_key_value_heads");
  p.AddInt("mlp", &mlp, "override intermediate_size");
  p.AddInt("vocab", &vocab, "override vocab_size");
  p.AddInt("seed", &seed, "random seed");
  p.AddDouble("std", &std_dev, "weight standard deviation");
  if (absl::Status s = p.Parse(argc - 1, argv + 1); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  if (p.help_requested()) {
    std::cout << p.Help();
    return 0;
  }
  LlamaConfig c;
  if (preset == "llama2-7b") {
    c.vocab_size = 32000, c.hidden_size = 4096, c.intermediate_size = 11008;
    c.num_hidden_layers = 32, c.num_attention_heads = 32, c.num_key_value_heads = 32;
    c.max_position_embeddings = 4096, c.rms_norm_eps = 1e-5;
  } else if (preset == "tiny") {
    c.vocab_size = 512, c.hidden_size = 64, c.intermediate_size = 192;
    c.num_hidden_layers = 2, c.num_attention_heads = 4, c.num_key_value_heads = 2;
    c.max_position_embeddings = 512, c.rms_norm_eps = 1e-5;
  } else {
    std::cerr << "synth_model: unknown preset " << preset << "\n";
    return 2;
  }
  if (layers) c.num_hidden_layers = layers;
  if (hidden) c.hidden_size = hidden;
  if (heads) c.num_attention_heads = heads;
  if (kv_heads) c.num_key_value_heads = kv_heads;
  if (mlp) c.intermediate_size = mlp;
  if (vocab) c.vocab_size = vocab;
  c.head_dim = c.hidden_size / c.num_attention_heads;
  auto dtype = DTypeFromTorchName(dtype_name);
  if (!dtype.ok()) {
    std::cerr << dtype.status() << "\n";
    return 2;
  }
  c.torch_dtype = *dtype;
  if (absl::Status s = c.Validate(); !s.ok()) {
    std::cerr << s << "\n";
    return 2;
  }
  std::vector<std::string> aux;
  if (!tokenizer.empty()) aux.push_back(tokenizer);
  HfModelWriter writer(out, c, "", aux);
  uint64_t stream = static_cast<uint64_t>(seed) * 1000003ull;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, bool ones) {
    HostTensor t = Random(c.torch_dtype, std::move(shape), std_dev, Mix(++stream), ones);
    return writer.Add(name, t.view());
  };
  absl::Status s = add(std::string(kEmbedName), {c.vocab_size, c.hidden_size}, false);
  for (int64_t l = 0; s.ok() && l < c.num_hidden_layers; ++l) {
    s = add(InputNormName(l), {c.hidden_size}, true);
    for (Proj pr : kAllProjs) {
      if (!s.ok()) break;
      auto shape = ProjShape(c, pr);
      s = add(ProjWeightName(l, pr), {shape[0], shape[1]}, false);
    }
    if (s.ok()) s = add(PostAttnNormName(l), {c.hidden_size}, true);
    std::fprintf(stderr, "\rlayer %ld/%ld", static_cast<long>(l + 1),
                 static_cast<long>(c.num_hidden_layers));
  }
  if (s.ok()) s = add(std::string(kFinalNormName), {c.hidden_size}, true);
  if (s.ok()) s = add(std::string(kLmHeadName), {c.vocab_size, c.hidden_size}, false);
  if (s.ok()) s = writer.Finish();
  std::fprintf(stderr, "\n");
  if (!s.ok()) {
    std::cerr << "synth_model: " << s << "\n";
    return 1;
  }
  std::printf("wrote %s: %ld parameters\n", out.c_str(), static_cast<long>(c.NumParameters()));
  return 0;
}

}  // namespace
}  // namespace prunerd

int main(int argc, char** argv) { return prunerd::Main(argc, argv); }
