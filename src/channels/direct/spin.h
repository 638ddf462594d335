// How long a waiting Direct call spins (retrying its non-blocking sockets, yielding
// between tries) before it sleeps in poll: adaptive by default (docs/direct.md,
// "Latency / waiting").
//
// Spinning pays when the data comes within the spin: the call then skips the
// sleep/wake-up round trip of poll (tens of microseconds on a virtual machine). It
// costs when functions outnumber cores and the others have work: a spinner's
// sched_yield hands its core to a computing function for a whole time slice, and
// when its data comes it is not woken at once like a sleeper in poll but runs when
// its turn comes (a 16-function K-means on 2 cores: 69 ms per epoch spinning vs
// 16 ms sleeping). So the budget follows two observations the channel makes
// anyway, with one clock read per wait and one per try:
//  - the time each wait took until its data came, whether it spun or slept. A
//    wait counts as short up to kShortTimes x the cap (250 us at the default cap
//    of 100 us): the sender was running and answered; a sleeper's wait includes
//    the wake-ups, its own and often the sender's (~50 us each on this 2-core VM:
//    two functions that both sleep wait ~105 us per message). Waits of
//    milliseconds mean the sender was not scheduled or computes: no spin catches
//    them. An exponentially weighted rate of short waits switches spinning on
//    (>= kOn) and off (< kOff). Every wait feeds it, spun or slept, so two sides
//    that both sleep still see their waits are short and spin again: this signal
//    cannot lock itself off. The spin is kTimesTypical x the typical short wait
//    (between kMinSpin and the cap), so that after both sides slept it outlasts
//    the partner's wake-up once (a spin shorter than a wake-up would keep missing a
//    partner whose own spin missed too), and then shrinks to a few times the
//    ~5 us of a partner that answers at once. The cap stays well below a time
//    slice: a spin also keeps its core looking busy, so the scheduler does not
//    move a waiting task of the other core there.
//  - how long each sched_yield of a spin took. Returning at once, nobody else
//    wanted the core and the spin cost nobody anything; taking kLongYield or more,
//    another task ran meanwhile: the core is contended and spinning stops at once.
//    That signal needs spins, so while contended one wait in `probe_every()` spins
//    anyway (a probe); kCleanProbes probes in a row whose yields all came back at
//    once end the contention. Each failed probe doubles the probe interval (up to
//    kMaxProbeEvery: a machine that stays busy costs one slice per ~256 waits), and
//    so does a contention within kCalm spinning waits of the last one (the probes
//    ended it too early); a later one starts again from kFirstProbeEvery.
// The class is pure (no clock, no system calls) so that its decisions are
// unit-tested with synthetic waits; the channel feeds it.
#pragma once

#include <chrono>

namespace FMI::Direct {

class SpinBudget {
 public:
  using us = std::chrono::microseconds;
  using ns = std::chrono::nanoseconds;
  /// The longest spin adaptation chooses (the cap).
  static constexpr us kMaxSpin{100};
  /// A wait counts as short up to kShortTimes x the cap.
  static constexpr double kShortTimes = 2.5;
  /// Weight of one wait in the rate of short waits and in the typical short wait.
  static constexpr double kWeight = 1.0 / 8;
  /// Spinning goes on when the rate of short waits reaches kOn, off below kOff.
  static constexpr double kOn = 0.5;
  static constexpr double kOff = 0.25;
  /// The spin is kTimesTypical x the typical short wait, at least kMinSpin.
  static constexpr unsigned kTimesTypical = 4;
  static constexpr us kMinSpin{10};
  /// A sched_yield that took this long ran another task: the core is contended.
  static constexpr us kLongYield{200};
  /// Probes while contended: the first after kFirstProbeEvery waits, doubling.
  static constexpr unsigned kFirstProbeEvery = 8;
  static constexpr unsigned kMaxProbeEvery = 256;
  static constexpr unsigned kCleanProbes = 2;
  static constexpr unsigned kCalm = 64;

  /// Adapts between 0 and `max`.
  static SpinBudget adaptive(us max = kMaxSpin) { return SpinBudget(max, false); }
  /// Always `spin` (FMI_DIRECT_SPIN_US=<n>): observations are ignored.
  static SpinBudget fixed(us spin) { return SpinBudget(spin, true); }
  /// Fixed if FMI_DIRECT_SPIN_US is a number (ConfigError if it is not 0..1000000
  /// or "adaptive"), else adaptive.
  static SpinBudget from_env();

  /// How long the wait that starts now (or goes on after a poll) spins before it
  /// polls. While contended, nonzero only for a probe.
  us next();
  /// One try of a spin: its sched_yield took `yield`. False: stop spinning now.
  bool tried(ns yield);
  /// A wait ended: its data came `took` after it started (spun, slept, or both).
  void waited(ns took);

  bool is_fixed() const { return fixed_; }
  /// Whether a wait spins now (not counting probes).
  bool spinning() const { return on_ && !contended_; }
  bool contended() const { return contended_; }
  double short_rate() const { return rate_; }
  /// Waits between two probes while contended.
  unsigned probe_every() const { return probe_every_; }

 private:
  SpinBudget(us max, bool fixed) : max_(max), fixed_(fixed), typical_(double(max.count())) {}
  us budget() const;
  us max_;
  bool fixed_;
  double rate_ = 1.0;  // start spinning: the fast choice when each function has a core
  double typical_;     // us, the typical short wait
  bool on_ = true;
  bool contended_ = false;
  bool probing_ = false;       // the current wait is a probe
  bool probe_clean_ = true;    // ... and no yield of it was long
  unsigned since_probe_ = 0;   // waits since the last probe or the contention began
  unsigned clean_probes_ = 0;  // clean probes in a row
  unsigned calm_ = kCalm;      // spinning waits since the last contention (the start is calm)
  unsigned probe_every_ = kFirstProbeEvery;
};

}  // namespace FMI::Direct
