// File: registry.h  (internal to core/: includes ATen)
//
// Maps a job spec to the LayerPruner that implements its method (magnitude, wanda, sparsegpt,
// barber). TransAct is structural and has its own flow (core/methods/transact.h).
//
// Thread-safety: pure function.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "core/api/job_spec.h"
#include "core/methods/layer_pruner.h"

namespace prunerd {

// Defaults are filled in (WithDefaults) here.
absl::StatusOr<std::unique_ptr<LayerPruner>> MakePruner(const v1::JobSpec& spec);

}  // namespace prunerd
