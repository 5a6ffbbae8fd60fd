// Helpers of the communicator tests: expecting a flexmoe::Error with a code and message parts,
// and checking that a tensor holds the same bytes on every rank of a group.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <string>

#include "cluster/base/error.h"
#include "cluster/comm/communicator.h"

namespace flexmoe::testing {

constexpr std::chrono::milliseconds kTestTimeout{30000};

// Runs `fn` and expects it to throw Error(code) whose message contains every one of `parts`.
// Returns the message ("" when nothing or something else was thrown).
template <typename Fn>
std::string ExpectError(Fn&& fn, ErrorCode code, std::initializer_list<std::string> parts = {}) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(ErrorCodeName(e.code()), std::string(ErrorCodeName(code))) << message;
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos)
          << "\"" << message << "\" lacks \"" << part << "\"";
    }
    return message;
  }
  ADD_FAILURE() << "expected flexmoe::Error(" << ErrorCodeName(code) << ")";
  return "";
}

// All-gathers the raw bytes of `tensor` over `group` and expects every rank's to equal rank 0's.
inline void ExpectSameBytesOnAllRanks(Communicator& group, const at::Tensor& tensor) {
  at::Tensor bytes = tensor.contiguous().view({-1}).view(at::kByte);
  at::Tensor all = group.AllGather(bytes);
  for (int r = 1; r < group.size(); ++r) {
    EXPECT_TRUE(at::equal(all[r], all[0])) << "rank " << r << " differs from rank 0";
  }
}

}  // namespace flexmoe::testing
