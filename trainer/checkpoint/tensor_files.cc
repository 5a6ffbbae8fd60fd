// WriteTensorFile and CopyTensorInto (tensor_files.h).
#include "trainer/checkpoint/tensor_files.h"

#include <ATen/ATen.h>

#include "cluster/base/error.h"

namespace flexmoe {

FileEntry WriteTensorFile(const std::vector<std::pair<TensorEntry, at::Tensor>>& tensors,
                          const std::string& dir, const std::string& name, int rank,
                          const std::string& format) {
  SafetensorsWriter writer;
  writer.SetMetadata("format", format);
  FileEntry file;
  file.name = name;
  file.rank = rank;
  for (auto [entry, value] : tensors) {
    at::Tensor t = value.detach().to(at::kCPU, at::kFloat).contiguous();
    entry.shape.assign(t.sizes().begin(), t.sizes().end());
    writer.Add(entry.name, SafetensorsDtype::kF32, entry.shape, t.data_ptr<float>(),
               t.numel() * sizeof(float));
    file.tensors.push_back(std::move(entry));
  }
  SafetensorsWriter::Written written = writer.Write(dir + "/" + file.name);
  file.bytes = written.bytes;
  file.crc32c = written.crc32c;
  return file;
}

void CopyTensorInto(const SafetensorsFile& file, const std::string& name, at::Tensor target) {
  std::vector<int64_t> shape(target.sizes().begin(), target.sizes().end());
  at::Tensor host = at::empty(shape, at::kFloat);
  try {
    file.CopyTo(name, SafetensorsDtype::kF32, shape, host.data_ptr<float>(),
                host.numel() * sizeof(float));
  } catch (const Error& e) {
    Fail(ErrorCode::kInvalidArgument, e.what(), " (the checkpoint does not fit this model)");
  }
  at::NoGradGuard no_grad;
  target.copy_(host);
}

}  // namespace flexmoe
