// `flexmoe report RUN_DIR` (also run at the end of `flexmoe train`): the figures of a run,
// drawn by gnuplot (pngcairo) from the run's own files into <seed dir>/report/: the expert
// activation heatmap (the paper's Figure 4: rows modality combinations, columns experts,
// cells the share of the combination's routed tokens that go to the expert, first sparse
// layer, test split), the training and validation curves (metrics.jsonl's epoch records),
// per-combination test metrics, the reliability diagram and the modality attribution per
// combination (eval/test.json, which the report writes with `flexmoe eval` first when it
// is missing). Each figure's data and gnuplot script are kept beside its PNG.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace flexmoe {

struct ReportResult {
  std::vector<std::string> figures;  // the PNGs written, every seed directory's
  std::vector<std::string> skipped;  // "figure: why" for those that could not be drawn
};

// Draws the report of every seed directory of `run_dir` (the run directory itself, or its
// seed-*/ directories). `log` (may be null) gets a line per figure. kNotFound when the run
// has no checkpoint; kUnavailable when gnuplot cannot be started or fails.
ReportResult WriteReport(const std::string& run_dir, std::ostream* log);

}  // namespace flexmoe
