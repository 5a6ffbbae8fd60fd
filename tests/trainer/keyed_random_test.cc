// Tests of trainer/keyed_random: Philox4x32-10 known answers, determinism per key,
// statistics of uniforms, normals and masks, and the keyed shuffle. The Fill calls' vector
// passes are forced one by one (KeyedRandom::LimitIsa), so each path the host can run is
// checked against the scalar draws.
#include "trainer/model/keyed_random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <numeric>

#include "cluster/base/error.h"

namespace flexmoe {
namespace {

// The Fill paths this CPU can run: scalar, AVX2, AVX-512 (up to the host's).
std::vector<CpuIsa> TestableIsas() {
  std::vector<CpuIsa> isas;
  for (CpuIsa isa : {CpuIsa::kScalar, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (UsableIsa(isa) == isa) isas.push_back(isa);
  }
  return isas;
}

// Fill calls on the path `isa` against the single draws they stand for.
void FillMatchesSingleDraws(CpuIsa isa);
void MaskMatchesSingleDraws(CpuIsa isa);

TEST(PhiloxTest, KnownAnswers) {
  // Random123's kat_vectors for philox4x32_10: counter, key -> output.
  EXPECT_EQ(Philox4x32({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(Philox4x32({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(Philox4x32({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(KeyedRandomTest, SameKeySameNumbers) {
  KeyedRandom a(7, {1, 2, 3, 4});
  KeyedRandom b(7, std::vector<uint64_t>{1, 2, 3, 4});
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.NextU32(), b.NextU32());
  for (int i = 0; i < 1000; ++i) {
    const float x = a.Normal(), y = b.Normal();
    ASSERT_EQ(std::memcmp(&x, &y, sizeof(float)), 0);
  }
}

// Pinned outputs: the numbers must never change across compilers and machines (a change
// alters every dropout mask and shuffle of a resumed or reproduced run).
TEST(KeyedRandomTest, PinnedValues) {
  KeyedRandom rng(42, {1, 2, 3});
  const uint32_t u0 = rng.NextU32(), u1 = rng.NextU32(), u2 = rng.NextU32();
  const float uniform = rng.Uniform();
  const float n0 = rng.Normal(), n1 = rng.Normal();
  EXPECT_EQ(u0, 0x8095d977u);
  EXPECT_EQ(u1, 0x2edb6f27u);
  EXPECT_EQ(u2, 0xc0463f18u);
  uint32_t bits[3];
  std::memcpy(&bits[0], &uniform, 4);
  std::memcpy(&bits[1], &n0, 4);
  std::memcpy(&bits[2], &n1, 4);
  EXPECT_EQ(bits[0], 0x3f0c0acfu);  // 0.547...
  EXPECT_EQ(bits[1], 0x40034837u);  // 2.051...
  EXPECT_EQ(bits[2], 0xbd016ab1u);  // -0.0316...
}

TEST(KeyedRandomTest, DifferentKeysDifferentStreams) {
  auto first = [](KeyedRandom rng) {
    std::vector<uint32_t> v(8);
    for (uint32_t& x : v) x = rng.NextU32();
    return v;
  };
  const auto base = first(KeyedRandom(1, {1, 2}));
  EXPECT_NE(base, first(KeyedRandom(2, {1, 2})));
  EXPECT_NE(base, first(KeyedRandom(1, {2, 1})));
  EXPECT_NE(base, first(KeyedRandom(1, {1, 2, 0})));
  EXPECT_NE(base, first(KeyedRandom(1, {1})));
  EXPECT_NE(base, first(KeyedRandom(1, {1, 2 + (uint64_t{1} << 32)})));
  EXPECT_NE(first(KeyedRandom(1, {})), first(KeyedRandom(1, {0})));
}

TEST(KeyedRandomTest, NormalStatisticsAcrossKeys) {
  // One normal from each of 1e5 per-sample keys (how dropout and noise use it), and a
  // long stream from one key: mean 0 (s.e. 0.0032), variance 1 (s.e. 0.0045), and no
  // correlation between neighbouring keys (s.e. 0.0032).
  const int n = 100000;
  std::vector<double> per_key(n), stream(n);
  KeyedRandom long_stream(5, {9});
  for (int i = 0; i < n; ++i) {
    per_key[i] = KeyedRandom(5, {3, 0, 17, static_cast<uint64_t>(i)}).Normal();
    stream[i] = long_stream.Normal();
  }
  for (const auto* v : {&per_key, &stream}) {
    const double mean = std::accumulate(v->begin(), v->end(), 0.0) / n;
    double var = 0, skew = 0, kurt = 0;
    for (double x : *v) {
      var += (x - mean) * (x - mean) / n;
      skew += std::pow(x - mean, 3) / n;
      kurt += std::pow(x - mean, 4) / n;
    }
    EXPECT_NEAR(mean, 0, 0.02);
    EXPECT_NEAR(var, 1, 0.03);
    EXPECT_NEAR(skew, 0, 0.05);
    EXPECT_NEAR(kurt, 3, 0.1);
    // Fraction within one sigma: 0.6827.
    const double within =
        std::count_if(v->begin(), v->end(), [](double x) { return std::fabs(x) < 1; }) /
        static_cast<double>(n);
    EXPECT_NEAR(within, 0.6827, 0.008);
  }
  double corr = 0;
  for (int i = 0; i + 1 < n; ++i) corr += per_key[i] * per_key[i + 1] / n;
  EXPECT_NEAR(corr, 0, 0.02);
}

TEST(KeyedRandomTest, NormalMatchesLibmBoxMuller) {
  // Our log/sin/cos polynomials agree with libm to float precision.
  KeyedRandom rng(11, {1});
  KeyedRandom twin = rng;
  for (int i = 0; i < 10000; ++i) {
    const double u1 = twin.UniformDouble(), u2 = twin.UniformDouble();
    const double r = std::sqrt(-2 * std::log(u1));
    const float z0 = rng.Normal(), z1 = rng.Normal();
    ASSERT_NEAR(z0, r * std::cos(2 * M_PI * u2), 1e-6 * std::max(1.0, r)) << i;
    ASSERT_NEAR(z1, r * std::sin(2 * M_PI * u2), 1e-6 * std::max(1.0, r)) << i;
  }
}

TEST(KeyedRandomTest, UniformsInOpenInterval) {
  KeyedRandom rng(3, {4});
  std::vector<float> u(100000);
  rng.FillUniform(u.data(), u.size());
  double sum = 0;
  for (float x : u) {
    ASSERT_GT(x, 0.0f);
    ASSERT_LT(x, 1.0f);
    sum += x;
  }
  EXPECT_NEAR(sum / u.size(), 0.5, 0.005);  // s.e. 0.0009
  for (int i = 0; i < 100000; ++i) {
    const double d = rng.UniformDouble();
    ASSERT_GT(d, 0.0);
    ASSERT_LT(d, 1.0);
  }
}

TEST(KeyedRandomTest, UniformIntIsUniform) {
  KeyedRandom rng(8, {2});
  const int n = 100000, bound = 10;
  std::vector<int> counts(bound, 0);
  for (int i = 0; i < n; ++i) {
    const uint32_t x = rng.UniformInt(bound);
    ASSERT_LT(x, static_cast<uint32_t>(bound));
    ++counts[x];
  }
  double chi2 = 0;
  for (int c : counts) chi2 += std::pow(c - n / bound, 2) / (n / bound);
  EXPECT_LT(chi2, 27.9);  // chi-square, 9 degrees of freedom, p = 0.001
  EXPECT_EQ(rng.UniformInt(1), 0u);
  EXPECT_THROW(rng.UniformInt(0), Error);
  EXPECT_LT(rng.UniformInt(0xffffffffu), 0xffffffffu);
}

TEST(KeyedRandomTest, BernoulliMask) {
  KeyedRandom rng(1, {6});
  std::vector<float> mask(100000);
  rng.FillBernoulliMask(mask.data(), mask.size(), 0.3f, 1 / 0.3f);
  size_t kept = 0;
  for (float x : mask) {
    ASSERT_TRUE(x == 0.0f || x == 1 / 0.3f);
    kept += x != 0.0f;
  }
  EXPECT_NEAR(kept / 100000.0, 0.3, 0.007);  // s.e. 0.0015
  rng.FillBernoulliMask(mask.data(), mask.size(), 1.0f, 2.0f);
  EXPECT_TRUE(std::all_of(mask.begin(), mask.end(), [](float x) { return x == 2.0f; }));
  rng.FillBernoulliMask(mask.data(), mask.size(), 0.0f, 2.0f);
  EXPECT_TRUE(std::all_of(mask.begin(), mask.end(), [](float x) { return x == 0.0f; }));
  EXPECT_THROW(rng.FillBernoulliMask(mask.data(), 1, 1.5f, 1.0f), Error);
  EXPECT_THROW(rng.FillBernoulliMask(mask.data(), 1, NAN, 1.0f), Error);
}

// FillNormal (whole Philox blocks at a time, vectorised where the CPU allows) draws exactly
// what Normal() draws one by one: from a fresh stream, after a spare value, and mid-block,
// over lengths below, at and past the vector pass; both streams end at the same place.
TEST(KeyedRandomTest, FillMatchesSingleDraws) {
  for (CpuIsa isa : TestableIsas()) {
    SCOPED_TRACE(IsaName(isa));
    FillMatchesSingleDraws(isa);
  }
}

TEST(KeyedRandomTest, BernoulliMaskEqualsPerElementUniformComparison) {
  for (CpuIsa isa : TestableIsas()) {
    SCOPED_TRACE(IsaName(isa));
    MaskMatchesSingleDraws(isa);
  }
}

TEST(KeyedRandomTest, EveryIsaGivesTheSameBits) {
  std::vector<float> mask0, normal0;
  for (CpuIsa isa : TestableIsas()) {
    KeyedRandom rng(77, {1, 2, 3});
    rng.LimitIsa(isa);
    std::vector<float> mask(5003), normal(4097);
    rng.FillBernoulliMask(mask.data(), mask.size(), 0.9f, 1.0f / 0.9f);
    rng.FillNormal(normal.data(), normal.size());
    if (isa == CpuIsa::kScalar) {
      mask0 = mask;
      normal0 = normal;
      continue;
    }
    EXPECT_EQ(std::memcmp(mask.data(), mask0.data(), mask.size() * sizeof(float)), 0)
        << IsaName(isa);
    EXPECT_EQ(std::memcmp(normal.data(), normal0.data(), normal.size() * sizeof(float)), 0)
        << IsaName(isa);
  }
  std::cout << "keyed random paths tested up to " << IsaName(HostIsa()) << "\n";
}

void FillMatchesSingleDraws(CpuIsa isa) {
  for (int skip : {0, 1, 2}) {
    for (size_t n : {7, 31, 32, 33, 64, 101, 1000, 4099}) {
      KeyedRandom a(2, {3, n}), b(2, {3, n});
      a.LimitIsa(isa);
      for (int i = 0; i < skip; ++i) {
        if (i == 0) {
          EXPECT_EQ(a.Normal(), b.Normal());  // leaves a spare value
        } else {
          EXPECT_EQ(a.NextU32(), b.NextU32());  // then a part-used block
        }
      }
      std::vector<float> filled(n);
      a.FillNormal(filled.data(), filled.size());
      for (size_t i = 0; i < n; ++i) {
        const float x = b.Normal();
        ASSERT_EQ(std::memcmp(&filled[i], &x, sizeof(float)), 0)
            << "skip " << skip << ", " << n << " values, value " << i << ": " << filled[i]
            << " against " << x;
      }
      EXPECT_EQ(a.Normal(), b.Normal());
      EXPECT_EQ(a.NextU32(), b.NextU32());
    }
  }
}

TEST(KeyedShuffleTest, DeterministicPermutation) {
  std::vector<uint32_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0u);
  std::vector<uint32_t> a = identity, b = identity, c = identity;
  KeyedShuffle(a, 0, {1, 2});
  KeyedShuffle(b, 0, {1, 2});
  KeyedShuffle(c, 0, {1, 3});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, identity);
  std::vector<uint32_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, identity);

  std::vector<uint32_t> empty, one = {5};
  KeyedShuffle(empty, 0, {});
  KeyedShuffle(one, 0, {});
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(one, std::vector<uint32_t>{5});
}

TEST(KeyedShuffleTest, EveryPositionEquallyLikely) {
  // Where element 0 of 4 lands over 40000 keys: 1/4 each (chi-square, 3 dof).
  std::vector<int> counts(4, 0);
  for (uint64_t epoch = 0; epoch < 40000; ++epoch) {
    std::vector<uint32_t> v = {0, 1, 2, 3};
    KeyedShuffle(v, 9, {epoch});
    ++counts[std::find(v.begin(), v.end(), 0u) - v.begin()];
  }
  double chi2 = 0;
  for (int c : counts) chi2 += std::pow(c - 10000, 2) / 10000;
  EXPECT_LT(chi2, 16.3);  // p = 0.001
}

// The block-wise mask fill draws the same words as per-element Uniform() < keep_prob,
// whatever the position inside a Philox block when it starts, and across the 32-, 16- and
// 8-block vector passes and their scalar tail.
void MaskMatchesSingleDraws(CpuIsa isa) {
  for (size_t skip : {0, 1, 2, 3, 5}) {
    for (size_t n : {0, 1, 3, 4, 7, 16, 37, 64, 131, 200, 1000, 4099}) {
      KeyedRandom a(9, {skip, n}), b(9, {skip, n});
      a.LimitIsa(isa);
      for (size_t i = 0; i < skip; ++i) {
        a.NextU32();
        b.NextU32();
      }
      std::vector<float> mask(n);
      a.FillBernoulliMask(mask.data(), n, 0.3f, 10.0f);
      for (size_t i = 0; i < n; ++i) {
        EXPECT_EQ(mask[i], b.Uniform() < 0.3f ? 10.0f : 0.0f) << skip << " " << n << " " << i;
      }
      EXPECT_EQ(a.NextU32(), b.NextU32());  // both streams at the same position afterwards
    }
  }
}

}  // namespace
}  // namespace flexmoe
