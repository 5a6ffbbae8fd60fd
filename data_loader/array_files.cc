// .npy and HDF5 matrices read row by row (array_files.h).
#include "data_loader/array_files.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <unordered_set>

#include "cluster/base/error.h"
#include "cluster/base/file_handles.h"

namespace flexmoe {
namespace {

std::vector<std::string> NumberedNames(const std::string& prefix, size_t n) {
  std::vector<std::string> names(n);
  for (size_t j = 0; j < n; ++j) names[j] = prefix + "[" + std::to_string(j) + "]";
  return names;
}

// Refuses an empty or repeated id, naming `where(i)`.
template <typename Where>
void CheckIds(const std::vector<std::string>& ids, Where where) {
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) Fail(ErrorCode::kInvalidArgument, where(i), ": empty id");
    if (!seen.insert(ids[i]).second) {
      Fail(ErrorCode::kInvalidArgument, where(i), ": duplicate id '", ids[i], "'");
    }
  }
}

// ---- .npy ----

// The value of `key` in the header's Python dict literal, as text.
std::string HeaderField(const std::string& header, const std::string& key,
                        const std::string& path) {
  const size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) {
    Fail(ErrorCode::kInvalidArgument, path, ": .npy header has no '", key, "': ", header);
  }
  size_t begin = header.find(':', at) + 1;
  while (begin < header.size() && header[begin] == ' ') ++begin;
  size_t end = begin;
  if (header[begin] == '(') {
    end = header.find(')', begin) + 1;
  } else if (header[begin] == '\'') {
    end = header.find('\'', begin + 1) + 1;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  return header.substr(begin, end - begin);
}

struct NpyHeader {
  std::string descr;  // as written, quotes included: '<f4'
  bool fortran = false;
  std::vector<uint64_t> shape;
  std::string shape_text;
  uint64_t data_offset = 0;
};

// The header of the .npy file open as `fd` (format 1.0 to 3.0).
NpyHeader ReadNpyHeader(int fd, const std::string& path) {
  char start[12];
  if (::pread(fd, start, sizeof(start), 0) != static_cast<ssize_t>(sizeof(start)) ||
      std::memcmp(start, "\x93NUMPY", 6) != 0) {
    Fail(ErrorCode::kInvalidArgument, path, ": not a .npy file (no \\x93NUMPY magic)");
  }
  const int major = static_cast<unsigned char>(start[6]);
  size_t length, header_at;
  if (major == 1) {
    length = static_cast<unsigned char>(start[8]) | (static_cast<unsigned char>(start[9]) << 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    uint32_t l;
    std::memcpy(&l, start + 8, 4);
    length = l;
    header_at = 12;
  } else {
    Fail(ErrorCode::kInvalidArgument, path, ": .npy format version ", major, " (reads 1 to 3)");
  }
  if (length > (1u << 20)) Fail(ErrorCode::kInvalidArgument, path, ": .npy header too long");
  std::string text(length, '\0');
  if (::pread(fd, text.data(), length, static_cast<off_t>(header_at)) !=
      static_cast<ssize_t>(length)) {
    Fail(ErrorCode::kInvalidArgument, path, ": truncated .npy header");
  }
  NpyHeader header;
  header.data_offset = header_at + length;
  header.descr = HeaderField(text, "descr", path);
  header.fortran = HeaderField(text, "fortran_order", path) != "False";
  header.shape_text = HeaderField(text, "shape", path);
  const std::string& shape = header.shape_text;
  for (size_t at = 1; at < shape.size();) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(shape.c_str() + at, &end, 10);
    if (end == shape.c_str() + at) break;
    header.shape.push_back(v);
    at = static_cast<size_t>(end - shape.c_str());
    while (at < shape.size() && (shape[at] == ',' || shape[at] == ' ')) ++at;
  }
  return header;
}

