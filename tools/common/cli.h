// Command-line helpers shared by the tools (fmi-bench, fmi-model, fmi-calibrate) and
// by the baselines in bench/baseline, which do not link FMI: this header depends on
// the standard library only. The parsers throw `Error` (std::invalid_argument by
// default); the tools that link FMI pass FMI::UsageError so that their usual
// `catch (const FMI::Error&)` reports a bad option like any other usage error.
//
//   for (auto s : FMI::Tools::split_list("8,1K,64M")) sizes.push_back(FMI::Tools::parse_size(s));
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace FMI::Tools {

/// Splits `list` at `sep`, dropping empty items ("8,1K,,64M," -> 8, 1K, 64M).
inline std::vector<std::string> split(const std::string& list, char sep = ',') {
  std::vector<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

/// A comma-separated list option ("8,1K,64M", "Direct,Redis").
inline std::vector<std::string> split_list(const std::string& list) { return split(list, ','); }

/// Parses "8", "1K", "1KiB", "1.5M", "2G", "64 MB": K, M and G are binary multiples
/// (as OSU prints them), a trailing B is optional, spaces are ignored. Throws Error
/// naming the text for anything else (no number, unknown unit, negative).
template <class Error = std::invalid_argument>
std::size_t parse_size(const std::string& text) {
  std::size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw Error("size '" + text + "': expected a number with an optional K, M or G suffix");
  }
  std::string unit = text.substr(pos);
  unit.erase(
      std::remove_if(unit.begin(), unit.end(), [](unsigned char c) { return std::isspace(c); }),
      unit.end());
  for (auto& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  double mult = 1;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB")
    mult = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else
    throw Error("size '" + text + "': unknown unit '" + unit + "' (use K, M or G)");
  if (v < 0) throw Error("size '" + text + "' is negative");
  return static_cast<std::size_t>(std::llround(v * mult));
}

/// A comma-separated list of sizes ("8,1K,64K,1M,64M").
template <class Error = std::invalid_argument>
std::vector<std::size_t> parse_sizes(const std::string& list) {
  std::vector<std::size_t> out;
  for (const auto& s : split_list(list)) out.push_back(parse_size<Error>(s));
  return out;
}

/// For people: "8 B", "1 KiB", "64 MiB", "1.5 MiB" (3 significant digits).
inline std::string format_size(std::size_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  if (v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f %s", v, units[u]);
  else
    std::snprintf(buf, sizeof buf, "%.3g %s", v, units[u]);
  return buf;
}

/// For the benchmark rows: "8", "1K", "64M", "1G", exact (a size that is no whole
/// multiple is printed in bytes), so that parse_size reads it back and
/// bench/compare.sh and bench/plot.py can match rows of different tools.
inline std::string format_size_compact(std::size_t b) {
  char buf[32];
  if (b >= (std::size_t(1) << 30) && b % (std::size_t(1) << 30) == 0)
    std::snprintf(buf, sizeof buf, "%zuG", b >> 30);
  else if (b >= (std::size_t(1) << 20) && b % (std::size_t(1) << 20) == 0)
    std::snprintf(buf, sizeof buf, "%zuM", b >> 20);
  else if (b >= 1024 && b % 1024 == 0)
    std::snprintf(buf, sizeof buf, "%zuK", b >> 10);
  else
    std::snprintf(buf, sizeof buf, "%zu", b);
  return buf;
}

}  // namespace FMI::Tools
