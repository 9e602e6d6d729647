# prunerd eval / prunerd oneshot (torch-free: they call core/api/engine.h).
prunerd_cc_library(NAME prunerd_offline
  SRCS ${CMAKE_CURRENT_LIST_DIR}/offline_commands.cc
  HDRS ${CMAKE_CURRENT_LIST_DIR}/offline_commands.h
  DEPS prunerd_engine prunerd_api prunerd_common
  PRIVATE_DEPS nlohmann_json::nlohmann_json absl::str_format)
