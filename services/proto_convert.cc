#include "services/proto_convert.h"

namespace kvtier {

v1::Tier TierToProto(Tier tier) {
  return tier == Tier::kHostDram ? v1::TIER_HOST_DRAM : v1::TIER_LOCAL_SSD;
}

void EventToProto(const BlockEvent& event, v1::BlockEvent* proto) {
  proto->set_seq(event.seq);
  proto->set_type(event.type == BlockEvent::Type::kStored ? v1::BlockEvent::TYPE_STORED
                                                          : v1::BlockEvent::TYPE_REMOVED);
  switch (event.reason) {
    case BlockEvent::Reason::kPut:
      proto->set_reason(v1::BlockEvent::REASON_PUT);
      break;
    case BlockEvent::Reason::kEvicted:
      proto->set_reason(v1::BlockEvent::REASON_EVICTED);
      break;
    case BlockEvent::Reason::kDeleted:
      proto->set_reason(v1::BlockEvent::REASON_DELETED);
      break;
    case BlockEvent::Reason::kCorrupted:
      proto->set_reason(v1::BlockEvent::REASON_CORRUPTED);
      break;
  }
  proto->set_key(std::string(event.key.AsBytes()));
  if (event.parent) proto->set_parent_key(std::string(event.parent->AsBytes()));
  proto->set_tier(TierToProto(event.tier));
  proto->set_layout_fingerprint(event.layout_fingerprint);
}

}  // namespace kvtier
