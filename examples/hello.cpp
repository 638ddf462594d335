// hello: FMI's point-to-point and collective calls in a few lines.
//
// Run it as N functions (N >= 1) with the launcher, e.g.
//   build/tools/fmirun/fmirun -n 4 --config config/fmi.json -- build/examples/hello
// (fmirun sets FMI_PEER_ID, FMI_NUM_PEERS, FMI_COMM_NAME and FMI_CONFIG). Each peer
// prints one line per operation with what it received, e.g.
//   [peer 2] send/recv: got 10 from peer 1 (ok)
//   [peer 2] bcast from peer 3: 3.25 (ok)
//   [peer 1] reduce to peer 1: sum of (id+1) = 10 (ok)
// and exits 1 if any result is wrong, so it doubles as a smoke test.
#include <fmi/fmi.h>

#include <cstdlib>
#include <iostream>
#include <string>

namespace {

std::string env(const char* name, const char* fallback = nullptr) {
  const char* v = std::getenv(name);
  if (v && *v) return v;
  if (fallback) return fallback;
  std::cerr << "hello: $" << name << " is not set (start me with fmirun)\n";
  std::exit(2);
}

}  // namespace

int main() {
  using FMI::Comm::Data;
  const unsigned id = std::stoul(env("FMI_PEER_ID"));
  const unsigned n = std::stoul(env("FMI_NUM_PEERS"));
  bool all_ok = true;
  auto report = [&](bool ok, const std::string& what) {
    std::cout << what << (ok ? " (ok)" : " (WRONG)") << std::endl;
    all_ok = all_ok && ok;
  };

  try {
    FMI::Communicator comm(id, n, env("FMI_CONFIG", "config/fmi.json"),
                           env("FMI_COMM_NAME", "hello"));

    // Point to point, around a ring: each peer sends 10*id to the next one. Odd peers
    // receive first so that no cycle of peers all waiting in send can form.
    if (n > 1) {
      const unsigned next = (id + 1) % n, prev = (id + n - 1) % n;
      Data<int> out(static_cast<int>(10 * id)), in;
      if (id % 2 == 0) {
        comm.send(out, next);
        comm.recv(in, prev);
      } else {
        comm.recv(in, prev);
        comm.send(out, next);
      }
      report(in.get() == static_cast<int>(10 * prev),
             "send/recv: got " + std::to_string(in.get()) + " from peer " + std::to_string(prev));
    }

    // Broadcast from the last peer (a non-zero root whenever n > 1).
    const unsigned bcast_root = n - 1;
    Data<double> value(id == bcast_root ? 3.25 : 0.0);
    comm.bcast(value, bcast_root);
    report(value.get() == 3.25,
           "bcast from peer " + std::to_string(bcast_root) + ": " + std::to_string(value.get()));

    // Reduce to peer 1 (peer 0 when alone): sum over peers of id+1 = n(n+1)/2.
    const unsigned reduce_root = 1 % n;
    Data<int> mine(static_cast<int>(id + 1)), total;
    comm.reduce(mine, total, reduce_root, FMI::Utils::Function<int>::sum());
    if (id == reduce_root)
      report(total.get() == static_cast<int>(n * (n + 1) / 2),
             "reduce to peer " + std::to_string(reduce_root) +
                 ": sum of (id+1) = " + std::to_string(total.get()));

    // Allreduce of a vector: element-wise max of (id, -id) = (n-1, 0) everywhere.
    Data<std::vector<long>> v(std::vector<long>{long(id), -long(id)}), vmax(2);
    comm.allreduce(v, vmax, FMI::Utils::Function<std::vector<long>>::max());
    report(vmax.get()[0] == long(n - 1) && vmax.get()[1] == 0,
           "allreduce max: (" + std::to_string(vmax.get()[0]) + ", " +
               std::to_string(vmax.get()[1]) + ")");

    comm.barrier();
    if (id == 0) std::cout << "hello from " << n << " functions, barrier passed" << std::endl;
  } catch (const FMI::Error& e) {
    std::cerr << "hello: peer " << id << ": " << e.what() << std::endl;
    return 1;
  }
  return all_ok ? 0 : 1;
}
