// This process's peak resident memory (getrusage's ru_maxrss), for the lines each role logs
// as it ends ("peak resident memory N MB"): bench/data_scale.sh and the memory tests read them.
#pragma once

namespace flexmoe {

double PeakResidentMb();

}  // namespace flexmoe
