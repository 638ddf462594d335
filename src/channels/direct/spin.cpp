#include "channels/direct/spin.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "fmi/errors.h"

namespace FMI::Direct {

SpinBudget SpinBudget::from_env() {
  const char* v = std::getenv("FMI_DIRECT_SPIN_US");
  if (!v || !*v || std::string_view(v) == "adaptive") return adaptive();
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (*end || n < 0 || n > 1000000)
    FMI_THROW(ConfigError, "FMI_DIRECT_SPIN_US='", v,
              "' is not a number of microseconds (0..1000000) or 'adaptive'");
  return fixed(us(n));
}

SpinBudget::us SpinBudget::budget() const {
  const double lo = double(std::min(kMinSpin, max_).count());
  const double b = std::clamp(kTimesTypical * typical_, lo, double(max_.count()));
  return us(std::llround(b));
}

SpinBudget::us SpinBudget::next() {
  if (fixed_) return max_;
  if (!on_ || max_.count() == 0) return us(0);
  if (contended_ && !probing_) {
    if (since_probe_ < probe_every_) return us(0);
    probing_ = true;
    since_probe_ = 0;
  }
  return budget();
}

bool SpinBudget::tried(ns yield) {
  if (fixed_ || yield < kLongYield) return true;
  if (probing_) {
    probe_clean_ = false;
  } else if (!contended_) {
    // A contention soon after the last one (fewer than kCalm spinning waits since
    // it ended) means the probes ended it too early: probe half as often.
    probe_every_ = calm_ >= kCalm ? kFirstProbeEvery : std::min(2 * probe_every_, kMaxProbeEvery);
    contended_ = true;
    since_probe_ = 0;
    clean_probes_ = 0;
    calm_ = 0;
  }
  return false;
}

void SpinBudget::waited(ns took) {
  if (fixed_) return;
  const double t = std::chrono::duration<double, std::micro>(took).count();
  const bool is_short = t <= kShortTimes * double(max_.count());
  rate_ += kWeight * ((is_short ? 1.0 : 0.0) - rate_);
  if (is_short) typical_ += kWeight * (t - typical_);
  if (on_ && rate_ < kOff) on_ = false;
  if (!on_ && rate_ >= kOn) on_ = true;
  if (probing_) {
    probing_ = false;
    if (!probe_clean_) {
      clean_probes_ = 0;
      probe_every_ = std::min(2 * probe_every_, kMaxProbeEvery);
    } else if (++clean_probes_ >= kCleanProbes) {
      contended_ = false;
      clean_probes_ = 0;
    }
    probe_clean_ = true;
  } else if (!contended_ && on_ && calm_ < kCalm) {
    ++calm_;
  }
  if (contended_) ++since_probe_;
}

}  // namespace FMI::Direct
