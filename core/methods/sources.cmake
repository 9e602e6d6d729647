# Sources of the pruning methods. They are compiled into prunerd_engine (core/engine), since the
# executor calls the methods and the methods call the model's forward; tests are declared in
# core/methods/CMakeLists.txt. Paths are relative to this directory.
set(PRUNERD_METHOD_SRCS
  layer_pruner.cc
  masks.cc
  input_stats.cc
  magnitude_wanda.cc
  sparsegpt.cc
  barber_mask_rebuild.cc
  barber_gradients.cc
  barber.cc
  registry.cc
  transact.cc
)
list(TRANSFORM PRUNERD_METHOD_SRCS PREPEND ${CMAKE_CURRENT_LIST_DIR}/)
