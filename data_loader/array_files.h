// Matrices of one modality stored as arrays: a NumPy .npy file with an ids file, or an HDF5
// file (AnnData .h5ad or plain HDF5) holding a dense dataset or a CSR group. Rows are read
// one at a time (pread or an HDF5 hyperslab), so that memory does not grow with the file.
// Bad input throws kInvalidArgument naming the file, the dataset and the row or line: a
// wrong dtype or shape, a truncated file, duplicate ids, ids that do not match the rows.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flexmoe {

class ArrayMatrix {
 public:
  virtual ~ArrayMatrix() = default;
  size_t rows() const { return ids_.size(); }
  size_t cols() const { return names_.size(); }
  // Row r's subject id and the column names.
  const std::vector<std::string>& ids() const { return ids_; }
  const std::vector<std::string>& names() const { return names_; }
  // Row r as cols() doubles.
  virtual void ReadRow(size_t r, double* out) = 0;
  // The file, for messages.
  const std::string& path() const { return path_; }
  // HDF5: the bytes of chunk cache the matrix is read through, as the library reports them
  // in use (its default 1 MB where that holds a row of chunks); 0 for other formats.
  virtual size_t chunk_cache_bytes() const { return 0; }

 protected:
  std::string path_;
  std::vector<std::string> ids_;
  std::vector<std::string> names_;
};

// A .npy file (format 1.0-3.0; '<f4' or '<f8', C order, two dimensions) whose row i belongs
// to line i of `ids_path` (one id per line; a first line "id" is a header). Columns are
// named "<prefix>[j]".
std::unique_ptr<ArrayMatrix> OpenNpyMatrix(const std::string& path, const std::string& ids_path,
                                           const std::string& prefix);

// An HDF5 file's matrix `matrix` (a 2-D numeric dataset, or a CSR group with data, indices
// and indptr and a shape attribute, as AnnData writes) with ids from the string dataset
// `ids` ("": AnnData's obs index). Columns take AnnData's var index when it fits, else
// "<prefix>[j]".
std::unique_ptr<ArrayMatrix> OpenHdf5Matrix(const std::string& path, const std::string& matrix,
                                            const std::string& ids, const std::string& prefix);

// The flat C-order positions of the non-zero entries of a .npy mask of `shape` (bool, uint8,
// int or float): a CNN3D modality's voxels (config field volume_mask).
std::vector<int64_t> ReadVolumeMask(const std::string& path, const std::vector<int64_t>& shape);

}  // namespace flexmoe
