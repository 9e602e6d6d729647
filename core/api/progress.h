// File: progress.h
//
// Progress reporting and cancellation for long engine work (loading, calibration, pruning a
// layer, evaluation, writing). The engine calls the callback at least at every layer boundary
// and every few evaluation windows; returning false asks the engine to stop, which it does at
// the next check with absl::CancelledError, releasing the device memory it held. Cancel,
// WatchJob, shutdown and deadlines all hang off this one mechanism.
//
// Thread-safety: the callback is called from the thread running the engine call.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace prunerd {

struct Progress {
  std::string stage;    // "load", "calibrate", "prune", "eval_dense", "eval_pruned", "write"
  int64_t layer = 0;    // 0-based index of the layer just finished or being worked on
  int64_t layers = 0;   // layers in the stage (0 when the stage has none)
  double fraction = 0;  // of the whole call, in [0, 1]
  std::string message;  // human-readable detail
  // Set when an evaluation has just finished: the perplexity and what it measured
  // ("dense", "pruned", "calibration_dense", ...).
  std::optional<double> perplexity;
  std::string perplexity_label;
};

// Return true to continue, false to cancel.
using ProgressCallback = std::function<bool(const Progress&)>;

}  // namespace prunerd
