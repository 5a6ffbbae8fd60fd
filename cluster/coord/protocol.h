// The coordinator protocol's framing (NOTE [coordinator protocol] in proto/coordinator.proto):
// magic "FMCO", its message types, and how members are named in messages.
#pragma once

#include <google/protobuf/message_lite.h>

#include <string>

#include "cluster/base/expert_placement.h"
#include "cluster/net/frame.h"
#include "proto/coordinator.pb.h"

namespace flexmoe {

inline constexpr uint32_t kCoordinatorMagic = 0x4F434D46;  // bytes "FMCO"

const net::FrameProtocol& CoordinatorProtocol();

std::string EncodeCoordinatorFrame(coordinator::MessageType type,
                                   const google::protobuf::MessageLite& message);
// Parses a frame's message (kDataLoss / kInvalidArgument when it does not).
void ParseCoordinatorFrame(const net::FrameHeader& header, const std::string& body,
                           google::protobuf::MessageLite* message);

// A placement in the protocol and back (PlacementFromProto checks it: kInvalidArgument).
coordinator::Placement PlacementToProto(const PlacementMap& placement);
PlacementMap PlacementFromProto(const coordinator::Placement& placement);

// "worker 1 (host node3, pid 4242)".
std::string MemberName(const coordinator::Member& member);

}  // namespace flexmoe
