// Conversions of engine types that only the server sends (tiers, events). The ones both
// sides need live in proto/wire_convert.h. Pure functions; thread-safe.
#ifndef KVTIER_SERVICES_PROTO_CONVERT_H_
#define KVTIER_SERVICES_PROTO_CONVERT_H_

#include "cache_store/event_log.h"
#include "cache_store/tier.h"
#include "kvtier/v1/cache_store.pb.h"
#include "proto/wire_convert.h"

namespace kvtier {

v1::Tier TierToProto(Tier tier);
void EventToProto(const BlockEvent& event, v1::BlockEvent* proto);

}  // namespace kvtier

#endif  // KVTIER_SERVICES_PROTO_CONVERT_H_
