// Shared by fmi-bench and the baselines in bench/baseline (bare TCP, OpenMPI):
// statistics and the one row format every tool prints, so that bench/compare.sh
// and bench/plot.py read all of them the same way. Size lists are parsed and
// printed by tools/common/cli.h (no FMI dependency, like this header).
//
// Row semantics (identical in every tool):
//  - bytes: one peer's contribution: the message of pingpong/bandwidth, the bcast
//    buffer, the send buffer of reduce/allreduce/scan, each peer's block of
//    gather/scatter/allgather, each per-pair block of alltoall and reduce_scatter;
//    alltoallv: the heavy sender's per-pair block (alltoallv_block below);
//  - pingpong latency is one way (half the round trip), as OSU's osu_latency;
//  - bandwidth rows: latency is per message, bandwidth = bytes / latency;
//  - collective rows: per iteration, the slowest peer's time (OSU style), peers
//    aligned by an untimed barrier before each iteration;
//  - bandwidth column (MiB/s) for collectives = bytes / median (algorithm bandwidth).
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/common/cli.h"

namespace fmibench {

/// Bytes peer `from` sends to each peer in the skewed alltoallv of a row of `bytes`
/// (the same in fmi-bench and mpi_bench): peer 0 sends `bytes` to every peer, the
/// others bytes/16 each (rounded down, so small rows have empty blocks), i.e. one
/// peer sends most of the data, as in a shuffle with one hot partition.
inline std::size_t alltoallv_block(unsigned from, std::size_t bytes) {
  return from == 0 ? bytes : bytes / 16;
}

struct Summary {
  double median = 0, p90 = 0, min = 0, mean = 0;
  std::size_t n = 0;
};

/// Median, 90th percentile (nearest rank) and minimum of samples (any unit).
inline Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  s.min = v.front();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  std::size_t rank = static_cast<std::size_t>(std::ceil(0.9 * static_cast<double>(n)));
  s.p90 = v[std::clamp<std::size_t>(rank, 1, n) - 1];
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(n);
  return s;
}

/// Iterations to run after warm-up: enough to fill `budget_s` at the warm-up's
/// speed, within [min_iters, max_iters]. Computed from values every peer shares
/// (the slowest peer's warm-up time), so every peer runs the same count.
inline std::size_t iterations_for(double per_iter_s, double budget_s, std::size_t min_iters,
                                  std::size_t max_iters) {
  if (per_iter_s <= 0) return max_iters;
  double n = budget_s / per_iter_s;
  if (n >= static_cast<double>(max_iters)) return max_iters;
  return std::max<std::size_t>(min_iters, static_cast<std::size_t>(n));
}

/// Warm-up iterations for a point: fewer for large messages (as OSU's skip_large),
/// whose iterations take long and need no cache or connection warming beyond two.
inline std::size_t warmup_for(std::size_t warmup, std::size_t bytes) {
  if (bytes >= (1u << 20))
    return std::min<std::size_t>(warmup, std::max<std::size_t>(2, warmup / 5));
  return warmup;
}

/// Messages in flight per iteration of the bandwidth test (OSU's window): many
/// small messages so that per-message overhead is amortised, one for large ones.
inline std::size_t bandwidth_window(std::size_t bytes) {
  constexpr std::size_t target = 4u << 20;
  if (bytes == 0) return 64;
  return std::clamp<std::size_t>(target / bytes, 1, 64);
}

/// One result line. tool: fmi | tcp | mpi. Times in microseconds.
struct Row {
  std::string tool, op, channel;
  unsigned peers = 0;
  std::size_t bytes = 0, iters = 0;
  double median_us = 0, p90_us = 0, min_us = 0;
  double bw_mibps = 0;   // bytes / median, MiB/s
  double pred_us = -1;   // model's predicted latency (<0: none)
  double pred_usd = -1;  // model's predicted cost per operation (<0: none)
};

inline const char* csv_header() {
  return "tool,op,channel,peers,bytes,iters,median_us,p90_us,min_us,bw_MiBps,pred_us,pred_usd";
}

