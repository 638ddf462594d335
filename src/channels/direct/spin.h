// How long a waiting Direct call spins (retrying its non-blocking sockets, yielding
// between tries) before it sleeps in poll: adaptive by default (docs/direct.md,
// "Waiting").
//
// Spinning pays when the reply comes within the spin: the call then skips the
// sleep/wake-up round trip of poll (tens of microseconds on a virtual machine). It
// costs when the reply comes later: the spinning process holds a core, and when
// functions outnumber cores that core is the one the sender needs to answer (a
// 16-function K-means on 2 cores: 69 ms per epoch spinning vs 16 ms sleeping). So
// the budget follows two observations:
//  - the outcome of each spin (data arrived while spinning, or the spin ran out):
//    an exponentially weighted success rate switches spinning off below one
//    threshold and on again above a higher one (the gap keeps it from flapping);
//    while off, one wait in kProbeEvery still spins, so that a change of pattern
//    (a ping-pong after a long computation) is noticed;
//  - a sample of the machine's load (runnable tasks against usable CPUs), taken
//    rarely by the channel: with more runnable tasks than CPUs nobody spins, and
//    afterwards spinning comes back only through successful probes.
// The class is pure (no clock, no /proc) so that its decisions are unit-tested;
// the channel feeds it.
#pragma once

#include <chrono>
#include <optional>

namespace FMI::Direct {

class SpinBudget {
 public:
  using us = std::chrono::microseconds;
  /// The budget of a spinning wait, and the longest one adaptation chooses.
  static constexpr us kDefaultMax{30};
  /// While spinning is off, every kProbeEvery-th wait spins anyway (a probe).
  static constexpr unsigned kProbeEvery = 16;
  /// Weight of one outcome in the success rate (1/8: about the last 8-16 spins).
  static constexpr double kWeight = 1.0 / 8;
  /// Spinning goes off when the success rate falls below kOff, on above kOn.
  static constexpr double kOff = 0.5;
  static constexpr double kOn = 0.75;

  /// Adapts between 0 and `max`.
  static SpinBudget adaptive(us max = kDefaultMax) { return SpinBudget(max, false); }
  /// Always `spin` (FMI_DIRECT_SPIN_US): outcomes and load are ignored.
  static SpinBudget fixed(us spin) { return SpinBudget(spin, true); }
  /// Fixed if FMI_DIRECT_SPIN_US is set (ConfigError if it is not 0..1000000), else
  /// adaptive.
  static SpinBudget from_env();

  /// How long the wait that starts now spins before it polls (counts probes).
  us next();
  /// The outcome of a wait that spun: `arrived` if data came while it spun, false
  /// if the spin ran out and the call went to poll.
  void spun(bool arrived);
  /// A sample of the machine: `runnable` tasks (running or ready), `cpus` usable.
  /// The first sample decides at once (a short job must not spin through its
  /// whole run on a busy machine); after it, two samples in a row must agree
  /// before the verdict changes: one task that happened to run at the moment of a
  /// sample does not stop the spinning.
  void load(unsigned runnable, unsigned cpus);

  bool is_fixed() const { return fixed_; }
  bool spinning() const { return on_ && !oversubscribed_; }
  bool oversubscribed() const { return oversubscribed_; }
  double success_rate() const { return rate_; }

 private:
  SpinBudget(us max, bool fixed) : max_(max), fixed_(fixed) {}
  us max_;
  bool fixed_;
  double rate_ = 1.0;  // start spinning: the fast choice when each function has a core
  bool on_ = true;
  bool oversubscribed_ = false;
  bool last_sample_over_ = false;
  bool sampled_ = false;
  unsigned since_probe_ = 0;
};

/// Runnable tasks on the machine (the running count of /proc/loadavg, which includes
/// the caller) and the CPUs this process may run on (sched_getaffinity); nullopt
/// where /proc/loadavg cannot be read.
struct MachineLoad {
  unsigned runnable;
  unsigned cpus;
};
std::optional<MachineLoad> sample_machine_load();

}  // namespace FMI::Direct
