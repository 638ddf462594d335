#include "channels/s3/model.h"

#include <algorithm>
#include <cmath>

#include "channels/common/exchange_model.h"

namespace FMI::Comm {

using namespace model;

namespace {
constexpr double kGrowth = 1.5;   // S3 channel: poll interval x1.5 per miss
constexpr double kPollCap = 1.0;  // S3 channel: up to 1 s (or the first interval)
}  // namespace

S3Model::S3Model(const S3Config::Model& m, std::chrono::milliseconds first_poll)
    : m_(m), first_poll_(std::chrono::duration<double>(first_poll).count()) {}

double S3Model::upload_time(std::size_t bytes) const {
  return seconds(m_.overhead) + double(bytes) / (m_.bandwidth * kMiB);
}

// The consumer asks at t = 0, t0, t0 + 1.5 t0, ... (capped growth): every attempt
// before the object exists is a miss.
unsigned S3Model::misses(double wait) const {
  if (first_poll_ <= 0 || wait <= 0) return 0;
  unsigned m = 0;
  double t = 0.0;  // time of the next attempt
  while (t < wait && m < 100000) {
    ++m;
    t += interval_after(m);
  }
  return m;
}

double S3Model::interval_after(unsigned misses) const {
  if (misses == 0) return 0.0;
  const double cap = std::max(kPollCap, first_poll_);
  return std::min(cap, first_poll_ * std::pow(kGrowth, double(misses - 1)));
}

// Original formula, plus the polling delay: the object appears, on average, half
// a poll interval before the consumer asks again.
double S3Model::latency(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  const double poll_delay = 0.5 * interval_after(misses(upload_time(bytes)));
  return fan(p, c) * seconds(m_.overhead) + volume(p, c, bytes) / (m_.bandwidth * kMiB) +
         poll_delay;
}

// One PUT per producer, one GET per (producer, consumer) and, per consumer, the
// GETs that miss while the first object is still being uploaded; transfer price
// per GiB read out of S3.
double S3Model::cost(unsigned p, unsigned c, std::size_t bytes) const {
  if (p == 0 || c == 0) return 0.0;
  const double gets = double(p) * c + double(c) * misses(upload_time(bytes));
  return m_.upload_price * p + m_.download_price * gets +
         m_.transfer_price * volume(p, c, bytes) / kGiB;
}

// init: one HEAD bucket per function (billed as a GET). finalize, only after a
// collective ran on S3: n-1 arrival and n-1 release markers (PUTs), at least one
// LIST by peer 0 (billed as a PUT), n-1 release GETs; DELETEs are free.
double S3Model::setup_cost(unsigned n, double, bool collective) const {
  const double peers = double(n);
  double usd = peers * m_.download_price;
  if (collective && n > 1)
    usd += (2 * (peers - 1) + 1) * m_.upload_price + (peers - 1) * m_.download_price;
  return usd;
}

}  // namespace FMI::Comm