inline std::string to_csv(const Row& r) {
  char buf[512];
  auto opt = [](double v, char* out, std::size_t n, const char* fmt) {
    if (v < 0)
      std::snprintf(out, n, "%s", "");
    else
      std::snprintf(out, n, fmt, v);
  };
  char pu[48], pc[48];
  opt(r.pred_us, pu, sizeof pu, "%.3f");
  opt(r.pred_usd, pc, sizeof pc, "%.6e");
  std::snprintf(buf, sizeof buf, "%s,%s,%s,%u,%zu,%zu,%.3f,%.3f,%.3f,%.3f,%s,%s", r.tool.c_str(),
                r.op.c_str(), r.channel.c_str(), r.peers, r.bytes, r.iters, r.median_us, r.p90_us,
                r.min_us, r.bw_mibps, pu, pc);
  return buf;
}

/// Parses a line written by to_csv (the driver reads its workers' output).
inline bool from_csv(const std::string& line, Row& r) {
  // Empty fields are meaningful (no model prediction): split keeping them.
  std::vector<std::string> fields;
  std::string cur;
  for (char c : line) {
    if (c == ',') {
      fields.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  fields.push_back(cur);
  if (fields.size() != 12) return false;
  try {
    r.tool = fields[0];
    r.op = fields[1];
    r.channel = fields[2];
    r.peers = static_cast<unsigned>(std::stoul(fields[3]));
    r.bytes = std::stoull(fields[4]);
    r.iters = std::stoull(fields[5]);
    r.median_us = std::stod(fields[6]);
    r.p90_us = std::stod(fields[7]);
    r.min_us = std::stod(fields[8]);
    r.bw_mibps = std::stod(fields[9]);
    r.pred_us = fields[10].empty() ? -1 : std::stod(fields[10]);
    r.pred_usd = fields[11].empty() ? -1 : std::stod(fields[11]);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

/// A row from per-iteration times in seconds (already the slowest peer's).
/// `per_iter_msgs`: messages of `bytes` each iteration moves (bandwidth window).
inline Row make_row(std::string tool, std::string op, std::string channel, unsigned peers,
                    std::size_t bytes, const std::vector<double>& secs,
                    std::size_t per_iter_msgs = 1) {
  Row r;
  r.tool = std::move(tool);
  r.op = std::move(op);
  r.channel = std::move(channel);
  r.peers = peers;
  r.bytes = bytes;
  r.iters = secs.size();
  Summary s = summarize(secs);
  const double k = 1e6 / static_cast<double>(per_iter_msgs);
  r.median_us = s.median * k;
  r.p90_us = s.p90 * k;
  r.min_us = s.min * k;
  r.bw_mibps = r.median_us > 0 ? static_cast<double>(bytes) / (r.median_us * 1e-6) / (1 << 20) : 0;
  return r;
}

/// Fixed-width table of rows, for people.
inline std::string table_header() {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-5s %-14s %-8s %5s %8s %6s %12s %12s %12s %11s %12s %12s",
                "tool", "op", "channel", "peers", "bytes", "iters", "median_us", "p90_us", "min_us",
                "MiB/s", "model_us", "model_USD");
  return buf;
}

inline std::string to_table(const Row& r) {
  char buf[320], pu[32], pc[32];
  if (r.pred_us < 0)
    std::snprintf(pu, sizeof pu, "-");
  else
    std::snprintf(pu, sizeof pu, "%.1f", r.pred_us);
  if (r.pred_usd < 0)
    std::snprintf(pc, sizeof pc, "-");
  else
    std::snprintf(pc, sizeof pc, "%.3e", r.pred_usd);
  std::snprintf(buf, sizeof buf,
                "%-5s %-14s %-8s %5u %8s %6zu %12.2f %12.2f %12.2f %11.1f %12s %12s",
                r.tool.c_str(), r.op.c_str(), r.channel.c_str(), r.peers,
                FMI::Tools::format_size_compact(r.bytes).c_str(), r.iters, r.median_us, r.p90_us,
                r.min_us, r.bw_mibps, pu, pc);
  return buf;
}

}  // namespace fmibench
