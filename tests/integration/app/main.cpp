// A program written against the original FMI API that touches every public item.
// Built by the two consumer projects next to this folder (add_subdirectory and
// find_package); run as
//   fmi_app <config.json> <num_peers>
// Peers are threads sharing an in-process channel (the config disables every
// backend). Prints "fmi_app: OK (<n> peers)" and exits 0, or names the first
// failure and exits 1.
#include <Communicator.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

int fmi_h_sum(int a, int b);  // fmi_h_user.cpp, which includes <fmi.h>

namespace {

std::mutex out_mu;
std::atomic<int> failures{0};

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::lock_guard lk(out_mu);                                                                 \
      std::cerr << __FILE__ << ":" << __LINE__ << ": peer " << peer << ": " #cond << " failed\n"; \
      ++failures;                                                                                 \
    }                                                                                             \
  } while (0)

// Always picks the first registered channel.
class FirstChannel : public FMI::Utils::ChannelPolicy {
 public:
  std::string get_channel(const FMI::Utils::OperationInfo&,
                          const FMI::Utils::ChannelMap& channels) override {
    return channels.begin()->first;
  }
};

void peer_main(const std::string& config, FMI::Utils::peer_num peer, FMI::Utils::peer_num n,
               std::shared_ptr<FMI::Comm::InProcessHub> hub) {
  FMI::Communicator comm(peer, n, config, "IntegrationApp", 256);
  comm.register_channel("InProcess", hub->p2p_endpoint());
  comm.hint(FMI::Utils::Hint::fast);
  comm.hint(FMI::Utils::Hint::cheap);
  comm.set_channel_policy(std::make_shared<FirstChannel>());

  using FMI::Comm::Data;
  using FMI::Utils::Function;
  const int me = static_cast<int>(peer);
  const int N = static_cast<int>(n);

  // ---- Data<T> in every form ----
  Data<int> scalar = me;  // implicit
  Data<int> defaulted;
  CHECK(defaulted.get() == 0);
  CHECK(scalar.get() == me);
  CHECK(scalar.size_in_bytes() == sizeof(int));
  CHECK(*static_cast<int*>(scalar.data()) == me);
  CHECK(scalar == Data<int>(me));
  std::ostringstream printed;
  printed << scalar;
  CHECK(printed.str() == std::to_string(me));
  Data<std::vector<double>> counted(4);
  CHECK(counted.size_in_bytes() == 4 * sizeof(double));
  Data<std::vector<int>> from_vector(std::vector<int>{me, me + 1});
  CHECK(from_vector.get().size() == 2);
  from_vector.ref()[1] = me + 2;
  CHECK(static_cast<int*>(from_vector.data())[1] == me + 2);
  char raw_mem[5] = {'a', 'b', 'c', 'd', 'e'};
  Data<void*> raw(raw_mem, sizeof raw_mem);
  CHECK(raw.get() == raw_mem && raw.size_in_bytes() == 5);

  // ---- point to point ----
  if (n > 1) {
    const FMI::Utils::peer_num next = (peer + 1) % n, prev = (peer + n - 1) % n;
    Data<int> out = me * 100, in;
    if (peer % 2 == 0) {
      comm.send(out, next);
      comm.recv(in, prev);
    } else {
      comm.recv(in, prev);
      comm.send(out, next);
    }
    CHECK(in.get() == static_cast<int>(prev) * 100);
  } else {
    // With one peer there is nobody to talk to: sending to oneself is a usage error.
    Data<int> out = 1;
    bool threw = false;
    try {
      comm.send(out, 0);
    } catch (const FMI::Error&) {
      threw = true;
    }
    CHECK(threw);
    threw = false;
    try {
      comm.recv(out, 0);
    } catch (const FMI::Error&) {
      threw = true;
    }
    CHECK(threw);
  }

  // ---- collectives ----
  Data<std::vector<float>> b(std::vector<float>(3, peer == 0 ? 1.5f : 0.0f));
  comm.bcast(b, 0);
  CHECK(b.get() == std::vector<float>(3, 1.5f));
  comm.bcast(raw, n - 1);
  CHECK(raw_mem[0] == 'a');

  comm.barrier();

  Data<std::vector<int>> gathered(n);
  comm.gather(scalar, gathered, 0);
  if (peer == 0)
    for (int q = 0; q < N; ++q) CHECK(gathered.get()[q] == q);

  Data<std::vector<int>> to_scatter(n);
  for (int q = 0; q < N; ++q) to_scatter.ref()[q] = q * 3;
  Data<int> scattered;
  comm.scatter(to_scatter, scattered, 0);
  CHECK(scattered.get() == me * 3);

  Data<int> sum_out;
  comm.reduce(scalar, sum_out, 0, Function<int>::sum());
  if (peer == 0) CHECK(sum_out.get() == N * (N - 1) / 2);

  Data<std::vector<double>> vals(std::vector<double>{double(me + 1), double(-me)}), res(2);
  comm.allreduce(vals, res, Function<std::vector<double>>::max());
  CHECK(res.get()[0] == N && res.get()[1] == 0);
  comm.allreduce(vals, res, Function<std::vector<double>>::min());
  CHECK(res.get()[0] == 1 && res.get()[1] == -(N - 1));
  comm.allreduce(vals, res, Function<std::vector<double>>::prod());
  Data<int> plus_one = me + 1, fact;
  comm.allreduce(plus_one, fact, Function<int>::prod());
  int expected_fact = 1;
  for (int q = 1; q <= N; ++q) expected_fact *= q;
  CHECK(fact.get() == expected_fact);

  // A user function that is neither commutative nor associative: strictly left to right.
  Function<int> ordered([](int a, int b) { return 2 * a + b; }, false, false);
  Data<int> prefix;
  comm.scan(plus_one, prefix, ordered);
  int expected_prefix = 1;
  for (int q = 1; q <= me; ++q) expected_prefix = 2 * expected_prefix + (q + 1);
  CHECK(prefix.get() == expected_prefix);

  Data<std::vector<int>> everyone(n);
  comm.allgather(scalar, everyone);
  for (int q = 0; q < N; ++q) CHECK(everyone.get()[q] == q);

  Data<std::vector<int>> a2a_send(n), a2a_recv(n);
  for (int q = 0; q < N; ++q) a2a_send.ref()[q] = me * 1000 + q;
  comm.alltoall(a2a_send, a2a_recv);
  for (int q = 0; q < N; ++q) CHECK(a2a_recv.get()[q] == q * 1000 + me);

  Data<std::vector<int>> rs_send(std::vector<int>(2 * n, 1)), rs_recv(2);
  comm.reduce_scatter(rs_send, rs_recv, Function<std::vector<int>>::sum());
  CHECK(rs_recv.get() == std::vector<int>(2, N));

  // Variable-size collectives: peer q contributes q ints (peer 0 nothing).
  std::vector<std::size_t> counts(n);
  std::size_t total = 0;
  for (int q = 0; q < N; ++q) total += counts[q] = static_cast<std::size_t>(q);
  Data<std::vector<int>> mine(std::vector<int>(counts[me], me)), packed(total);
  comm.allgatherv(mine, packed, counts);
  for (int q = 0, at = 0; q < N; ++q)
    for (int k = 0; k < q; ++k) CHECK(packed.get()[at++] == q);
  Data<std::vector<int>> at_root(me == 0 ? total : 0), back(counts[me]);
  comm.gatherv(mine, at_root, counts, 0);
  comm.scatterv(at_root, counts, back, 0);
  CHECK(back.get() == mine.get());
  std::vector<std::size_t> ones(n, 1);
  comm.alltoallv(a2a_send, ones, a2a_recv, ones);
  for (int q = 0; q < N; ++q) CHECK(a2a_recv.get()[q] == q * 1000 + me);

  // Sub-communicators: even and odd peers, highest first; then a dup of the child.
  std::unique_ptr<FMI::Communicator> half = comm.split(me % 2, -me);
  CHECK(half != nullptr);
  const int hn = (N - me % 2 + 1) / 2;
  CHECK(int(half->num_peers()) == hn);
  CHECK(int(half->peer_id()) == (N - 1 - me) / 2);  // same-parity peers above me
  std::unique_ptr<FMI::Communicator> twin = half->dup();
  Data<int> one(me), half_sum;
  twin->allreduce(one, half_sum, Function<int>::sum());
  int want_sum = 0;
  for (int q = me % 2; q < N; q += 2) want_sum += q;
  CHECK(half_sum.get() == want_sum);
  CHECK(comm.split(-1, 0) == nullptr);

  // Non-blocking operations (fmi/request.h): two in flight, completed by wait_any
  // and wait_all.
  Data<int> contribution(me + 1), sum_all, scanned;
  std::vector<FMI::Request> reqs;
  reqs.push_back(comm.iallreduce(contribution, sum_all, Function<int>::sum()));
  reqs.push_back(comm.iscan(contribution, scanned, Function<int>::sum()));
  const std::size_t first = FMI::wait_any(reqs);
  CHECK(first < 2 && !reqs[first].active());
  FMI::wait_all(reqs);
  CHECK(sum_all.get() == N * (N + 1) / 2 && scanned.get() == (me + 1) * (me + 2) / 2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " <config.json> <num_peers>\n";
    return 2;
  }
  if (fmi_h_sum(2, 3) != 5) {
    std::cerr << "fmi_app: Function<int>::sum() through <fmi.h> is wrong\n";
    return 1;
  }
  const std::string config = argv[1];
  const auto n = static_cast<FMI::Utils::peer_num>(std::stoul(argv[2]));

  // The original API's timeout type still catches a recv that nobody answers.
  {
    auto lonely = std::make_shared<FMI::Comm::InProcessHub>(2, std::chrono::milliseconds(100));
    FMI::Communicator comm(0, 2, config, "TimeoutProbe");
    comm.register_channel("InProcess", lonely->store_endpoint());
    FMI::Comm::Data<int> x;
    bool caught = false;
    try {
      comm.recv(x, 1);
    } catch (FMI::Utils::Timeout& e) {
      caught = true;
      std::cout << "fmi_app: timeout as expected: " << e.what() << "\n";
    }
    if (!caught) {
      std::cerr << "fmi_app: recv without a sender did not raise FMI::Utils::Timeout\n";
      return 1;
    }
  }

  auto hub = std::make_shared<FMI::Comm::InProcessHub>(n, std::chrono::seconds(20));
  std::vector<std::thread> threads;
  for (FMI::Utils::peer_num p = 0; p < n; ++p)
    threads.emplace_back([&, p] {
      try {
        peer_main(config, p, n, hub);
      } catch (const std::exception& e) {
        std::lock_guard lk(out_mu);
        std::cerr << "fmi_app: peer " << p << " threw: " << e.what() << "\n";
        ++failures;
      }
    });
  for (auto& t : threads) t.join();
  if (failures) {
    std::cerr << "fmi_app: " << failures << " failure(s)\n";
    return 1;
  }
  std::cout << "fmi_app: OK (" << n << " peers)\n";
  return 0;
}
