// Keyed dropout-mask generation per training step at the ADNI-like shapes (batch 8, 4 heads,
// 64 tokens, D 128): the attention-weight mask and three activation masks, as the model
// draws them. Usage: keyed_mask_bench [--steps N]
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "trainer/model/keyed_tensors.h"

int main(int argc, char** argv) {
  int steps = 20;
  if (argc == 3 && std::strcmp(argv[1], "--steps") == 0) steps = std::stoi(argv[2]);
  flexmoe::StepKey key{1, 0, 0, {0, 1, 2, 3, 4, 5, 6, 7}};
  for (int repeat = 0; repeat < 3; ++repeat) {
    auto start = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) {
      key.step = s;
      flexmoe::KeyedTensor(key, flexmoe::RandomSite::kAttentionWeights, 0, {4, 64, 64},
                           flexmoe::KeyedKind::kMask, 0.5);
      for (int site = 0; site < 3; ++site) {
        flexmoe::KeyedTensor(key, flexmoe::RandomSite::kResidual1, site, {64, 128},
                             flexmoe::KeyedKind::kMask, 0.5);
      }
    }
    double ms =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * 1e3;
    std::printf("{\"bench\": \"keyed_masks\", \"values_per_step\": %d, \"ms_per_step\": %.3f}\n",
                8 * (4 * 64 * 64 + 3 * 64 * 128), ms / steps);
  }
  return 0;
}
