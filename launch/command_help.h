// The help texts of the flexmoe command: the overview (`flexmoe help`) with the exit
// statuses, and each command's flags (`flexmoe COMMAND --help`).
#pragma once

#include <string>

namespace flexmoe {

// `flexmoe help`.
const std::string& UsageText();
// `flexmoe COMMAND --help`, or "" for an unknown command.
std::string CommandHelpText(const std::string& command);

}  // namespace flexmoe