// Refuses a file shorter than its header's shape says, and a shape whose byte count does not
// fit in 64 bits (a forged header must not wrap the product to a small number).
void CheckNpySize(int fd, const std::string& path, const NpyHeader& header, size_t item) {
  uint64_t need = item;
  for (uint64_t side : header.shape) {
    if (__builtin_mul_overflow(need, side, &need)) {
      Fail(ErrorCode::kInvalidArgument, path, ": shape ", header.shape_text, " is too large");
    }
  }
  if (__builtin_add_overflow(need, header.data_offset, &need)) {
    Fail(ErrorCode::kInvalidArgument, path, ": shape ", header.shape_text, " is too large");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Fail(ErrorCode::kDataLoss, path, ": cannot stat: ", std::strerror(errno));
  }
  if (static_cast<uint64_t>(st.st_size) < need) {
    Fail(ErrorCode::kInvalidArgument, path, ": truncated: ", st.st_size, " bytes, shape ",
         header.shape_text, " needs ", need);
  }
}

// The file at `path` opened for reading; kNotFound naming it when it cannot be.
UniqueFd OpenForReading(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.ok()) Fail(ErrorCode::kNotFound, path, ": cannot open: ", std::strerror(errno));
  return fd;
}

class NpyMatrix : public ArrayMatrix {
 public:
  NpyMatrix(const std::string& path, const std::string& ids_path, const std::string& prefix) {
    path_ = path;
    fd_ = OpenForReading(path);
    ReadHeader();
    names_ = NumberedNames(prefix, cols_);
    ReadIds(ids_path);
  }

  void ReadRow(size_t r, double* out) override {
    const size_t bytes = cols_ * item_;
    buffer_.resize(bytes);
    const off_t at = static_cast<off_t>(data_offset_ + r * bytes);
    size_t done = 0;
    while (done < bytes) {
      const ssize_t n = ::pread(fd_.get(), buffer_.data() + done, bytes - done, at + done);
      if (n <= 0) Fail(ErrorCode::kDataLoss, path_, ": row ", r, ": short read");
      done += static_cast<size_t>(n);
    }
    if (item_ == 4) {
      const float* f = reinterpret_cast<const float*>(buffer_.data());
      for (size_t j = 0; j < cols_; ++j) out[j] = f[j];
    } else {
      std::memcpy(out, buffer_.data(), bytes);
    }
  }

 private:
  void ReadHeader() {
    const NpyHeader header = ReadNpyHeader(fd_.get(), path_);
    data_offset_ = header.data_offset;
    if (header.descr == "'<f4'" || header.descr == "'=f4'") {
      item_ = 4;
    } else if (header.descr == "'<f8'" || header.descr == "'=f8'") {
      item_ = 8;
    } else {
      Fail(ErrorCode::kInvalidArgument, path_, ": dtype ", header.descr,
           ": expected float32 or float64, little-endian ('<f4' or '<f8')");
    }
    if (header.fortran) {
      Fail(ErrorCode::kInvalidArgument, path_,
           ": Fortran order; write it in C order (numpy.ascontiguousarray)");
    }
    if (header.shape.size() != 2) {
      Fail(ErrorCode::kInvalidArgument, path_, ": shape ", header.shape_text,
           ": expected two dimensions (subjects, features)");
    }
    if (header.shape[1] == 0) {
      Fail(ErrorCode::kInvalidArgument, path_, ": shape ", header.shape_text, ": no features");
    }
    rows_ = header.shape[0];
    cols_ = header.shape[1];
    CheckNpySize(fd_.get(), path_, header, item_);
  }

