// Tensors to and from checkpoint files: one safetensors file of float32 tensors written
// atomically with its manifest entry (size, CRC32C, tensors), and a shape-checked copy of
// a stored tensor into a live one (any device). Shared by the training-state checkpoints
// and the best-parameters export.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "trainer/checkpoint/checkpoint_files.h"

namespace flexmoe {

// Writes `tensors` (any device, converted to float32) as dir/name; the entry's tensor
// shapes are filled in. `format` goes into the file's metadata.
FileEntry WriteTensorFile(const std::vector<std::pair<TensorEntry, at::Tensor>>& tensors,
                          const std::string& dir, const std::string& name, int rank,
                          const std::string& format);

// Copies float32 tensor `name` of `file` into `target` (a live parameter or a view of one);
// kInvalidArgument naming the file and tensor when its shape differs.
void CopyTensorInto(const SafetensorsFile& file, const std::string& name, at::Tensor target);

}  // namespace flexmoe
