// File: job_runner.h
//
// What the scheduler needs from the engine, as an interface: run one prune job on a device
// with a progress callback, list devices, report device memory. The daemon binary uses
// EngineJobRunner (engine_job_runner.h, the real libtorch engine); unit tests use a fake that
// walks through layers on command, so the scheduler and service are tested without torch.
//
// Contract of Run (the engine's, core/api/engine.h): the callback is called at least at every
// layer boundary; returning false makes Run return CancelledError at the next boundary. Errors:
// InvalidArgument / NotFound for bad input, ResourceExhausted for device out-of-memory,
// Internal for anything else the engine threw; Run never throws.
//
// Thread-safety: Run may be called concurrently for different devices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/api/engine.h"
#include "core/api/progress.h"
#include "prunerd/v1/engine.pb.h"
#include "prunerd/v1/spec.pb.h"

namespace prunerd {

class JobRunner {
 public:
  virtual ~JobRunner() = default;
  // `spec` is resolved (SpecResolver): paths in place of names.
  virtual absl::StatusOr<v1::PruneReport> Run(const v1::JobSpec& spec, const RunOptions& options,
                                              const ProgressCallback& progress) = 0;
  virtual std::vector<DeviceInfo> Devices() = 0;
  virtual int64_t DeviceMemoryAllocated(const std::string& device) = 0;
  // The engine's version string ("torch 1.13.0").
  virtual std::string EngineVersion() = 0;
};

}  // namespace prunerd
