// File: spm_model_edit.cc
#include "core/tokenizer/spm_model_edit.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/tokenizer/spm_oracle.h"

namespace prunerd::testing {

std::string WriteModelVariant(const std::string& base_path, const std::string& out_path,
                              const std::function<void(spm::ModelProto&)>& edit) {
  spm::ModelProto model;
  if (!model.ParseFromString(ReadFileOrDie(base_path))) {
    std::fprintf(stderr, "cannot parse %s\n", base_path.c_str());
    std::abort();
  }
  edit(model);
  WriteFileOrDie(out_path, model.SerializeAsString());
  return out_path;
}

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string templ =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/prunerd_tokenizer_XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  return templ;
}

}  // namespace prunerd::testing
