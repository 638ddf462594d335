// The adaptive spin budget of the Direct channel (src/channels/direct/spin.h), fed
// synthetic waits and yields: it must spin while waits are short, stop when they are
// long or when yields show another task wants the core, come back from "both sides
// sleep", and stay off (probing ever more rarely) on a machine that stays busy.
#include "channels/direct/spin.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "fmi/errors.h"

namespace {
using FMI::Direct::SpinBudget;
using us = std::chrono::microseconds;
using ms = std::chrono::milliseconds;

constexpr us kQuick{2};     // a yield with nobody else runnable
constexpr us kSlice{3000};  // a yield that ran a computing function for its slice

// Waits of `took` each until the budget next spins; returns how many waits that
// took (1: the first wait spins), 0 if none within 10,000.
unsigned waits_until_spin(SpinBudget& b, std::chrono::nanoseconds took) {
  for (unsigned i = 1; i <= 10000; ++i) {
    if (b.next() > us(0)) return i;
    b.waited(took);
  }
  return 0;
}

TEST(SpinBudget, StartsAtTheCapThenFollowsTheTypicalWait) {
  auto b = SpinBudget::adaptive();
  EXPECT_EQ(b.next(), SpinBudget::kMaxSpin);
  // A partner that answers within 5 us: the spin shrinks to 4 x 5 us.
  for (int i = 0; i < 100; ++i) {
    ASSERT_GT(b.next(), us(0));
    ASSERT_TRUE(b.tried(kQuick));
    b.waited(us(5));
  }
  EXPECT_TRUE(b.spinning());
  EXPECT_EQ(b.next(), us(20));
  // Data that is there almost at once: never below kMinSpin.
  for (int i = 0; i < 100; ++i) b.waited(us(1));
  EXPECT_EQ(b.next(), SpinBudget::kMinSpin);
  // Waits of 150 us (a partner that computes a little; short up to 2.5 x the
  // cap): the spin grows to the cap.
  for (int i = 0; i < 100; ++i) b.waited(us(150));
  EXPECT_TRUE(b.spinning());
  EXPECT_EQ(b.next(), SpinBudget::kMaxSpin);
}

TEST(SpinBudget, LongWaitsTurnSpinningOffAndNothingSpinsWhileTheyLast) {
  auto b = SpinBudget::adaptive();
  int waits = 0;
  while (b.spinning() && waits < 100) {
    b.waited(ms(5));  // the sender computes or is not scheduled
    ++waits;
  }
  // 1 * (7/8)^k < 0.25 from k = 11 on: a handful of waits, not hundreds.
  EXPECT_EQ(waits, 11);
  EXPECT_LT(b.short_rate(), SpinBudget::kOff);
  // Long begins just above 2.5 x the cap (250 us).
  auto c = SpinBudget::adaptive();
  for (int i = 0; i < 11; ++i) c.waited(us(251));
  EXPECT_FALSE(c.spinning());
  auto d = SpinBudget::adaptive();
  for (int i = 0; i < 100; ++i) d.waited(us(250));
  EXPECT_TRUE(d.spinning());
  // No probe spins while waits are long: each wait is observed anyway.
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(b.next(), us(0)) << "wait " << i;
    b.waited(ms(5));
  }
}

TEST(SpinBudget, OccasionalLongWaitsAmongShortOnesKeepSpinning) {
  auto b = SpinBudget::adaptive();
  for (int i = 0; i < 400; ++i) {
    b.waited(i % 2 ? us(8) : ms(4));  // half of the waits are long
    ASSERT_TRUE(b.spinning()) << "wait " << i << ", rate " << b.short_rate();
  }
}

TEST(SpinBudget, HysteresisBetweenOffAndOn) {
  auto b = SpinBudget::adaptive();
  while (b.spinning()) b.waited(ms(5));
  // Just above kOff is not enough to come back: it takes kOn.
  while (b.short_rate() < SpinBudget::kOff + 0.05) b.waited(us(100));
  EXPECT_FALSE(b.spinning());
  while (b.short_rate() < SpinBudget::kOn) b.waited(us(100));
  EXPECT_TRUE(b.spinning());
}

