#include "core/methods/registry.h"

#include "absl/strings/str_cat.h"
#include "core/methods/magnitude_wanda.h"

namespace prunerd {

absl::StatusOr<std::unique_ptr<LayerPruner>> MakePruner(const PruneJobSpec& spec) {
  switch (spec.method) {
    case Method::kMagnitude: return MakeMagnitudePruner();
    case Method::kWanda: return MakeWandaPruner();
    default:
      return absl::UnimplementedError(
          absl::StrCat("method: ", std::string(MethodName(spec.method)),
                       " is not available in this build yet"));
  }
}

}  // namespace prunerd
