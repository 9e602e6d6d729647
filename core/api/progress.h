// File: progress.h
//
// Progress reporting and cancellation for long engine work (loading, calibration, pruning a
// layer, evaluation, writing). The engine calls the callback at least at every layer boundary
// and every few evaluation windows with a v1::EngineProgress (proto/prunerd/v1/engine.proto: a
// Stage, the layer and pass, the fraction of the whole run, and, when an evaluation ends, which
// model it measured); returning false asks the engine to stop, which it does at the next check
// with absl::CancelledError, releasing the device memory it held. Cancel, WatchJob, shutdown and
// deadlines all hang off this one mechanism.
//
// Thread-safety: the callback is called from the thread running the engine call.
#pragma once

#include <functional>

#include "prunerd/v1/engine.pb.h"

namespace prunerd {

// Return true to continue, false to cancel.
using ProgressCallback = std::function<bool(const v1::EngineProgress&)>;

}  // namespace prunerd
