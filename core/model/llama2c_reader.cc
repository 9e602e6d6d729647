#include "core/model/llama2c_reader.h"

#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/io/mmap_file.h"

namespace prunerd {
namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
// Versioned llama2.c exports (export.py version >= 1) start with this magic ("ak42").
constexpr uint32_t kVersionedMagic = 0x616b3432;

int32_t ReadInt32LE(const uint8_t* p) {
  uint32_t v = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
               (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
  int32_t out;
  std::memcpy(&out, &v, sizeof(out));
  return out;
}

// Sequential reader of fp32 tensors from the mapped file (bounds already checked).
class FloatCursor {
 public:
  explicit FloatCursor(const uint8_t* p) : p_(p) {}
  HostTensor Take(std::vector<int64_t> shape) {
    HostTensor t = HostTensor::Zeros(DType::kF32, std::move(shape));
    std::memcpy(t.mutable_data(), p_, t.bytes->size());
    p_ += t.bytes->size();
    return t;
  }
  // Reads `layers` consecutive [rows, cols] matrices into per-layer tensors.
  std::vector<HostTensor> TakeLayers(int64_t layers, std::vector<int64_t> shape) {
    std::vector<HostTensor> out;
    for (int64_t l = 0; l < layers; ++l) out.push_back(Take(shape));
    return out;
  }
  void Skip(int64_t floats) { p_ += floats * sizeof(float); }

 private:
  const uint8_t* p_;
};

// Interleaved RoPE pairs (2i, 2i+1) -> rotate-half pairs (i, i + hd/2), per head.
HostTensor PermuteForRotateHalf(const HostTensor& w, int64_t n_heads, int64_t head_dim) {
  const int64_t cols = w.shape[1];
  const size_t row_bytes = static_cast<size_t>(cols) * sizeof(float);
  HostTensor out = HostTensor::Zeros(DType::kF32, w.shape);
  const uint8_t* src = w.bytes->data();
  uint8_t* dst = out.bytes->data();
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < half; ++i) {
      const int64_t base = h * head_dim;
      std::memcpy(dst + (base + i) * row_bytes, src + (base + 2 * i) * row_bytes, row_bytes);
      std::memcpy(dst + (base + half + i) * row_bytes, src + (base + 2 * i + 1) * row_bytes,
                  row_bytes);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<Llama2cModel> ReadLlama2cCheckpoint(const std::string& path) {
  ASSIGN_OR_RETURN(auto map, MappedFile::Open(path));
  const std::string where = "llama2.c checkpoint " + path;
  if (map->size() < kHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": file has ", map->size(), " bytes, less than the 28-byte header"));
  }
  if (static_cast<uint32_t>(ReadInt32LE(map->data())) == kVersionedMagic) {
    int32_t version = map->size() >= 8 ? ReadInt32LE(map->data() + 4) : -1;
    return absl::UnimplementedError(
        absl::StrCat(where, ": a versioned llama2.c export (magic \"ak42\", version ", version,
                     ") is not supported; only the legacy version-0 format is"));
  }
  int32_t h[7];
  for (int i = 0; i < 7; ++i) h[i] = ReadInt32LE(map->data() + 4 * i);
  const int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4],
                vocab_signed = h[5], seq_len = h[6];
  const std::string header_text = absl::StrCat(
      "header (dim=", dim, ", hidden_dim=", hidden, ", n_layers=", layers, ", n_heads=", heads,
      ", n_kv_heads=", kv_heads, ", vocab_size=", vocab_signed, ", seq_len=", seq_len, ")");
  auto header_error = [&](std::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": ", absl::string_view(problem.data(), problem.size()), " in ", header_text));
  };
  if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || seq_len <= 0 ||
      vocab_signed == 0) {
    return header_error("non-positive size");
  }
  if (dim % heads != 0) return header_error("dim not divisible by n_heads");
  if (heads % kv_heads != 0) return header_error("n_heads not divisible by n_kv_heads");
  const int64_t head_dim = dim / heads;
  if (head_dim % 2 != 0) return header_error("odd head size");
  const bool shared_classifier = vocab_signed > 0;
  const int64_t vocab = shared_classifier ? vocab_signed : -vocab_signed;
  const int64_t kv_dim = kv_heads * head_dim;

  // Every factor is below 2^31, so 128-bit arithmetic cannot overflow here.
  using u128 = unsigned __int128;
  const u128 L = static_cast<u128>(layers);
  u128 floats = static_cast<u128>(vocab) * dim                       // token_embedding
                + L * dim                                            // rms_att
                + L * dim * dim                                      // wq
                + 2 * L * kv_dim * dim                               // wk, wv
                + L * dim * dim                                      // wo
                + L * dim                                            // rms_ffn
                + 3 * L * hidden * dim                               // w1, w2, w3
                + dim                                                // rms_final
                + 2 * static_cast<u128>(seq_len) * (head_dim / 2);   // freq_cis_real, _imag
  if (!shared_classifier) floats += static_cast<u128>(vocab) * dim;  // wcls
  const u128 expected = kHeaderBytes + 4 * floats;
  if (expected != map->size()) {
    std::string expected_text = expected > static_cast<u128>(UINT64_MAX)
                                    ? std::string("more than 2^64")
                                    : absl::StrCat(static_cast<uint64_t>(expected));
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": file has ", map->size(), " bytes but its ", header_text, " implies ",
                     expected_text, " bytes (truncated, or not a legacy llama2.c checkpoint)"));
  }

  Llama2cModel m;
  LlamaConfig& c = m.config;
  c.vocab_size = vocab;
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = seq_len;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = shared_classifier;
  c.torch_dtype = DType::kF32;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  RETURN_IF_ERROR(Annotate(c.Validate(), where));

  FloatCursor cur(map->data() + kHeaderBytes);
  HostTensor embed = cur.Take({vocab, dim});
  std::vector<HostTensor> rms_att = cur.TakeLayers(layers, {dim});
  std::vector<HostTensor> wq = cur.TakeLayers(layers, {dim, dim});
  std::vector<HostTensor> wk = cur.TakeLayers(layers, {kv_dim, dim});
  std::vector<HostTensor> wv = cur.TakeLayers(layers, {kv_dim, dim});
  std::vector<HostTensor> wo = cur.TakeLayers(layers, {dim, dim});
  std::vector<HostTensor> rms_ffn = cur.TakeLayers(layers, {dim});
  std::vector<HostTensor> w1 = cur.TakeLayers(layers, {hidden, dim});
  std::vector<HostTensor> w2 = cur.TakeLayers(layers, {dim, hidden});
  std::vector<HostTensor> w3 = cur.TakeLayers(layers, {hidden, dim});
  HostTensor rms_final = cur.Take({dim});
  cur.Skip(2 * seq_len * (head_dim / 2));
  if (!shared_classifier) m.tensors[std::string(kLmHeadName)] = cur.Take({vocab, dim});

  m.tensors[std::string(kEmbedName)] = std::move(embed);
  m.tensors[std::string(kFinalNormName)] = std::move(rms_final);
  for (int64_t l = 0; l < layers; ++l) {
    m.tensors[InputNormName(l)] = std::move(rms_att[l]);
    m.tensors[PostAttnNormName(l)] = std::move(rms_ffn[l]);
    m.tensors[ProjWeightName(l, Proj::kQ)] = PermuteForRotateHalf(wq[l], heads, head_dim);
    m.tensors[ProjWeightName(l, Proj::kK)] = PermuteForRotateHalf(wk[l], kv_heads, head_dim);
    m.tensors[ProjWeightName(l, Proj::kV)] = std::move(wv[l]);
    m.tensors[ProjWeightName(l, Proj::kO)] = std::move(wo[l]);
    m.tensors[ProjWeightName(l, Proj::kGate)] = std::move(w1[l]);
    m.tensors[ProjWeightName(l, Proj::kDown)] = std::move(w2[l]);
    m.tensors[ProjWeightName(l, Proj::kUp)] = std::move(w3[l]);
  }
  return m;
}

std::string FindLlama2cTokenizer(const std::string& bin_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path dir = fs::path(bin_path).parent_path();
  if (dir.empty()) dir = ".";
  fs::path standard = dir / "tokenizer.model";
  if (fs::is_regular_file(standard, ec)) return standard.string();
  std::string found;
  int count = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() >= 9 && name.rfind("tok", 0) == 0 &&
        name.compare(name.size() - 6, 6, ".model") == 0 && it->is_regular_file(ec)) {
      found = it->path().string();
      ++count;
    }
  }
  return count == 1 ? found : std::string();
}

}  // namespace prunerd
