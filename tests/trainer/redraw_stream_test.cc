// RedrawStream: redrawn lines replace each other; other output starts on a new line below
// the last one.
#include "trainer/train/redraw_stream.h"

#include <gtest/gtest.h>

#include <sstream>

namespace flexmoe {
namespace {

TEST(RedrawStream, RedrawnLinesReplaceEachOtherAndOtherOutputGoesBelow) {
  std::ostringstream out;
  RedrawStream redraw(out);
  redraw.stream() << "start\n";
  redraw.Redraw("step 1");
  redraw.Redraw("step 2");
  redraw.stream() << "epoch done\n";
  redraw.stream() << "table\n";
  EXPECT_EQ(out.str(), "start\n\rstep 1\033[K\rstep 2\033[K\nepoch done\ntable\n");
}

}  // namespace
}  // namespace flexmoe
