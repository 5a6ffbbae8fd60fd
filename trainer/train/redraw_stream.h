// RedrawStream: the progress line of a terminal. Redraw() replaces the current line
// ("\r", the text, erase to the end of the line) without ending it; anything written to
// stream() afterwards starts on a new line, so that the last progress line stays above it.
// For output that is not a terminal the trainer does not use it (plain lines).
#pragma once

#include <memory>
#include <ostream>
#include <string>

namespace flexmoe {

class RedrawStream {
 public:
  explicit RedrawStream(std::ostream& out);
  ~RedrawStream();
  RedrawStream(const RedrawStream&) = delete;
  RedrawStream& operator=(const RedrawStream&) = delete;

  // Writes through to `out`, ending a redrawn line first.
  std::ostream& stream();
  void Redraw(const std::string& line);

 private:
  class Buffer;
  std::unique_ptr<Buffer> buffer_;
  std::unique_ptr<std::ostream> stream_;
};

}  // namespace flexmoe
