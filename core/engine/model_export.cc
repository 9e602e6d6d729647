#include "core/engine/model_export.h"

#include <filesystem>

#include "core/common/status_macros.h"
#include "core/engine/torch_util.h"
#include "core/model/hf_writer.h"

namespace prunerd {

absl::Status WriteHfModel(const LlamaModel& model, const std::string& tokenizer_path,
                          const std::string& dir) {
  const Checkpoint& src = *model.checkpoint;
  std::vector<std::string> aux = src.auxiliary_files();
  if (!tokenizer_path.empty()) {
    bool have = false;
    for (const std::string& f : aux) have |= (f == tokenizer_path);
    if (!have) aux.push_back(tokenizer_path);
  }
  HfModelWriter writer(dir, model.config, src.config_json(), aux);
  auto add = [&](const std::string& name, const at::Tensor& t) -> absl::Status {
    at::Tensor host = t.to(at::kCPU).contiguous();
    return writer.Add(name, ViewOf(host));
  };
  RETURN_IF_ERROR(add(std::string(kEmbedName), model.embed));
  for (int64_t i = 0; i < model.config.num_hidden_layers; ++i) {
    const LayerWeights& l = model.layers[i];
    RETURN_IF_ERROR(add(InputNormName(i), l.input_norm));
    for (Proj p : kAllProjs) RETURN_IF_ERROR(add(ProjWeightName(i, p), l[p]));
    RETURN_IF_ERROR(add(PostAttnNormName(i), l.post_norm));
  }
  RETURN_IF_ERROR(add(std::string(kFinalNormName), model.final_norm));
  if (!model.config.tie_word_embeddings) {
    RETURN_IF_ERROR(add(std::string(kLmHeadName), model.lm_head));
  }
  return writer.Finish();
}

}  // namespace prunerd