  void ReadIds(const std::string& ids_path) {
    std::ifstream in(ids_path);
    if (!in) Fail(ErrorCode::kNotFound, ids_path, ": cannot open the ids of ", path_);
    std::string line;
    std::vector<int64_t> lines;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      if (n == 1 && line == "id") continue;
      if (line.empty() && in.peek() == EOF) break;
      ids_.push_back(line);
      lines.push_back(n);
    }
    CheckIds(ids_, [&](size_t i) { return ids_path + ":" + std::to_string(lines[i]); });
    if (ids_.size() != rows_) {
      Fail(ErrorCode::kInvalidArgument, ids_path, ": ", ids_.size(), " ids, but ", path_, " has ",
           rows_, " rows");
    }
  }

  UniqueFd fd_;  // closed however the constructor ends
  uint64_t data_offset_ = 0;
  size_t rows_ = 0, cols_ = 0, item_ = 4;
  std::vector<char> buffer_;
};

// ---- HDF5 ----

// An HDF5 handle closed by `close`.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// Silences HDF5's own error printing for the process: errors become our messages.
void QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

bool Exists(hid_t file, const std::string& path) {
  return H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0;
}

// The memory type that reads strings of `type` as variable-length C strings in its character
// set (HDF5 converts none), or null when HDF5 refuses.
std::unique_ptr<Handle> VariableStrings(hid_t type) {
  auto memtype = std::make_unique<Handle>(H5Tcopy(H5T_C_S1), H5Tclose);
  const H5T_cset_t cset = H5Tget_cset(type);
  if (!memtype->ok() || cset < 0 || H5Tset_size(memtype->get(), H5T_VARIABLE) < 0 ||
      H5Tset_cset(memtype->get(), cset) < 0) {
    return nullptr;
  }
  return memtype;
}

std::string ReadStringAttribute(hid_t object, const char* name) {
  if (H5Aexists(object, name) <= 0) return "";
  Handle attribute(H5Aopen(object, name, H5P_DEFAULT), H5Aclose);
  if (!attribute.ok()) return "";
  Handle type(H5Aget_type(attribute.get()), H5Tclose);
  if (!type.ok() || H5Tget_class(type.get()) != H5T_STRING) return "";
  if (H5Tis_variable_str(type.get()) > 0) {
    const auto memtype = VariableStrings(type.get());
    char* value = nullptr;
    if (!memtype || H5Aread(attribute.get(), memtype->get(), &value) < 0 || value == nullptr) {
      return "";
    }
    std::string out(value);
    H5free_memory(value);
    return out;
  }
  const size_t width = H5Tget_size(type.get());
  std::string out(width, '\0');
  if (width == 0 || H5Aread(attribute.get(), type.get(), out.data()) < 0) return "";
  return out.substr(0, out.find('\0'));
}

// The 1-D string dataset at `path` (variable or fixed length).
std::vector<std::string> ReadStrings(hid_t file, const std::string& path,
                                     const std::string& where) {
  Handle data(H5Dopen2(file, path.c_str(), H5P_DEFAULT), H5Dclose);
  if (!data.ok()) Fail(ErrorCode::kInvalidArgument, where, ": no dataset '", path, "'");
  Handle type(H5Dget_type(data.get()), H5Tclose);
  Handle space(H5Dget_space(data.get()), H5Sclose);
  hsize_t n = 0;
  if (!type.ok() || !space.ok() || H5Tget_class(type.get()) != H5T_STRING ||
      H5Sget_simple_extent_ndims(space.get()) != 1 ||
      H5Sget_simple_extent_dims(space.get(), &n, nullptr) != 1) {
    Fail(ErrorCode::kInvalidArgument, where, ": dataset '", path,
         "': expected a 1-D string dataset of ids");
  }
  std::vector<std::string> out(n);
  if (H5Tis_variable_str(type.get()) > 0) {
    const auto memtype = VariableStrings(type.get());
    std::vector<char*> values(n, nullptr);
    if (!memtype ||
        H5Dread(data.get(), memtype->get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) < 0) {
      Fail(ErrorCode::kInvalidArgument, where, ": dataset '", path, "': unreadable strings");
    }
    for (hsize_t i = 0; i < n; ++i) out[i] = values[i] != nullptr ? values[i] : "";
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(memtype->get(), space.get(), H5P_DEFAULT, values.data());
#else
    H5Dvlen_reclaim(memtype->get(), space.get(), H5P_DEFAULT, values.data());
#endif
    return out;
  }
  const size_t width = H5Tget_size(type.get());
  if (width == 0) Fail(ErrorCode::kInvalidArgument, where, ": dataset '", path, "': no width");
  std::vector<char> bytes(n * width);
  if (H5Dread(data.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()) < 0) {
    Fail(ErrorCode::kInvalidArgument, where, ": dataset '", path, "': unreadable strings");
  }
  for (hsize_t i = 0; i < n; ++i) {
    const char* s = bytes.data() + i * width;
    out[i] = std::string(s, strnlen(s, width));
  }
  return out;
}