TEST(SpinBudget, ShortWaitsWhileSleepingTurnSpinningBackOnWithoutProbes) {
  auto b = SpinBudget::adaptive();
  for (int i = 0; i < 50; ++i) b.waited(ms(5));  // a long phase of computing
  ASSERT_FALSE(b.spinning());
  // Then the partner answers at once, but we sleep: each wait is ~105 us (the
  // wake-ups). That is short (up to 250 us): after 6 such waits (rate ~0 -> 0.5)
  // spinning is on.
  EXPECT_EQ(waits_until_spin(b, us(105)), 7u);
  EXPECT_TRUE(b.spinning());
  EXPECT_EQ(b.next(), SpinBudget::kMaxSpin);  // 4 x ~105 us: capped
}

// Two functions in a ping-pong whose wake-up from poll takes 50 us and who answer
// 3 us after their data came. A side whose spin catches the data waits only for
// the partner (3 us, plus the partner's wake-up if the partner slept); a side whose
// spin ran out also waits for its own wake-up. After a long computing phase both
// sleep; each then sees ~105 us waits, spins again, and one spin that outlasts the
// partner's wake-up brings both to catching every message.
TEST(SpinBudget, BothSidesSleepingComeBackToSpinning) {
  constexpr us kWake{50}, kTurn{3};
  SpinBudget side[2] = {SpinBudget::adaptive(), SpinBudget::adaptive()};
  for (auto& b : side)
    for (int i = 0; i < 30; ++i) b.waited(ms(5));
  ASSERT_FALSE(side[0].spinning());
  ASSERT_FALSE(side[1].spinning());
  bool slept[2] = {true, true};
  int last_sleep = -1;
  for (int m = 0; m < 400; ++m) {
    const int x = m % 2;  // the side waiting for this message
    us arrival = kTurn + (slept[1 - x] ? kWake : us(0));
    us budget = side[x].next();
    slept[x] = arrival > budget;
    if (budget > us(0)) EXPECT_TRUE(side[x].tried(kQuick));
    side[x].waited(arrival + (slept[x] ? kWake : us(0)));
    if (slept[x]) last_sleep = m;
  }
  EXPECT_LT(last_sleep, 20) << "both sides sleep on: each waits for the other's wake-up";
  EXPECT_TRUE(side[0].spinning());
  EXPECT_TRUE(side[1].spinning());
  // And the spin shrank to 4 x the 3 us turnaround.
  EXPECT_EQ(side[0].next(), us(12));
  EXPECT_EQ(side[1].next(), us(12));
}

TEST(SpinBudget, OversubscribedMachineStaysOffAndProbesEverMoreRarely) {
  auto b = SpinBudget::adaptive();
  // The waits are short (the functions exchange small messages), but each yield
  // hands the core to a computing function for its slice: the spin stops at once.
  ASSERT_GT(b.next(), us(0));
  EXPECT_TRUE(b.tried(kQuick));
  EXPECT_FALSE(b.tried(kSlice));
  EXPECT_TRUE(b.contended());
  EXPECT_FALSE(b.spinning());
  b.waited(us(120));
  // Probes: the first after kFirstProbeEvery waits, each failed one doubling the
  // interval up to kMaxProbeEvery.
  unsigned every = SpinBudget::kFirstProbeEvery;
  for (int probe = 0; probe < 8; ++probe) {
    ASSERT_EQ(waits_until_spin(b, us(120)), every) << "probe " << probe;
    EXPECT_FALSE(b.tried(kSlice));
    b.waited(us(120));
    every = std::min(2 * every, SpinBudget::kMaxProbeEvery);
    EXPECT_EQ(b.probe_every(), every);
  }
  // Over 10,000 more waits: one spin per 256 waits, each stopped at its first yield.
  unsigned spins = 0;
  for (int i = 0; i < 10000; ++i) {
    if (b.next() > us(0)) {
      ++spins;
      EXPECT_FALSE(b.tried(kSlice));
    }
    b.waited(us(120));
  }
  EXPECT_EQ(spins, 10000u / SpinBudget::kMaxProbeEvery);
  EXPECT_TRUE(b.contended());
}

