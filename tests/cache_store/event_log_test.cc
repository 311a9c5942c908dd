#include "cache_store/event_log.h"

#include <gtest/gtest.h>

#include <atomic>

#include "absl/synchronization/notification.h"

namespace kvtier {
namespace {

BlockEvent Stored(std::string tenant, uint8_t tag) {
  BlockEvent e;
  e.type = BlockEvent::Type::kStored;
  e.tenant = std::move(tenant);
  e.key.bytes[0] = tag;
  return e;
}

TEST(EventLogTest, SubscriberSeesOnlyItsTenantInOrderWithSequenceNumbers) {
  EventLog log(100);
  auto sub = log.Subscribe("a", [] {});
  log.Append(Stored("a", 1));
  log.Append(Stored("b", 2));
  log.Append(Stored("a", 3));
  EventLog::Batch batch = log.Read(*sub, 10);
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_EQ(batch.events[0].key.bytes[0], 1);
  EXPECT_EQ(batch.events[1].key.bytes[0], 3);
  EXPECT_LT(batch.events[0].seq, batch.events[1].seq);
  EXPECT_EQ(batch.lost, 0u);
  EXPECT_FALSE(batch.closed);
  EXPECT_TRUE(log.Read(*sub, 10).events.empty());
}

TEST(EventLogTest, SlowSubscriberLearnsHowManyOfItsEventsWereLost) {
  EventLog log(4);
  auto sub = log.Subscribe("a", [] {});
  for (uint8_t i = 0; i < 10; ++i) log.Append(Stored(i % 2 ? "b" : "a", i));
  // Ring keeps seq 7..10 = tags 6..9; tenant a's are 6 and 8; a appended 5 (0,2,4,6,8).
  EventLog::Batch batch = log.Read(*sub, 100);
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_EQ(batch.events[0].key.bytes[0], 6);
  EXPECT_EQ(batch.lost, 3u);
}

TEST(EventLogTest, DispatcherWakesSubscribersAndCloseEndsThem) {
  EventLog log(100);
  std::atomic<int> calls{0};
  absl::Notification first;
  auto sub = log.Subscribe("a", [&] {
    if (calls++ == 0) first.Notify();
  });
  log.Append(Stored("b", 1));  // not for this subscriber
  log.Append(Stored("a", 2));
  ASSERT_TRUE(first.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(log.Read(*sub, 10).events.size(), 1u);
  log.Close();
  for (int i = 0; i < 1000 && !log.Read(*sub, 10).closed; ++i)
    absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(log.Read(*sub, 10).closed);
  log.Unsubscribe(sub);
}

}  // namespace
}  // namespace kvtier