// AnnData's index of the `group` data frame (obs or var): the dataset its _index attribute
// names, else "_index".
std::string FrameIndex(hid_t file, const std::string& group) {
  if (!Exists(file, group)) return "";
  Handle g(H5Gopen2(file, group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.ok()) return "";
  std::string name = ReadStringAttribute(g.get(), "_index");
  if (name.empty()) name = "_index";
  const std::string path = group + "/" + name;
  return Exists(file, path) ? path : "";
}

bool IsNumeric(hid_t type) {
  const H5T_class_t c = H5Tget_class(type);
  return c == H5T_FLOAT || c == H5T_INTEGER;
}

// What `name` in `file` is (H5I_GROUP, H5I_DATASET), through calls that HDF5 1.10 and
// 1.12+ spell alike (H5Oget_info_by_name changed its signature in 1.12).
H5I_type_t ObjectType(hid_t file, const std::string& name, const std::string& path) {
  Handle object(H5Oopen(file, name.c_str(), H5P_DEFAULT), H5Oclose);
  if (!object.ok()) Fail(ErrorCode::kInvalidArgument, path, ": cannot open '", name, "'");
  const H5I_type_t type = H5Iget_type(object.get());
  if (type == H5I_BADID) Fail(ErrorCode::kInvalidArgument, path, ": '", name, "': unknown kind");
  return type;
}

// The bytes of chunk cache that reading `data` row after row needs so that each chunk is
// decompressed once: every chunk across one row of chunks (a gzip-chunked AnnData matrix
// read with HDF5's default 1 MB cache decompresses a chunk per row). 0 when the dataset is
// not chunked; capped at kMaxChunkCacheBytes.
constexpr size_t kMaxChunkCacheBytes = size_t{256} << 20;
size_t ChunkCacheBytes(hid_t data, int rank, const hsize_t* dims, size_t item) {
  Handle create(H5Dget_create_plist(data), H5Pclose);
  if (!create.ok() || H5Pget_layout(create.get()) != H5D_CHUNKED) return 0;
  hsize_t chunk[2] = {1, 1};
  if (H5Pget_chunk(create.get(), rank, chunk) != rank) return 0;
  size_t bytes = item;
  for (int d = 0; d < rank; ++d) bytes *= chunk[d];
  if (rank == 2 && chunk[1] > 0) bytes *= (dims[1] + chunk[1] - 1) / chunk[1];
  return std::min(kMaxChunkCacheBytes, 2 * bytes);
}

class Hdf5Matrix : public ArrayMatrix {
 public:
  Hdf5Matrix(const std::string& path, const std::string& matrix, const std::string& ids,
             const std::string& prefix)
      : file_(Open(path), H5Fclose) {
    path_ = path;
    matrix_ = matrix.empty() ? "X" : matrix;
    where_ = path + ": " + matrix_;
    if (!Exists(file_.get(), matrix_)) {
      Fail(ErrorCode::kInvalidArgument, path, ": no matrix '", matrix_,
           "' (config field hdf5_matrix)");
    }
    if (ObjectType(file_.get(), matrix_, path) == H5I_GROUP) {
      OpenCsr();
    } else {
      OpenDense();
    }
    const std::string ids_path = ids.empty() ? FrameIndex(file_.get(), "obs") : ids;
    if (ids_path.empty()) {
      Fail(ErrorCode::kInvalidArgument, path,
           ": no ids (no obs index; name a string dataset in hdf5_ids)");
    }
    ids_ = ReadStrings(file_.get(), ids_path, path);
    CheckIds(ids_,
             [&](size_t i) { return path + ": " + ids_path + "[" + std::to_string(i) + "]"; });
    if (ids_.size() != rows_) {
      Fail(ErrorCode::kInvalidArgument, path, ": ", ids_path, " holds ", ids_.size(),
           " ids, the matrix ", matrix_, " ", rows_, " rows");
    }
    const std::string var = FrameIndex(file_.get(), "var");
    if (!var.empty()) names_ = ReadStrings(file_.get(), var, path);
    if (names_.size() != cols_) names_ = NumberedNames(prefix, cols_);
  }

  size_t chunk_cache_bytes() const override {
    Handle access(H5Dget_access_plist(data_->get()), H5Pclose);
    size_t slots = 0, bytes = 0;
    double w0 = 0;
    if (!access.ok() || H5Pget_chunk_cache(access.get(), &slots, &bytes, &w0) < 0) return 0;
    return bytes;
  }

  void ReadRow(size_t r, double* out) override {
    if (csr_) {
      ReadCsrRow(r, out);
      return;
    }
    Handle space(H5Dget_space(data_->get()), H5Sclose);
    const hsize_t start[2] = {r, 0}, count[2] = {1, cols_};
    const bool selected = space.ok() && H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start,
                                                            nullptr, count, nullptr) >= 0;
    Handle memory(H5Screate_simple(2, count, nullptr), H5Sclose);
    if (!selected || !memory.ok() ||
        H5Dread(data_->get(), H5T_NATIVE_DOUBLE, memory.get(), space.get(), H5P_DEFAULT, out) < 0) {
      Fail(ErrorCode::kDataLoss, where_, ": row ", r, ": unreadable");
    }
  }

 private:
  static hid_t Open(const std::string& path) {
    QuietHdf5();
    if (H5Fis_hdf5(path.c_str()) <= 0) {
      Fail(ErrorCode::kInvalidArgument, path, ": not an HDF5 file (or truncated)");
    }
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) Fail(ErrorCode::kInvalidArgument, path, ": cannot open as HDF5 (truncated?)");
    return id;
  }

  // The numeric dataset `name` of `rank` dimensions (its sizes into `dims`), opened with a
  // chunk cache large enough for reading it row after row.
  std::unique_ptr<Handle> OpenDataset(const std::string& name, int rank, hsize_t* dims) {
    auto data =
        std::make_unique<Handle>(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), H5Dclose);
    if (!data->ok()) Fail(ErrorCode::kInvalidArgument, path_, ": no dataset '", name, "'");
    Handle type(H5Dget_type(data->get()), H5Tclose);
    if (!type.ok() || !IsNumeric(type.get())) {
      Fail(ErrorCode::kInvalidArgument, path_, ": ", name, ": not a numeric dataset");
    }
    Handle space(H5Dget_space(data->get()), H5Sclose);
    const int ndims = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    if (ndims != rank) {
      Fail(ErrorCode::kInvalidArgument, path_, ": ", name, ": ", ndims, " dimensions, expected ",
           rank);
    }
    if (H5Sget_simple_extent_dims(space.get(), dims, nullptr) != rank) {
      Fail(ErrorCode::kInvalidArgument, path_, ": ", name, ": unreadable dimensions");
    }
    const size_t cache = ChunkCacheBytes(data->get(), rank, dims, sizeof(double));
    if (cache <= (size_t{1} << 20)) return data;  // HDF5's default cache holds it
    Handle access(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    if (!access.ok() || H5Pset_chunk_cache(access.get(), 12421, cache, 1.0) < 0) {
      Fail(ErrorCode::kInternal, path_, ": ", name, ": cannot size the chunk cache");
    }
    // Closed first: HDF5 keeps one chunk cache per open dataset, and an open that finds the
    // dataset already open shares it, ignoring the new size.
    data.reset();
    data = std::make_unique<Handle>(H5Dopen2(file_.get(), name.c_str(), access.get()), H5Dclose);
    if (!data->ok())
      Fail(ErrorCode::kInvalidArgument, path_, ": cannot reopen dataset '", name, "'");
    return data;
  }

  void OpenDense() {
    hsize_t dims[2];
    data_ = OpenDataset(matrix_, 2, dims);
    Handle type(H5Dget_type(data_->get()), H5Tclose);
    if (!type.ok() || H5Tget_class(type.get()) != H5T_FLOAT) {
      Fail(ErrorCode::kInvalidArgument, where_, ": dtype is not float32 or float64");
    }
    rows_ = dims[0];
    cols_ = dims[1];
  }

  void OpenCsr() {
    Handle group(H5Gopen2(file_.get(), matrix_.c_str(), H5P_DEFAULT), H5Gclose);
    if (!group.ok()) Fail(ErrorCode::kInvalidArgument, where_, ": cannot open the group");
    std::string encoding = ReadStringAttribute(group.get(), "encoding-type");
    if (encoding.empty()) encoding = ReadStringAttribute(group.get(), "h5sparse_format");
    if (encoding != "csr_matrix" && encoding != "csr") {
      Fail(ErrorCode::kInvalidArgument, where_, ": a group of encoding '", encoding,
           "'; only CSR sparse matrices (csr_matrix) are read");
    }
    hsize_t shape[2] = {0, 0};
    {
      const char* name = H5Aexists(group.get(), "shape") > 0 ? "shape" : "h5sparse_shape";
      Handle attribute(H5Aopen(group.get(), name, H5P_DEFAULT), H5Aclose);
      if (!attribute.ok() || H5Aread(attribute.get(), H5T_NATIVE_HSIZE, shape) < 0) {
        Fail(ErrorCode::kInvalidArgument, where_, ": CSR group without a shape attribute");
      }
    }
    rows_ = shape[0];
    cols_ = shape[1];
    hsize_t n = 0, nnz = 0, nnz_indices = 0;
    auto indptr = OpenDataset(matrix_ + "/indptr", 1, &n);
    data_ = OpenDataset(matrix_ + "/data", 1, &nnz);
    indices_ = OpenDataset(matrix_ + "/indices", 1, &nnz_indices);
    if (n != rows_ + 1 || nnz != nnz_indices) {
      Fail(ErrorCode::kInvalidArgument, where_, ": indptr has ", n, " entries for ", rows_,
           " rows; data ", nnz, " and indices ", nnz_indices, " values");
    }
    indptr_.resize(n);
    if (H5Dread(indptr->get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, indptr_.data()) <
        0) {
      Fail(ErrorCode::kDataLoss, where_, ": indptr: unreadable");
    }
    for (size_t r = 0; r < rows_; ++r) {
      if (indptr_[r] < 0 || indptr_[r] > indptr_[r + 1] ||
          indptr_[r + 1] > static_cast<int64_t>(nnz)) {
        Fail(ErrorCode::kInvalidArgument, where_, ": row ", r, ": indptr ", indptr_[r], "..",
             indptr_[r + 1], " outside the ", nnz, " stored values");
      }
    }
    csr_ = true;
  }

  void ReadSlice(const Handle& data, hid_t memtype, int64_t begin, int64_t count, void* out) {
    Handle space(H5Dget_space(data.get()), H5Sclose);
    const hsize_t start = static_cast<hsize_t>(begin), size = static_cast<hsize_t>(count);
    const bool selected = space.ok() && H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start,
                                                            nullptr, &size, nullptr) >= 0;
    Handle memory(H5Screate_simple(1, &size, nullptr), H5Sclose);
    if (!selected || !memory.ok() ||
        H5Dread(data.get(), memtype, memory.get(), space.get(), H5P_DEFAULT, out) < 0) {
      Fail(ErrorCode::kDataLoss, where_, ": values ", begin, "..", begin + count, ": unreadable");
    }
  }

  void ReadCsrRow(size_t r, double* out) {
    std::fill(out, out + cols_, 0.0);
    const int64_t begin = indptr_[r], count = indptr_[r + 1] - indptr_[r];
    if (count == 0) return;
    values_.resize(count);
    columns_.resize(count);
    ReadSlice(*data_, H5T_NATIVE_DOUBLE, begin, count, values_.data());
    ReadSlice(*indices_, H5T_NATIVE_INT64, begin, count, columns_.data());
    for (int64_t k = 0; k < count; ++k) {
      if (columns_[k] < 0 || columns_[k] >= static_cast<int64_t>(cols_)) {
        Fail(ErrorCode::kInvalidArgument, where_, ": row ", r, ": column index ", columns_[k],
             " outside [0, ", cols_, ")");
      }
      out[columns_[k]] = values_[k];
    }
  }

  Handle file_;
  std::string matrix_, where_;
  size_t rows_ = 0, cols_ = 0;
  bool csr_ = false;
  std::unique_ptr<Handle> data_, indices_;
  std::vector<int64_t> indptr_, columns_;
  std::vector<double> values_;
};

}  // namespace

