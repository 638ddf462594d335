// stream_check: a long checksummed stream between two functions over FMI (issue 3:
// "a long stream, 1 GiB, checksummed, over a punched connection"). Started by
// fmirun (-n 2, e.g. with --nat so the connection is hole-punched through two NATs).
//
//   fmirun --nat -n 2 --config C -- stream_check [MiB] [message MiB]
//
// Peer 0 sends MiB mebibytes (default 1024) as messages of `message MiB` (default 16)
// filled from a counter-based generator; peer 1 checks every 8-byte word as it
// arrives, folds the stream into a checksum and sends the checksum back; peer 0
// compares it with its own. Exits 1 with the offset of the first wrong word, or
// when the checksums differ; prints the throughput.
#include <fmi/fmi.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::uint64_t word(std::uint64_t i) {  // splitmix64 of the word's index
  std::uint64_t x = i + 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::uint64_t fold(std::uint64_t h, std::uint64_t w) { return (h ^ w) * 0x100000001B3ull; }

unsigned env_uint(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) {
    std::fprintf(stderr, "stream_check: $%s is not set (start me with fmirun -n 2)\n", name);
    std::exit(2);
  }
  return unsigned(std::stoul(v));
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t total_mib = argc > 1 ? std::stoull(argv[1]) : 1024;
  const std::uint64_t msg_mib = argc > 2 ? std::stoull(argv[2]) : 16;
  const unsigned id = env_uint("FMI_PEER_ID"), n = env_uint("FMI_NUM_PEERS");
  if (n != 2 || msg_mib == 0 || total_mib % msg_mib != 0) {
    std::fprintf(stderr, "stream_check: needs 2 peers and MiB a multiple of the message size\n");
    return 2;
  }
  const char* cfg = std::getenv("FMI_CONFIG");
  try {
    FMI::Communicator comm(id, n, cfg ? cfg : "config/fmi.json",
                           std::getenv("FMI_COMM_NAME") ? std::getenv("FMI_COMM_NAME") : "stream");
    const std::size_t words = std::size_t(msg_mib) << 17;  // 8-byte words per message
    const std::uint64_t messages = total_mib / msg_mib;
    FMI::Comm::Data<std::vector<std::uint64_t>> buf(words);
    std::uint64_t h = 0xcbf29ce484222325ull;
    FMI::Comm::Data<std::uint64_t> theirs(0);
    comm.barrier();  // the connection is up: time the stream only
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t m = 0; m < messages; ++m) {
      auto& v = buf.ref();
      if (id == 0) {
        for (std::size_t k = 0; k < words; ++k) v[k] = word(m * words + k);
        comm.send(buf, 1);
        for (std::size_t k = 0; k < words; ++k) h = fold(h, v[k]);
      } else {
        comm.recv(buf, 0);
        for (std::size_t k = 0; k < words; ++k) {
          if (v[k] != word(m * words + k)) {
            std::fprintf(stderr, "stream_check: WRONG word at byte %" PRIu64 " of the stream\n",
                         (m * words + k) * 8);
            return 1;
          }
          h = fold(h, v[k]);
        }
      }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (id == 1) {
      theirs = FMI::Comm::Data<std::uint64_t>(h);
      comm.send(theirs, 0);
      std::printf("received %" PRIu64 " MiB in %" PRIu64
                  " messages, every word checked, "
                  "checksum %016" PRIx64 "\n",
                  total_mib, messages, h);
      return 0;
    }
    comm.recv(theirs, 1);
    const bool same = theirs.get() == h;
    std::printf("sent %" PRIu64 " MiB in %.2f s (%.0f MiB/s); checksums %s (%016" PRIx64 ")\n",
                total_mib, secs, double(total_mib) / secs, same ? "match" : "DIFFER", h);
    return same ? 0 : 1;
  } catch (const FMI::Error& e) {
    std::fprintf(stderr, "stream_check: %s\n", e.what());
    return 1;
  }
}
