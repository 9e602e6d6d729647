#include "core/common/build_info.h"

#ifndef PRUNERD_VERSION
#error "PRUNERD_VERSION is set by core/common/CMakeLists.txt"
#endif
#ifndef PRUNERD_GIT_COMMIT
#error "PRUNERD_GIT_COMMIT is set by core/common/CMakeLists.txt"
#endif

namespace prunerd {

std::string PrunerdVersion() { return PRUNERD_VERSION; }
std::string PrunerdCommit() { return PRUNERD_GIT_COMMIT; }

}  // namespace prunerd
