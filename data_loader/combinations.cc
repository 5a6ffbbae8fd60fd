// Enumeration of modality combinations in MODEL.md's order.
#include "data_loader/combinations.h"

#include <glog/logging.h>

namespace flexmoe {
namespace {

// Appends all subsets of {0..m-1} of `size` elements in itertools.combinations order.
void AppendOfSize(int m, int size, int first, uint32_t mask, int chosen,
                  std::vector<uint32_t>* out) {
  if (chosen == size) {
    out->push_back(mask);
    return;
  }
  for (int i = first; i <= m - (size - chosen); ++i) {
    AppendOfSize(m, size, i + 1, mask | (1u << i), chosen + 1, out);
  }
}

}  // namespace

Combinations::Combinations(int num_modalities) : num_modalities_(num_modalities) {
  CHECK(num_modalities >= 1 && num_modalities <= 8) << "modalities: " << num_modalities;
  for (int size = num_modalities; size >= 1; --size) {
    AppendOfSize(num_modalities, size, 0, 0, 0, &masks_);
  }
  index_of_mask_.assign(1u << num_modalities, -1);
  for (int i = 0; i < size(); ++i) index_of_mask_[masks_[i]] = i;
}

std::vector<int> Combinations::Members(int index) const {
  std::vector<int> members;
  uint32_t mask = Mask(index);
  for (int m = 0; m < num_modalities_; ++m) {
    if (mask & (1u << m)) members.push_back(m);
  }
  return members;
}

int Combinations::Size(int index) const { return __builtin_popcount(Mask(index)); }

std::string Combinations::Name(int index, const std::vector<std::string>& modality_names) const {
  std::string name;
  for (int m : Members(index)) {
    if (!name.empty()) name += "+";
    name += m < static_cast<int>(modality_names.size()) ? modality_names[m] : std::to_string(m);
  }
  return name;
}

}  // namespace flexmoe
