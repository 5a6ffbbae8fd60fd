// MakeProcessGroups: the expert-parallel and expert-data-parallel subgroups of a world.
#include <string>
#include <vector>

#include "cluster/base/error.h"
#include "cluster/comm/communicator.h"

namespace flexmoe {

ProcessGroups MakeProcessGroups(Communicator& world, int expert_parallel_degree) {
  const int size = world.size();
  const int ep = expert_parallel_degree == 0 ? size : expert_parallel_degree;
  if (ep < 0 || size % ep != 0) {
    Fail(ErrorCode::kInvalidArgument, "MakeProcessGroups: expert-parallel degree ",
         expert_parallel_degree, " does not divide the world size ", size);
  }
  ProcessGroups groups;
  groups.world = &world;
  groups.ep_degree = ep;
  // Every rank takes part in every Split (members and non-members alike), in the same order.
  for (int g = 0; g < size / ep; ++g) {
    std::vector<int> ranks;
    for (int r = g * ep; r < (g + 1) * ep; ++r) ranks.push_back(r);
    auto group = world.Split(ranks, "ep" + std::to_string(g));
    if (group) groups.expert_parallel = std::move(group);
  }
  for (int p = 0; p < ep; ++p) {
    std::vector<int> ranks;
    for (int r = p; r < size; r += ep) ranks.push_back(r);
    auto group = world.Split(ranks, "edp" + std::to_string(p));
    if (group) groups.expert_data_parallel = std::move(group);
  }
  return groups;
}

}  // namespace flexmoe
