// The adaptive spin budget of the Direct channel (src/channels/direct/spin.h): fed
// outcomes and load samples, it must stop spinning when spins fail, come back when
// they succeed, and never spin on an oversubscribed machine.
#include "channels/direct/spin.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "fmi/errors.h"

namespace {
using FMI::Direct::SpinBudget;
using us = std::chrono::microseconds;

// Waits until the budget is next nonzero; returns how many waits that took.
unsigned waits_until_spin(SpinBudget& b) {
  for (unsigned i = 1; i <= 1000; ++i)
    if (b.next() > us(0)) return i;
  return 0;
}

TEST(SpinBudget, StartsSpinningAndKeepsSpinningWhileSpinsCatchData) {
  auto b = SpinBudget::adaptive(us(30));
  EXPECT_EQ(b.next(), us(30));
  for (int i = 0; i < 100; ++i) {
    b.spun(true);
    ASSERT_EQ(b.next(), us(30)) << "after " << i + 1 << " successful spins";
  }
  EXPECT_DOUBLE_EQ(b.success_rate(), 1.0);
}

TEST(SpinBudget, FailingSpinsTurnSpinningOffWithinAFewWaits) {
  auto b = SpinBudget::adaptive(us(30));
  int failures = 0;
  while (b.spinning() && failures < 100) {
    b.spun(false);
    ++failures;
  }
  // 1 * (7/8)^k < 0.5 from k = 6 on: a handful of 30 us spins, not hundreds.
  EXPECT_EQ(failures, 6);
  EXPECT_FALSE(b.spinning());
  EXPECT_LT(b.success_rate(), SpinBudget::kOff);
  // Off: the budget is 0 except for one probe every kProbeEvery waits.
  unsigned spins = 0;
  for (unsigned i = 0; i < 10 * SpinBudget::kProbeEvery; ++i) {
    if (b.next() > us(0)) {
      ++spins;
      b.spun(false);  // the probes fail too: it stays off
    }
  }
  EXPECT_EQ(spins, 10u);
  EXPECT_FALSE(b.spinning());
}

TEST(SpinBudget, OccasionalFailuresAmongSuccessesKeepSpinning) {
  auto b = SpinBudget::adaptive(us(30));
  for (int i = 0; i < 400; ++i) {
    b.spun(i % 4 != 0);  // 75% of the spins catch their data
    ASSERT_TRUE(b.spinning()) << "wait " << i << ", rate " << b.success_rate();
  }
}

TEST(SpinBudget, SuccessfulProbesTurnSpinningBackOn) {
  auto b = SpinBudget::adaptive(us(30));
  for (int i = 0; i < 50; ++i) b.spun(false);  // a long phase of slow replies
  ASSERT_FALSE(b.spinning());
  // Then replies come fast again: only the probes spin, and each one succeeds.
  unsigned waits = 0, probes = 0;
  while (!b.spinning() && waits < 10000) {
    unsigned n = waits_until_spin(b);
    ASSERT_EQ(n, SpinBudget::kProbeEvery);
    waits += n;
    ++probes;
    b.spun(true);
  }
  EXPECT_TRUE(b.spinning());
  EXPECT_GE(b.success_rate(), SpinBudget::kOn);
  // From ~0 to 0.75 at weight 1/8: 11 successes; i.e. a few hundred waits.
  EXPECT_EQ(probes, 11u);
  EXPECT_EQ(b.next(), us(30));
}

TEST(SpinBudget, HysteresisBetweenOffAndOn) {
  auto b = SpinBudget::adaptive(us(30));
  while (b.spinning()) b.spun(false);
  // Just above kOff is not enough to come back: it takes kOn.
  while (b.success_rate() < SpinBudget::kOff + 0.05) b.spun(true);
  EXPECT_FALSE(b.spinning());
  while (b.success_rate() < SpinBudget::kOn) b.spun(true);
  EXPECT_TRUE(b.spinning());
}

TEST(SpinBudget, OversubscribedMachineNeverSpinsNotEvenProbes) {
  auto b = SpinBudget::adaptive(us(30));
  b.load(17, 2);
  EXPECT_TRUE(b.oversubscribed()) << "the first sample decides at once";
  EXPECT_FALSE(b.spinning());
  b.load(2, 2);
  EXPECT_TRUE(b.oversubscribed()) << "after it, one idle sample alone changes nothing";
  b.load(16, 2);
  EXPECT_TRUE(b.oversubscribed());
  for (unsigned i = 0; i < 4 * SpinBudget::kProbeEvery; ++i) ASSERT_EQ(b.next(), us(0));
  // As many runnable tasks as CPUs, two samples in a row: no longer oversubscribed,
  // but spinning comes back only once probes catch their data.
  b.load(2, 2);
  EXPECT_TRUE(b.oversubscribed());
  b.load(1, 2);
  EXPECT_FALSE(b.oversubscribed());
  EXPECT_FALSE(b.spinning());
  EXPECT_EQ(waits_until_spin(b), SpinBudget::kProbeEvery);
  b.spun(false);  // a probe that failed: still off
  EXPECT_FALSE(b.spinning());
  for (unsigned probes = 0; !b.spinning() && probes < 100; ++probes) {
    ASSERT_EQ(waits_until_spin(b), SpinBudget::kProbeEvery);
    b.spun(true);
  }
  EXPECT_TRUE(b.spinning());
  EXPECT_EQ(b.next(), us(30));
  // A lone busy sample between idle ones does not stop the spinning.
  b.load(2, 2);
  b.load(9, 2);
  b.load(2, 2);
  b.load(9, 2);
  EXPECT_FALSE(b.oversubscribed());
}

TEST(SpinBudget, FixedIgnoresOutcomesAndLoad) {
  auto b = SpinBudget::fixed(us(30));
  for (int i = 0; i < 100; ++i) b.spun(false);
  b.load(50, 2);
  b.load(50, 2);
  EXPECT_EQ(b.next(), us(30));
  auto off = SpinBudget::fixed(us(0));
  for (int i = 0; i < 100; ++i) off.spun(true);
  EXPECT_EQ(off.next(), us(0));
}

TEST(SpinBudget, EnvironmentChoosesFixedOrAdaptive) {
  ::unsetenv("FMI_DIRECT_SPIN_US");
  // The default is the fixed 30 us spin (adaptive is opt-in: spin.cpp says why).
  EXPECT_TRUE(SpinBudget::from_env().is_fixed());
  EXPECT_EQ(SpinBudget::from_env().next(), us(30));
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

TEST(SpinBudget, MachineLoadSampleIsPlausible) {
  auto l = FMI::Direct::sample_machine_load();
  ASSERT_TRUE(l.has_value()) << "/proc/loadavg unreadable";
  EXPECT_GE(l->runnable, 1u) << "the caller itself runs";
  EXPECT_GE(l->cpus, 1u);
}
}  // namespace
