// Modality combinations and their index (MODEL.md): the non-empty subsets of M modalities,
// largest first, lexicographic within one size. Index 0 is the full set.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flexmoe {

// A bidirectional map between combination index and modality bit mask (bit m set when
// modality m is observed), for 1 <= M <= 8. Immutable once built; safe to share.
class Combinations {
 public:
  explicit Combinations(int num_modalities);

  int num_modalities() const { return num_modalities_; }
  int size() const { return static_cast<int>(masks_.size()); }
  uint32_t Mask(int index) const { return masks_.at(index); }
  // The combination index of a mask, or -1 for the empty mask.
  int Index(uint32_t mask) const { return index_of_mask_.at(mask); }
  // Observed modality positions of a combination, ascending.
  std::vector<int> Members(int index) const;
  int Size(int index) const;
  // "image+clinical" style name from modality names.
  std::string Name(int index, const std::vector<std::string>& modality_names) const;

 private:
  int num_modalities_;
  std::vector<uint32_t> masks_;
  std::vector<int> index_of_mask_;
};

}  // namespace flexmoe