std::unique_ptr<ArrayMatrix> OpenNpyMatrix(const std::string& path, const std::string& ids_path,
                                           const std::string& prefix) {
  return std::make_unique<NpyMatrix>(path, ids_path, prefix);
}

std::vector<int64_t> ReadVolumeMask(const std::string& path, const std::vector<int64_t>& shape) {
  const UniqueFd file = OpenForReading(path);
  const int fd = file.get();
  const NpyHeader header = ReadNpyHeader(fd, path);
  const std::vector<uint64_t> want(shape.begin(), shape.end());
  if (header.shape != want || header.fortran) {
    Fail(ErrorCode::kInvalidArgument, path, ": shape ", header.shape_text,
         header.fortran ? " in Fortran order" : "", ": the mask must have volume_shape, C order");
  }
  size_t item = 0;
  if (header.descr == "'|b1'" || header.descr == "'|u1'" || header.descr == "'|i1'") item = 1;
  if (header.descr == "'<i4'" || header.descr == "'<f4'") item = 4;
  if (header.descr == "'<i8'" || header.descr == "'<f8'") item = 8;
  if (item == 0) {
    Fail(ErrorCode::kInvalidArgument, path, ": dtype ", header.descr,
         ": expected bool, uint8, int32, int64, float32 or float64");
  }
  CheckNpySize(fd, path, header, item);
  const uint64_t n = static_cast<uint64_t>(shape[0] * shape[1] * shape[2]);
  std::vector<unsigned char> bytes(n * item);
  if (::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(header.data_offset)) !=
      static_cast<ssize_t>(bytes.size())) {
    Fail(ErrorCode::kInvalidArgument, path, ": short read");
  }
  std::vector<int64_t> voxels;
  for (uint64_t v = 0; v < n; ++v) {
    bool any = false;
    for (size_t b = 0; b < item; ++b) any = any || bytes[v * item + b] != 0;
    if (any) voxels.push_back(static_cast<int64_t>(v));
  }
  return voxels;
}

std::unique_ptr<ArrayMatrix> OpenHdf5Matrix(const std::string& path, const std::string& matrix,
                                            const std::string& ids, const std::string& prefix) {
  if (!std::ifstream(path)) Fail(ErrorCode::kNotFound, path, ": cannot open");
  return std::make_unique<Hdf5Matrix>(path, matrix, ids, prefix);
}

}  // namespace flexmoe
