// Coordinator frames (protocol.h).
#include "cluster/coord/protocol.h"

namespace flexmoe {

const net::FrameProtocol& CoordinatorProtocol() {
  static const net::FrameProtocol protocol{
      "coordinator", kCoordinatorMagic, 1,
      [](uint16_t type) { return coordinator::MessageType_IsValid(type); },
      [](uint16_t type) {
        return coordinator::MessageType_IsValid(type)
                   ? coordinator::MessageType_Name(static_cast<coordinator::MessageType>(type))
                   : std::to_string(type);
      }};
  return protocol;
}

std::string EncodeCoordinatorFrame(coordinator::MessageType type,
                                   const google::protobuf::MessageLite& message) {
  return net::EncodeFrame(CoordinatorProtocol(), static_cast<uint16_t>(type), message);
}

void ParseCoordinatorFrame(const net::FrameHeader& header, const std::string& body,
                           google::protobuf::MessageLite* message) {
  net::ParseFrameBody(CoordinatorProtocol(), header, body, message);
}

std::string MemberName(const coordinator::Member& member) {
  std::string role = member.role() == coordinator::WORKER   ? "worker"
                     : member.role() == coordinator::LOADER ? "loader"
                                                            : "member";
  return role + " " + std::to_string(member.rank()) + " (host " + member.host() + ", pid " +
         std::to_string(member.pid()) + ")";
}

coordinator::Placement PlacementToProto(const PlacementMap& placement) {
  coordinator::Placement out;
  out.set_ranks(placement.ranks);
  for (const auto& [layer, p] : placement.layers) {
    coordinator::LayerPlacement* l = out.add_layers();
    l->set_layer(layer);
    for (int owner : p.owner) l->add_owner(owner);
  }
  return out;
}

PlacementMap PlacementFromProto(const coordinator::Placement& placement) {
  PlacementMap map;
  map.ranks = placement.ranks();
  for (const coordinator::LayerPlacement& l : placement.layers()) {
    map.layers[l.layer()].owner.assign(l.owner().begin(), l.owner().end());
  }
  map.Check();
  return map;
}

}  // namespace flexmoe
