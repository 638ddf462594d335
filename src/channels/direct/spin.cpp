#include "channels/direct/spin.h"

#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "fmi/errors.h"

namespace FMI::Direct {

SpinBudget SpinBudget::from_env() {
  // The default is the fixed 30 us spin: the adaptive budget is opt-in
  // (FMI_DIRECT_SPIN_US=adaptive) because, measured idle, it settled on "no spin"
  // for two functions on two cores (its own spinning counts as runnable in
  // /proc/loadavg, and a probe spin rarely catches a partner that sleeps too):
  // 8-byte ping-pong 5 us -> 30-54 us (docs/benchmarks.md, issue 14's notes).
  const char* v = std::getenv("FMI_DIRECT_SPIN_US");
  if (!v || !*v) return fixed(kDefaultMax);
  if (std::string_view(v) == "adaptive") return adaptive();
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > 1000000)
    FMI_THROW(ConfigError, "FMI_DIRECT_SPIN_US='", v,
              "' is not a number of microseconds (0..1000000) or 'adaptive'");
  return fixed(us(n));
}

SpinBudget::us SpinBudget::next() {
  if (fixed_) return max_;
  if (oversubscribed_) return us(0);
  if (on_) return max_;
  if (++since_probe_ < kProbeEvery) return us(0);
  since_probe_ = 0;
  return max_;
}

void SpinBudget::spun(bool arrived) {
  if (fixed_) return;
  rate_ += kWeight * ((arrived ? 1.0 : 0.0) - rate_);
  if (on_ && rate_ < kOff) on_ = false;
  if (!on_ && rate_ >= kOn) on_ = true;
}

void SpinBudget::load(unsigned runnable, unsigned cpus) {
  bool over = runnable > cpus;
  if ((!sampled_ || over == last_sample_over_) && over && !oversubscribed_) {
    // Coming back needs successful probes, not only a quiet sample: functions that
    // stopped spinning sleep in poll, so the machine looks idle exactly because
    // they stopped; resuming all at once would oversubscribe it again.
    on_ = false;
    rate_ = 0.0;
  }
  if (!sampled_ || over == last_sample_over_) oversubscribed_ = over;
  sampled_ = true;
  last_sample_over_ = over;
}

std::optional<MachineLoad> sample_machine_load() {
  // "0.52 0.58 0.59 3/467 12345": the fourth field is runnable/total tasks.
  std::FILE* f = std::fopen("/proc/loadavg", "re");
  if (!f) return std::nullopt;
  double a, b, c;
  unsigned running = 0, total = 0;
  int n = std::fscanf(f, "%lf %lf %lf %u/%u", &a, &b, &c, &running, &total);
  std::fclose(f);
  if (n != 5) return std::nullopt;
  cpu_set_t set;
  CPU_ZERO(&set);
  unsigned cpus = 0;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) cpus = unsigned(CPU_COUNT(&set));
  if (cpus == 0) return std::nullopt;
  return MachineLoad{running, cpus};
}

}  // namespace FMI::Direct
