// Explicit parameter groups: every model parameter is either replicated on every worker
// (encoders, bank, attention, norms, routers, position embedding, head) or the grouped
// weights of one sparse layer's experts, held [local experts, ...] by their owners. The
// model says which (FlexMoeModelImpl::Parameters); nothing decides by matching names.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace flexmoe {

struct ParameterGroup {
  enum Kind { kReplicated, kExpert };
  Kind kind = kReplicated;
  int layer = -1;  // kExpert: the fusion-layer index of the sparse layer
  // kExpert: the global expert id of each row of dimension 0, ascending.
  std::vector<int64_t> experts;

  bool is_expert() const { return kind == kExpert; }
};

// A parameter of the model: its name in named_parameters(), the live tensor, its group.
struct ModelParameter {
  std::string name;
  at::Tensor tensor;
  ParameterGroup group;
};

}  // namespace flexmoe
