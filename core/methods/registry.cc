#include "core/methods/registry.h"

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/methods/barber.h"
#include "core/methods/magnitude_wanda.h"
#include "core/methods/sparsegpt.h"

namespace prunerd {

absl::StatusOr<std::unique_ptr<LayerPruner>> MakePruner(const PruneJobSpec& spec) {
  switch (spec.method) {
    case Method::kMagnitude: return MakeMagnitudePruner();
    case Method::kWanda: return MakeWandaPruner();
    case Method::kSparseGpt: return MakeSparseGptPruner(spec.sparsegpt);
    case Method::kBarber: {
      if (spec.barber.init == Method::kBarber || spec.barber.init == Method::kTransAct) {
        return absl::InvalidArgumentError("barber.init: must be magnitude, wanda or sparsegpt");
      }
      PruneJobSpec init_spec = spec;
      init_spec.method = spec.barber.init;
      ASSIGN_OR_RETURN(std::unique_ptr<LayerPruner> init, MakePruner(init_spec));
      return MakeBarberPruner(spec.barber, std::move(init));
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("method: ", std::string(MethodName(spec.method)),
                       " is not available in this build yet"));
  }
}

}  // namespace prunerd
