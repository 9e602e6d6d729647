#include "server/engine_job_runner.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace prunerd {

absl::StatusOr<v1::PruneReport> EngineJobRunner::Run(const v1::JobSpec& spec,
                                                     const RunOptions& options,
                                                     const ProgressCallback& progress) {
  try {
    return RunPruneJob(spec, options, progress);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("engine: ", e.what()));
  } catch (...) {
    return absl::InternalError("engine: unknown exception");
  }
}

std::vector<DeviceInfo> EngineJobRunner::Devices() {
  try {
    return ListDevices();
  } catch (...) {
    return {DeviceInfo{.name = "cpu", .description = "host CPU"}};
  }
}

int64_t EngineJobRunner::DeviceMemoryAllocated(const std::string& device) {
  try {
    return prunerd::DeviceMemoryAllocated(device);
  } catch (...) {
    return 0;
  }
}

std::string EngineJobRunner::EngineVersion() { return absl::StrCat("torch ", TorchVersion()); }

}  // namespace prunerd
