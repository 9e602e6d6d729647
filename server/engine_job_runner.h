// File: engine_job_runner.h
//
// The JobRunner the daemon binary uses: the real engine (core/api/engine.h, libtorch behind a
// torch-free header). Anything the engine lets escape (it should not: it catches c10::Error
// itself) is caught here too and becomes an Internal error, so a bad job never takes the
// daemon down.
//
//   auto runner = std::make_unique<EngineJobRunner>();
//   ASSIGN_OR_RETURN(auto d, Daemon::Create(config, std::move(runner)));
//
// Thread-safety: the engine allows concurrent calls on different devices.
#pragma once

#include "server/job_runner.h"

namespace prunerd {

class EngineJobRunner : public JobRunner {
 public:
  absl::StatusOr<v1::PruneReport> Run(const v1::JobSpec& spec, const RunOptions& options,
                                      const ProgressCallback& progress) override;
  std::vector<DeviceInfo> Devices() override;
  int64_t DeviceMemoryAllocated(const std::string& device) override;
  std::string EngineVersion() override;
};

}  // namespace prunerd
