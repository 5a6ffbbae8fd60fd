// Combination enumeration: MODEL.md's order for M = 4, and the general rule for M = 1..8.
#include "data_loader/combinations.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace flexmoe {
namespace {

TEST(CombinationsTest, FourModalitiesMatchModelMd) {
  Combinations c(4);
  ASSERT_EQ(c.size(), 15);
  const std::vector<std::vector<int>> expected = {
      {0, 1, 2, 3}, {0, 1, 2}, {0, 1, 3}, {0, 2, 3}, {1, 2, 3}, {0, 1}, {0, 2}, {0, 3},
      {1, 2},       {1, 3},    {2, 3},    {0},       {1},       {2},    {3}};
  for (int i = 0; i < 15; ++i) EXPECT_EQ(c.Members(i), expected[i]) << "index " << i;
  EXPECT_EQ(c.Name(5, {"image", "genomic", "clinical", "biospecimen"}), "image+genomic");
}

// itertools.combinations order: by size descending, then lexicographic member lists.
TEST(CombinationsTest, OrderAndBijectionForOneToEightModalities) {
  for (int m = 1; m <= 8; ++m) {
    Combinations c(m);
    ASSERT_EQ(c.size(), (1 << m) - 1) << "M=" << m;
    EXPECT_EQ(c.Size(0), m);
    EXPECT_EQ(c.Index(0), -1);
    for (int i = 0; i < c.size(); ++i) {
      EXPECT_EQ(c.Index(c.Mask(i)), i);
      if (i + 1 < c.size()) {
        int a = c.Size(i);
        int b = c.Size(i + 1);
        ASSERT_GE(a, b) << "M=" << m << " index " << i;
        if (a == b) {
          EXPECT_LT(c.Members(i), c.Members(i + 1)) << "M=" << m << " index " << i;
        }
      }
    }
    EXPECT_EQ(c.Size(c.size() - 1), 1);
    EXPECT_EQ(c.Members(c.size() - 1), std::vector<int>{m - 1});
  }
}

}  // namespace
}  // namespace flexmoe
