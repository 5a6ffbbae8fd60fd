// The job token that a member presents in its first frame (to a loader or the coordinator),
// read from where cluster.job_token_source says ("env:NAME" or "file:PATH"), and its
// comparison.
#pragma once

#include <string>

#include "proto/config.pb.h"

namespace flexmoe {

// "env:NAME": the environment variable NAME; "file:PATH": the file's contents with leading
// and trailing whitespace trimmed. Throws kInvalidArgument for an empty or unknown source,
// an unset variable or an empty token, kNotFound for a file that cannot be read.
std::string ReadJobToken(const config::ClusterConfig& cluster);

// Compares in time independent of where the strings first differ.
bool TokensEqual(const std::string& a, const std::string& b);

}  // namespace flexmoe
