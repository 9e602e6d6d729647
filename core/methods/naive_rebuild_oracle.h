// File: naive_rebuild_oracle.h  (test-only; includes ATen)
//
// A deliberately plain re-implementation of LLM-Barber's mask rebuild (methods.md §5.4), one
// comparison group at a time with std::vector and std::stable_sort, used by the method tests
// as the oracle for the vectorised barber_mask_rebuild.h. Groups are lists of
// (matrix index, flat index) built from the granularity.
//
//   auto groups = NaiveGroups(shapes, v1::BARBER_GRANULARITY_OUTPUT1);
//   NaiveGroupResult r = NaiveRebuildGroup(scores, pruned, /*tau=*/0.5);
//
// Thread-safety: pure functions.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/api/job_spec.h"

namespace prunerd::testing {

struct NaiveGroupResult {
  std::vector<bool> pruned;  // the group's new mask
  int64_t profitable = 0;    // R
  int64_t k = 0;             // floor(R·τ)
};

// One group: pruned scores descending, kept ascending (ties by position), R = the profitable
// prefix, swap the first k of each list.
inline NaiveGroupResult NaiveRebuildGroup(const std::vector<float>& s,
                                          const std::vector<bool>& pruned, double tau) {
  std::vector<int64_t> g, p;
  for (size_t i = 0; i < s.size(); ++i) (pruned[i] ? g : p).push_back(static_cast<int64_t>(i));
  std::stable_sort(g.begin(), g.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
  std::stable_sort(p.begin(), p.end(), [&](int64_t a, int64_t b) { return s[a] < s[b]; });
  int64_t r = 0;
  while (r < static_cast<int64_t>(std::min(g.size(), p.size())) && s[g[r]] > s[p[r]]) ++r;
  NaiveGroupResult out{pruned, r, static_cast<int64_t>(std::floor(static_cast<double>(r) * tau))};
  for (int64_t i = 0; i < out.k; ++i) {
    out.pruned[g[i]] = false;
    out.pruned[p[i]] = true;
  }
  return out;
}

using NaiveGroup = std::vector<std::pair<size_t, int64_t>>;  // (matrix, flat index)

// The comparison groups of a block of matrices with the given [rows, cols] shapes.
inline std::vector<NaiveGroup> NaiveGroups(const std::vector<std::array<int64_t, 2>>& shapes,
                                           v1::BarberGranularity g) {
  std::vector<NaiveGroup> groups;
  for (size_t mi = 0; mi < shapes.size(); ++mi) {
    const int64_t r = shapes[mi][0], c = shapes[mi][1];
    if (g == v1::BARBER_GRANULARITY_OUTPUT1) {
      for (int64_t i = 0; i < r; ++i) {
        groups.emplace_back();
        for (int64_t j = 0; j < c; ++j) groups.back().push_back({mi, i * c + j});
      }
    } else if (g == v1::BARBER_GRANULARITY_INPUT1) {
      for (int64_t j = 0; j < c; ++j) {
        groups.emplace_back();
        for (int64_t i = 0; i < r; ++i) groups.back().push_back({mi, i * c + j});
      }
    } else {
      if (g == v1::BARBER_GRANULARITY_LAYER || groups.empty()) groups.emplace_back();
      for (int64_t f = 0; f < r * c; ++f) groups.back().push_back({mi, f});
    }
  }
  return groups;
}

inline std::vector<float> ToFloatVector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

inline std::vector<bool> ToBoolVector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kBool).contiguous().reshape({-1});
  std::vector<bool> v(c.numel());
  for (int64_t i = 0; i < c.numel(); ++i) v[i] = c.data_ptr<bool>()[i];
  return v;
}

}  // namespace prunerd::testing
