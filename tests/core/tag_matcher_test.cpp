// The (source, tag) matcher shared by the point-to-point channels
// (src/channels/common/tag_matcher.h), on its own.
#include <gtest/gtest.h>

#include <cstddef>
#include <stdexcept>
#include <vector>

#include "channels/common/tag_matcher.h"

using FMI::Comm::Tag;
using FMI::Comm::TagMatcher;
using FMI::Utils::Operation;

namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int x : v) out.push_back(std::byte(x));
  return out;
}

[[noreturn]] void no_mismatch(std::size_t size) {
  throw std::logic_error("unexpected size " + std::to_string(size));
}

}  // namespace

TEST(TagMatcher, MatchesBySourceAndTag) {
  TagMatcher m;
  const Tag p2p{Operation::send, 7}, bcast{Operation::bcast, 7};
  m.park(2, p2p, bytes({1}));
  m.park(2, bcast, bytes({2}));
  m.park(5, bcast, bytes({3}));
  std::vector<std::byte> out(1);
  // Neither another source nor another tag matches.
  EXPECT_FALSE(m.take(3, bcast, out, no_mismatch));
  EXPECT_FALSE(m.take(2, Tag{Operation::bcast, 8}, out, no_mismatch));
  ASSERT_TRUE(m.take(5, bcast, out, no_mismatch));
  EXPECT_EQ(out[0], std::byte(3));
  ASSERT_TRUE(m.take(2, bcast, out, no_mismatch));
  EXPECT_EQ(out[0], std::byte(2));
  ASSERT_TRUE(m.take(2, p2p, out, no_mismatch));
  EXPECT_EQ(out[0], std::byte(1));
  // Each message is delivered once.
  EXPECT_FALSE(m.take(2, p2p, out, no_mismatch));
  EXPECT_FALSE(m.pop(2, bcast).has_value());
}

TEST(TagMatcher, SameTagKeepsArrivalOrderPerSource) {
  TagMatcher m;
  const Tag t{Operation::send, 1};
  m.park(0, t, bytes({10, 11}));
  m.park(0, t, bytes({20}));
  m.park(0, t, bytes({}));
  EXPECT_EQ(*m.pop(0, t), bytes({10, 11}));
  EXPECT_EQ(*m.pop(0, t), bytes({20}));
  EXPECT_EQ(*m.pop(0, t), bytes({}));
  EXPECT_FALSE(m.pop(0, t).has_value());
}

TEST(TagMatcher, SizeMismatchIsReportedAndConsumesTheMessage) {
  TagMatcher m;
  const Tag t{Operation::reduce, 3};
  m.park(1, t, bytes({1, 2, 3}));
  std::vector<std::byte> out(2);
  std::size_t reported = 0;
  EXPECT_THROW(m.take(1, t, out,
                      [&](std::size_t size) {
                        reported = size;
                        throw std::runtime_error("mismatch");
                      }),
               std::runtime_error);
  EXPECT_EQ(reported, 3u);
  EXPECT_FALSE(m.pop(1, t).has_value());
}

TEST(TagMatcher, ClearDropsEverything) {
  TagMatcher m;
  const Tag t{Operation::gather, 0};
  m.park(4, t, bytes({1}));
  m.clear();
  EXPECT_FALSE(m.pop(4, t).has_value());
  // Usable again after clear().
  m.park(4, t, bytes({9}));
  EXPECT_EQ(*m.pop(4, t), bytes({9}));
}

// What a probe over several sources uses: peek leaves the message, gives its
// size, and arrival numbers order messages across sources.
TEST(TagMatcher, PeekLeavesTheMessageAndOrdersArrivalsAcrossSources) {
  TagMatcher m;
  const Tag t{Operation::send, 1}, u{Operation::send, 2};
  EXPECT_FALSE(m.peek(3, t).has_value());
  m.park(3, u, bytes({1, 2}));
  m.park(1, t, bytes({1, 2, 3}));
  m.park(3, t, bytes({}));
  auto a = m.peek(1, t), b = m.peek(3, t), c = m.peek(3, u);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->bytes, 3u);
  EXPECT_EQ(b->bytes, 0u);
  EXPECT_EQ(c->bytes, 2u);
  EXPECT_LT(c->arrival, a->arrival);
  EXPECT_LT(a->arrival, b->arrival);
  EXPECT_EQ(*m.pop(1, t), bytes({1, 2, 3}));  // still there after peek
  EXPECT_FALSE(m.peek(1, t).has_value());
}
