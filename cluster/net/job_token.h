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

// A fresh random token: 32 hex digits (128 bits from std::random_device).
std::string NewToken();
// Writes `token` to `path`, mode 0600 from its creation: written to an exclusively created
// staging file of an unguessable name beside it, fsynced, renamed into place, the directory
// fsynced. A link at either name is never followed. Throws kInternal naming the path.
void WriteTokenFile(const std::string& path, const std::string& token);
// The token in `path`, whitespace trimmed; kNotFound when it cannot be read,
// kInvalidArgument when it is empty.
std::string ReadTokenFile(const std::string& path);

}  // namespace flexmoe
