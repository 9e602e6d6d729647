# TransAct tests (core/methods/transact_test.cc): pure functions (schedule, head scores,
# selection, targets) and the pruning on a random MHA model, stories260K and prose16M.
# Included from core/methods/CMakeLists.txt.
prunerd_cc_test(NAME transact_test TORCH
  SRCS ${CMAKE_CURRENT_LIST_DIR}/transact_test.cc
  DEPS prunerd_engine prunerd_model prunerd_tokenizer prunerd_data ${TORCH_LIBRARIES}
       nlohmann_json::nlohmann_json
  TIMEOUT 600)
