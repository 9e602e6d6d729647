#include "core/methods/registry.h"

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/methods/barber.h"
#include "core/methods/magnitude_wanda.h"
#include "core/methods/sparsegpt.h"

namespace prunerd {

absl::StatusOr<std::unique_ptr<LayerPruner>> MakePruner(const v1::JobSpec& input) {
  const v1::JobSpec spec = WithDefaults(input);
  switch (spec.method()) {
    case v1::METHOD_MAGNITUDE: return MakeMagnitudePruner();
    case v1::METHOD_WANDA: return MakeWandaPruner();
    case v1::METHOD_SPARSEGPT: return MakeSparseGptPruner(spec.sparsegpt());
    case v1::METHOD_BARBER: {
      const v1::Method init = spec.barber().init();
      if (init != v1::METHOD_MAGNITUDE && init != v1::METHOD_WANDA &&
          init != v1::METHOD_SPARSEGPT) {
        return absl::InvalidArgumentError("barber.init: must be magnitude, wanda or sparsegpt");
      }
      v1::JobSpec init_spec = spec;
      init_spec.set_method(init);
      ASSIGN_OR_RETURN(std::unique_ptr<LayerPruner> init_pruner, MakePruner(init_spec));
      return MakeBarberPruner(spec.barber(), std::move(init_pruner));
    }
    default:
      return absl::UnimplementedError(
          absl::StrCat("method: ", EnumName(spec.method()),
                       " has no layer pruner (transact is structural: TransActPrune)"));
  }
}

}  // namespace prunerd