TEST(SpinBudget, CleanProbesEndTheContentionAndARelapseProbesLessOften) {
  auto b = SpinBudget::adaptive();
  b.next();
  ASSERT_FALSE(b.tried(kSlice));
  b.waited(us(30));
  // The other job ended: the probes' yields come back at once. One clean probe
  // is not enough, two in a row are.
  ASSERT_EQ(waits_until_spin(b, us(100)), SpinBudget::kFirstProbeEvery);
  EXPECT_TRUE(b.tried(kQuick));
  b.waited(us(100));
  EXPECT_TRUE(b.contended());
  ASSERT_EQ(waits_until_spin(b, us(100)), SpinBudget::kFirstProbeEvery);
  EXPECT_TRUE(b.tried(kQuick));
  b.waited(us(100));
  EXPECT_FALSE(b.contended());
  EXPECT_TRUE(b.spinning());
  // A contention again within kCalm waits: the probes ended it too early, so the
  // next probe waits twice as long.
  for (unsigned i = 0; i + 1 < SpinBudget::kCalm; ++i) b.waited(us(20));
  b.next();
  ASSERT_FALSE(b.tried(kSlice));
  b.waited(us(20));
  EXPECT_EQ(b.probe_every(), 2 * SpinBudget::kFirstProbeEvery);
  for (int probe = 0; probe < 2; ++probe) {
    ASSERT_EQ(waits_until_spin(b, us(20)), 2 * SpinBudget::kFirstProbeEvery);
    EXPECT_TRUE(b.tried(kQuick));
    b.waited(us(20));
  }
  ASSERT_FALSE(b.contended());
  // After kCalm quiet spinning waits a new contention starts from the first interval.
  for (unsigned i = 0; i < SpinBudget::kCalm; ++i) b.waited(us(20));
  b.next();
  ASSERT_FALSE(b.tried(kSlice));
  EXPECT_EQ(b.probe_every(), SpinBudget::kFirstProbeEvery);
}

TEST(SpinBudget, FixedIgnoresObservations) {
  auto b = SpinBudget::fixed(us(30));
  for (int i = 0; i < 100; ++i) b.waited(ms(5));
  EXPECT_TRUE(b.tried(kSlice));
  EXPECT_EQ(b.next(), us(30));
  auto off = SpinBudget::fixed(us(0));
  for (int i = 0; i < 100; ++i) off.waited(us(1));
  EXPECT_EQ(off.next(), us(0));
}

TEST(SpinBudget, EnvironmentChoosesFixedOrAdaptive) {
  ::unsetenv("FMI_DIRECT_SPIN_US");
  EXPECT_FALSE(SpinBudget::from_env().is_fixed()) << "the default adapts";
  EXPECT_EQ(SpinBudget::from_env().next(), SpinBudget::kMaxSpin);
  ::setenv("FMI_DIRECT_SPIN_US", "adaptive", 1);
  EXPECT_FALSE(SpinBudget::from_env().is_fixed());
  ::setenv("FMI_DIRECT_SPIN_US", "0", 1);
  auto zero = SpinBudget::from_env();
  EXPECT_TRUE(zero.is_fixed());
  EXPECT_EQ(zero.next(), us(0));
  ::setenv("FMI_DIRECT_SPIN_US", "45", 1);
  EXPECT_EQ(SpinBudget::from_env().next(), us(45));
  ::setenv("FMI_DIRECT_SPIN_US", "30us", 1);
  EXPECT_THROW(SpinBudget::from_env(), FMI::ConfigError);
  ::unsetenv("FMI_DIRECT_SPIN_US");
}
}  // namespace
