// GatherBytes: lengths by all-gather, then the bytes by one all-to-all to the root.
#include "cluster/comm/gather_bytes.h"

#include <ATen/ATen.h>

#include <cstring>

#include "cluster/base/error.h"

namespace flexmoe {

std::vector<std::string> GatherBytes(Communicator& comm, const std::string& mine, int root) {
  const int w = comm.size();
  at::Tensor lengths =
      comm.AllGather(at::tensor({static_cast<int64_t>(mine.size())}, at::kLong)).reshape({-1});
  std::vector<int64_t> send(w, 0), recv(w, 0);
  send[root] = static_cast<int64_t>(mine.size());
  if (comm.rank() == root) {
    for (int r = 0; r < w; ++r) recv[r] = lengths[r].item<int64_t>();
  }
  at::Tensor bytes = at::empty({static_cast<int64_t>(mine.size())}, at::kByte);
  if (!mine.empty()) std::memcpy(bytes.data_ptr(), mine.data(), mine.size());
  at::Tensor received = comm.AllToAll(bytes, send, recv);
  std::vector<std::string> out;
  if (comm.rank() != root) return out;
  const char* data = static_cast<const char*>(received.data_ptr());
  int64_t offset = 0;
  for (int r = 0; r < w; ++r) {
    out.push_back(recv[r] > 0 ? std::string(data + offset, static_cast<size_t>(recv[r]))
                              : std::string());
    offset += recv[r];
  }
  return out;
}

void BroadcastBytes(Communicator& comm, std::string* bytes, int root) {
  at::Tensor length = at::tensor({static_cast<int64_t>(bytes->size())}, at::kLong);
  comm.Broadcast(length, root);
  at::Tensor data = at::zeros({length[0].item<int64_t>()}, at::kByte);
  if (comm.rank() == root && !bytes->empty())
    std::memcpy(data.data_ptr(), bytes->data(), bytes->size());
  comm.Broadcast(data, root);
  if (data.numel() == 0) {
    bytes->clear();
    return;
  }
  bytes->assign(static_cast<const char*>(data.data_ptr()), static_cast<size_t>(data.numel()));
}

void RunOnRankZero(Communicator* world, const std::function<void()>& task) {
  if (world == nullptr || world->size() == 1) return task();
  int64_t code = -1;
  std::string message;
  if (world->rank() == 0) {
    try {
      task();
    } catch (const Error& e) {
      code = static_cast<int64_t>(e.code());
      message = e.what();
    } catch (const std::exception& e) {
      code = static_cast<int64_t>(ErrorCode::kInternal);
      message = e.what();
    }
  }
  at::Tensor status = at::tensor({code}, at::kLong);
  world->Broadcast(status, 0);
  if (status[0].item<int64_t>() < 0) return;
  BroadcastBytes(*world, &message, 0);
  throw Error(static_cast<ErrorCode>(status[0].item<int64_t>()), message);
}

}  // namespace flexmoe
