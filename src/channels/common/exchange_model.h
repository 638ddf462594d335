// Building blocks of the channels' reference exchange models (ChannelModel):
// units and the terms every model shares. Formulas: docs/policy.md.
#pragma once

#include <cmath>
#include <cstddef>

namespace FMI::Comm::model {

constexpr double kMiB = 1024.0 * 1024.0;
constexpr double kGiB = 1024.0 * kMiB;

inline double seconds(double ms) { return ms / 1000.0; }

// log2(P + C) request overheads: a fan-in or fan-out over P + C peers is modelled
// as a tree of requests (the original FMI's formula); 1 -> 1 pays one overhead.
inline double fan(unsigned p, unsigned c) { return std::log2(double(p) + double(c)); }

inline double volume(unsigned p, unsigned c, std::size_t bytes) {
  return double(p) * double(c) * double(bytes);
}

}  // namespace FMI::Comm::model
