// The redrawn progress line (redraw_stream.h).
#include "trainer/train/redraw_stream.h"

#include <streambuf>

namespace flexmoe {

class RedrawStream::Buffer : public std::streambuf {
 public:
  explicit Buffer(std::ostream& out) : out_(out) {}
  void Redraw(const std::string& line) {
    out_ << '\r' << line << "\033[K" << std::flush;
    pending_ = true;
  }

 protected:
  int_type overflow(int_type c) override {
    if (c == traits_type::eof()) return traits_type::not_eof(c);
    EndRedrawn();
    out_.put(traits_type::to_char_type(c));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    EndRedrawn();
    out_.write(s, n);
    return n;
  }
  int sync() override {
    out_.flush();
    return 0;
  }

 private:
  void EndRedrawn() {
    if (!pending_) return;
    out_.put('\n');
    pending_ = false;
  }
  std::ostream& out_;
  bool pending_ = false;
};

RedrawStream::RedrawStream(std::ostream& out)
    : buffer_(std::make_unique<Buffer>(out)),
      stream_(std::make_unique<std::ostream>(buffer_.get())) {}
RedrawStream::~RedrawStream() = default;
std::ostream& RedrawStream::stream() { return *stream_; }
void RedrawStream::Redraw(const std::string& line) { buffer_->Redraw(line); }

}  // namespace flexmoe
