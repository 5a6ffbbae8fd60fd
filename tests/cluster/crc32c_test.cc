// CRC32C known answers (RFC 3720 B.4 and the "123456789" check value) on each path this CPU
// can run (the table and SSE4.2), odd lengths and alignments, and extension in pieces.
#include "cluster/base/crc32c.h"

#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <string>
#include <vector>

namespace flexmoe {
namespace {

std::vector<CpuIsa> TestableIsas() {
  std::vector<CpuIsa> isas = {CpuIsa::kScalar};
  if (UsableIsa(CpuIsa::kSse42) == CpuIsa::kSse42) isas.push_back(CpuIsa::kSse42);
  return isas;
}

TEST(Crc32cTest, KnownAnswers) {
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), ascending(32), descending(32);
  std::iota(ascending.begin(), ascending.end(), 0);
  for (int i = 0; i < 32; ++i) descending[i] = static_cast<uint8_t>(31 - i);
  const std::string check = "123456789";
  for (CpuIsa isa : TestableIsas()) {
    SCOPED_TRACE(IsaName(isa));
    EXPECT_EQ(Crc32c(check.data(), check.size(), 0, isa), 0xE3069283u);
    EXPECT_EQ(Crc32c(zeros.data(), zeros.size(), 0, isa), 0x8A9136AAu);
    EXPECT_EQ(Crc32c(ones.data(), ones.size(), 0, isa), 0x62A8AB43u);
    EXPECT_EQ(Crc32c(ascending.data(), ascending.size(), 0, isa), 0x46DD794Eu);
    EXPECT_EQ(Crc32c(descending.data(), descending.size(), 0, isa), 0x113FDB5Cu);
    EXPECT_EQ(Crc32c(nullptr, 0, 0, isa), 0u);
  }
}

TEST(Crc32cTest, PathsAgreeOnEveryLengthAndAlignment) {
  std::vector<uint8_t> data(300);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t n = 0; n + offset <= data.size(); n += 13) {
      const uint32_t table = Crc32c(data.data() + offset, n, 0, CpuIsa::kScalar);
      for (CpuIsa isa : TestableIsas()) {
        ASSERT_EQ(Crc32c(data.data() + offset, n, 0, isa), table)
            << IsaName(isa) << " offset " << offset << " length " << n;
      }
    }
  }
}

TEST(Crc32cTest, ExtendsInPieces) {
  const std::string text = "The quick brown fox jumps over the lazy dog, twice over.";
  for (CpuIsa isa : TestableIsas()) {
    const uint32_t whole = Crc32c(text.data(), text.size(), 0, isa);
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      const uint32_t first = Crc32c(text.data(), cut, 0, isa);
      ASSERT_EQ(Crc32c(text.data() + cut, text.size() - cut, first, isa), whole)
          << IsaName(isa) << " cut at " << cut;
    }
  }
}

}  // namespace
}  // namespace flexmoe
