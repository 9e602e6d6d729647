#include "tests/parity/golden.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/io/mmap_file.h"
#include "core/io/safetensors.h"
#include "core/testing/test_data.h"

namespace {
// The parity runs happen on the GPU host, far from a debugger: a crash prints where it was
// (the faulting instruction's library and symbol, and the thread) and its stack.
void OnCrash(int sig, siginfo_t* info, void* context) {
  const auto* uc = static_cast<const ucontext_t*>(context);
  void* pc = reinterpret_cast<void*>(uc->uc_mcontext.gregs[REG_RIP]);
  Dl_info dl{};
  dladdr(pc, &dl);
  char buf[512];
  const int len = std::snprintf(
      buf, sizeof(buf), "\n*** signal %d at pc %p (%s: %s + %#lx), address %p, thread %ld of %d\n",
      sig, pc, dl.dli_fname ? dl.dli_fname : "?", dl.dli_sname ? dl.dli_sname : "?",
      static_cast<unsigned long>(static_cast<char*>(pc) - static_cast<char*>(dl.dli_fbase)),
      info->si_addr, static_cast<long>(syscall(SYS_gettid)), static_cast<int>(getpid()));
  (void)!write(2, buf, static_cast<size_t>(std::max(0, len)));
  // A call through a null pointer leaves the caller's return address on top of the stack.
  void** sp = reinterpret_cast<void**>(uc->uc_mcontext.gregs[REG_RSP]);
  for (int i = 0; i < 4; ++i) {
    Dl_info r{};
    dladdr(sp[i], &r);
    const int n = std::snprintf(
        buf, sizeof(buf), "  stack[%d] %p (%s: %s + %#lx)\n", i, sp[i],
        r.dli_fname ? r.dli_fname : "?", r.dli_sname ? r.dli_sname : "?",
        static_cast<unsigned long>(static_cast<char*>(sp[i]) - static_cast<char*>(r.dli_fbase)));
    (void)!write(2, buf, static_cast<size_t>(std::max(0, n)));
  }
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
[[maybe_unused]] const bool kCrashHandler = [] {
  struct sigaction sa {};
  sa.sa_sigaction = OnCrash;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, nullptr);
  sigaction(SIGABRT, &sa, nullptr);
  sigaction(SIGBUS, &sa, nullptr);
  return true;
}();
}  // namespace

namespace prunerd {

std::string GoldenPath(const std::string& rel) { return GoldenDir() + "/" + rel; }

absl::StatusOr<nlohmann::json> ReadGoldenJson(const std::string& rel) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(GoldenPath(rel)));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return absl::DataLossError(absl::StrCat(rel, ": not JSON"));
  return j;
}

absl::StatusOr<std::vector<float>> ReadGoldenFloats(const std::string& rel, const std::string& name,
                                                    std::vector<int64_t>* shape) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(GoldenPath(rel)));
  ASSIGN_OR_RETURN(TensorView v, file->Get(name));
  if (v.dtype != DType::kF32) return absl::InvalidArgumentError(absl::StrCat(rel, ": not F32"));
  std::vector<float> out(v.numel());
  std::memcpy(out.data(), v.data, v.nbytes);
  if (shape) *shape = v.shape;
  return out;
}

absl::StatusOr<std::vector<int64_t>> ReadGoldenInts(const std::string& rel,
                                                    const std::string& name) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(GoldenPath(rel)));
  ASSIGN_OR_RETURN(TensorView v, file->Get(name));
  if (v.dtype != DType::kI64) return absl::InvalidArgumentError(absl::StrCat(rel, ": not I64"));
  std::vector<int64_t> out(v.numel());
  std::memcpy(out.data(), v.data, v.nbytes);
  return out;
}

absl::StatusOr<std::vector<uint8_t>> ReadGoldenMask(const std::string& rel,
                                                    const std::string& weight_name) {
  ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(GoldenPath(rel)));
  ASSIGN_OR_RETURN(TensorView v, file->Get(weight_name));
  auto it = file->metadata().find("shape." + weight_name);
  if (it == file->metadata().end()) {
    return absl::DataLossError(absl::StrCat(rel, ": no shape for ", weight_name));
  }
  int64_t out = 0, in = 0;
  if (std::sscanf(it->second.c_str(), "%ld,%ld", &out, &in) != 2) {
    return absl::DataLossError(absl::StrCat(rel, ": bad shape ", it->second));
  }
  const int64_t n = out * in;
  if (static_cast<int64_t>(v.nbytes) != (n + 7) / 8) {
    return absl::DataLossError(absl::StrCat(rel, ": ", weight_name, " has ", v.nbytes, " bytes"));
  }
  const uint8_t* bits = static_cast<const uint8_t*>(v.data);
  std::vector<uint8_t> mask(n);
  for (int64_t i = 0; i < n; ++i) mask[i] = (bits[i >> 3] >> (7 - (i & 7))) & 1;
  return mask;
}

}  // namespace prunerd
