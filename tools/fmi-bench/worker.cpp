// Measurement, in the way of the OSU micro-benchmarks:
//  - warm-up iterations first (connections, allocations, caches);
//  - the number of timed iterations comes from the slowest peer's warm-up time,
//    so it is the same on every peer and fills roughly `budget_s`;
//  - collectives: an untimed barrier aligns the peers before each iteration, each
//    peer times its own call, and the iteration's time is the slowest peer's
//    (element-wise max over peers, reduced once at the end, outside the timing);
//  - ping-pong: peer 0 times round trips with peer 1 and halves them;
//  - bandwidth: peer 0 sends a window of messages, peer 1 answers with one byte.
// Statistics are taken over the per-iteration times: median, p90, min.
//
// overlap (issue 18) measures compute + iallreduce + wait against its parts, at
// each size: rows overlap.allreduce (the blocking call alone), overlap.iallreduce
// (iallreduce + wait at once: the cost the non-blocking path adds), and for each
// kind of compute, sleeping (overlap.compute_sleep, overlap.sleep) and a loop over
// memory (overlap.compute_work, overlap.work), the compute alone and overlapped
// with an iallreduce. The compute is calibrated to last as long as the blocking
// allreduce, where perfect overlap would halve the time. Peer 0 prints the
// overlap fraction (t_compute + t_allreduce - t_overlapped) / min(t_compute,
// t_allreduce) to stderr: 1 when the transfer is fully hidden, 0 when not at all.
// Real work can only overlap on a machine with a core to spare for the worker
// thread (a 2-core machine shared by several functions has none).
#include "worker.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "fmi/data.h"
#include "fmi/function.h"
#ifdef FMI_BENCH_HAVE_MODEL
#include "fmi/model.h"
#endif

namespace fmibench {
namespace {

using Clock = std::chrono::steady_clock;
using FMI::Utils::Operation;
using Raw = FMI::Comm::Data<void*>;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Operation operation_of(const std::string& op) {
  if (op == "pingpong" || op == "bandwidth") return Operation::send;
  if (op == "mesh") return Operation::barrier;
  if (op == "overlap") return Operation::allreduce;
  if (op == "bcast") return Operation::bcast;
  if (op == "barrier") return Operation::barrier;
  if (op == "gather") return Operation::gather;
  if (op == "scatter") return Operation::scatter;
  if (op == "reduce") return Operation::reduce;
  if (op == "allreduce") return Operation::allreduce;
  if (op == "scan") return Operation::scan;
  if (op == "allgather") return Operation::allgather;
  if (op == "alltoall") return Operation::alltoall;
  if (op == "alltoallv") return Operation::alltoallv;
  if (op == "reduce_scatter") return Operation::reduce_scatter;
  FMI_THROW(FMI::UsageError, "fmi-bench: unknown operation '", op, "'");
}

class Runner {
 public:
  Runner(FMI::Communicator& comm, const WorkerOptions& opt, const WorkerEvents& ev)
      : comm_(comm), opt_(opt), ev_(ev), me_(comm.peer_id()), n_(comm.num_peers()) {}

  void run() {
    for (const auto& op : opt_.ops) operation_of(op);  // every peer validates first
    // Open every connection before the first point (as mpi_bench does for
    // OpenMPI), so that no point pays for the mesh's set-up.
    {
      std::vector<std::byte> a(n_), b(n_);
      Raw s(a.data(), a.size()), r(b.data(), b.size());
      for (int i = 0; i < 3; ++i) {
        comm_.alltoall(s, r);
        comm_.barrier();
      }
    }
    for (const auto& op : opt_.ops) {
      if (op == "barrier" || op == "mesh") {
        point(op, 0);
        continue;
      }
      for (std::size_t s : opt_.sizes) point(op, s);
    }
  }

 private:
  // Bytes of the point's buffers on one peer, to skip what does not fit.
  std::size_t footprint(const std::string& op, std::size_t bytes) const {
    if (op == "gather" || op == "scatter" || op == "allgather") return bytes * (n_ + 1);
    if (op == "alltoall" || op == "reduce_scatter" || op == "alltoallv") return bytes * n_ * 2;
    return bytes * 2;
  }

  void skip(const std::string& op, std::size_t bytes, const std::string& why) {
    if (me_ == 0 && ev_.progress) ev_.progress(op, bytes, why);
  }

  void point(const std::string& op, std::size_t bytes) {
    // As osu_latency / osu_bw: exactly two peers (more would only idle).
    if ((op == "pingpong" || op == "bandwidth") && n_ != 2)
      return skip(op, bytes, "runs on 2 peers only");
    // A new communicator gets its channels from the configuration; the in-process
    // ones are registered by hand, so there is nothing to set up.
    if (op == "mesh" && opt_.channel_label.rfind("inproc", 0) == 0)
      return skip(op, bytes, "needs a channel from the configuration (not inproc)");
    // Reductions are float32 sums: whole floats only.
    const bool reduction = op == "reduce" || op == "allreduce" || op == "scan" ||
                           op == "reduce_scatter" || op == "overlap";
    if (reduction) bytes = std::max<std::size_t>(4, (bytes + 3) / 4 * 4);
    if (footprint(op, bytes) > opt_.max_buffer)
      return skip(op, bytes,
                  "needs " + FMI::Tools::format_size_compact(footprint(op, bytes)) +
                      " per peer (> --max-buffer)");
    if (me_ == 0 && ev_.progress) ev_.progress(op, bytes, "");

    if (op == "overlap") return overlap(bytes);
    std::vector<double> secs;
    std::size_t per_iter = 1;
    if (op == "pingpong") {
      secs = pingpong(bytes);
    } else if (op == "mesh") {
      secs = mesh();
    } else if (op == "bandwidth") {
      per_iter = bandwidth_window(bytes);
      secs = bandwidth(bytes, per_iter);
    } else {
      secs = collective(op, bytes);
    }
    if (me_ != 0) return;
    Row r = make_row("fmi", op, channel_name(op, bytes), n_, bytes, secs, per_iter);
    predict(r, op, bytes);
    if (ev_.row) ev_.row(r);
  }

  FMI::Utils::OperationInfo info_of(const std::string& op, std::size_t bytes) const {
    FMI::Utils::OperationInfo info;
    info.op = operation_of(op);
    // The Communicator chooses alltoallv's channel as for empty blocks.
    info.data_size = op == "alltoallv" ? 0 : bytes;
    info.num_peers = op == "pingpong" || op == "bandwidth" ? 2 : n_;
    info.hint = comm_.get_hint();
    info.faas_memory = faas_memory_;
    return info;
  }

  std::string channel_name(const std::string& op, std::size_t bytes) const {
    if (!opt_.channel_label.empty()) return opt_.channel_label;
    auto info = info_of(op, bytes);
    info.num_peers = n_;  // what the Communicator itself asks the policy
    return comm_.channel_for(info);
  }

  void predict([[maybe_unused]] Row& r, [[maybe_unused]] const std::string& op,
               [[maybe_unused]] std::size_t bytes) const {
#ifdef FMI_BENCH_HAVE_MODEL
    auto info = info_of(op, bytes);
    auto in = info;
    in.num_peers = n_;
    const std::string name = comm_.channel_for(in);
    const auto& ch = comm_.channels().at(name);
    std::shared_ptr<const FMI::Comm::ChannelModel> model = ch->model();
    if (!model) model = FMI::Comm::make_builtin_model(name, comm_.config());
    if (!model) return;
    FMI::Utils::Prediction p = FMI::Utils::predict(info, ch->kind(), *model, comm_.config());
    r.pred_us = p.latency * 1e6;
    r.pred_usd = p.cost();
#endif
  }

  // ---- synchronisation helpers (untimed) ---------------------------------

  // The slowest peer's value, on every peer.
  double max_over_peers(double v) {
    FMI::Comm::Data<double> in(v), out;
    comm_.allreduce(in, out, FMI::Utils::Function<double>::max());
    return out.get();
  }

  // The count of timed iterations, from the slowest peer's median warm-up
  // iteration (the first ones include connection set-up: a mean would be far
  // too pessimistic).
  std::size_t agree_iterations(const std::vector<double>& warm, std::size_t max_iters) {
    double per = max_over_peers(summarize(warm).median);
    return iterations_for(per, opt_.budget_s, opt_.min_iters, max_iters);
  }

  template <typename F>
  std::vector<double> warm_up(std::size_t count, bool align, F&& once) {
    std::vector<double> secs;
    for (std::size_t i = 0; i < count; ++i) {
      if (align) comm_.barrier();
      auto a = Clock::now();
      once();
      secs.push_back(seconds_since(a));
    }
    return secs;
  }

  // Per-iteration slowest time, valid on peer 0.
  std::vector<double> slowest(std::vector<double> mine) {
    FMI::Comm::Data<std::vector<double>> in(std::move(mine)), out(in.size());
    comm_.reduce(in, out, 0, FMI::Utils::Function<std::vector<double>>::max());
    return me_ == 0 ? out.get() : std::vector<double>{};
  }

  // ---- point to point ----------------------------------------------------

  std::vector<double> pingpong(std::size_t bytes) {
    std::vector<std::byte> buf(std::max<std::size_t>(bytes, 1));
    Raw msg(buf.data(), bytes);
    auto once = [&] {
      if (me_ == 0) {
        comm_.send(msg, 1);
        comm_.recv(msg, 1);
      } else if (me_ == 1) {
        comm_.recv(msg, 0);
        comm_.send(msg, 0);
      }
    };
    comm_.barrier();
    std::size_t iters =
        agree_iterations(warm_up(warmup_for(opt_.warmup, bytes), false, once), opt_.iters);
    std::vector<double> secs;
    secs.reserve(iters);
    for (std::size_t i = 0; i < iters; ++i) {
      auto a = Clock::now();
      once();
      secs.push_back(seconds_since(a) / 2);
    }
    comm_.barrier();
    return secs;
  }

  // Set-up of a whole communicator: from the moment every function has started
  // (a barrier on the benchmark's own communicator) until every function has a
  // connection to every other (the first barrier of a new communicator connects
  // the full mesh: Communicator::connect_all before a collective). The slowest
  // function's time counts. Each iteration is a new communicator name, so a new
  // registration, new local ports and new NAT mappings.
  std::vector<double> mesh() {
    auto once = [&] {
      FMI::Communicator c(me_, n_, comm_.config(),
                          comm_.comm_name() + "-mesh" + std::to_string(mesh_rounds_++),
                          faas_memory_);
      c.barrier();
    };
    auto timed = [&](std::size_t count) {
      std::vector<double> secs;
      for (std::size_t i = 0; i < count; ++i) {
        comm_.barrier();
        auto t = Clock::now();
        once();
        secs.push_back(seconds_since(t));
      }
      return secs;
    };
    std::size_t iters = agree_iterations(timed(std::max<std::size_t>(1, opt_.warmup / 10)),
                                         std::max<std::size_t>(opt_.iters / 10, 1));
    return slowest(timed(iters));
  }

  std::vector<double> bandwidth(std::size_t bytes, std::size_t window) {
    std::vector<std::byte> buf(std::max<std::size_t>(bytes, 1));
    Raw msg(buf.data(), bytes);
    FMI::Comm::Data<char> ack('a');
    auto once = [&] {
      if (me_ == 0) {
        for (std::size_t w = 0; w < window; ++w) comm_.send(msg, 1);
        comm_.recv(ack, 1);
      } else if (me_ == 1) {
        for (std::size_t w = 0; w < window; ++w) comm_.recv(msg, 0);
        comm_.send(ack, 0);
      }
    };
    comm_.barrier();
    const std::size_t warm = std::max<std::size_t>(2, warmup_for(opt_.warmup, bytes) / 5);
    std::size_t iters = agree_iterations(warm_up(warm, false, once),
                                         std::max<std::size_t>(opt_.iters / 10, opt_.min_iters));
    std::vector<double> secs;
    secs.reserve(iters);
    for (std::size_t i = 0; i < iters; ++i) {
      auto a = Clock::now();
      once();
      secs.push_back(seconds_since(a));
    }
    comm_.barrier();
    return secs;
  }

  // ---- collectives -------------------------------------------------------

  std::vector<double> collective(const std::string& op, std::size_t bytes) {
    const std::size_t floats = bytes / 4;
    std::vector<std::byte> a, b;
    FMI::Comm::Data<std::vector<float>> fa, fb;
    const auto sum = FMI::Utils::Function<std::vector<float>>::sum();
    std::function<void()> body;

    if (op == "barrier") {
      body = [&] { comm_.barrier(); };
    } else if (op == "bcast") {
      a.assign(bytes, std::byte{1});
      body = [&] {
        Raw d(a.data(), bytes);
        comm_.bcast(d, 0);
      };
    } else if (op == "gather" || op == "allgather") {
      a.assign(bytes, std::byte{1});
      b.resize(bytes * n_);
      const bool all = op == "allgather";
      body = [&, all] {
        Raw s(a.data(), bytes);
        Raw r(b.data(), (all || me_ == 0) ? bytes * n_ : 0);
        if (all)
          comm_.allgather(s, r);
        else
          comm_.gather(s, r, 0);
      };
    } else if (op == "scatter") {
      a.assign(me_ == 0 ? bytes * n_ : 0, std::byte{1});
      b.resize(bytes);
      body = [&] {
        Raw s(a.data(), a.size());
        Raw r(b.data(), bytes);
        comm_.scatter(s, r, 0);
      };
    } else if (op == "alltoall") {
      a.assign(bytes * n_, std::byte{1});
      b.resize(bytes * n_);
      body = [&] {
        Raw s(a.data(), a.size());
        Raw r(b.data(), b.size());
        comm_.alltoall(s, r);
      };
    } else if (op == "alltoallv") {
      std::vector<std::size_t> sc(n_, alltoallv_block(me_, bytes)), rc(n_);
      for (unsigned q = 0; q < n_; ++q) rc[q] = alltoallv_block(q, bytes);
      a.assign(alltoallv_block(me_, bytes) * n_, std::byte{1});
      b.resize(std::accumulate(rc.begin(), rc.end(), std::size_t(0)));
      body = [&, sc, rc] {
        Raw s(a.data(), a.size());
        Raw r(b.data(), b.size());
        comm_.alltoallv(s, sc, r, rc);
      };
    } else if (op == "reduce" || op == "allreduce" || op == "scan") {
      fa.ref().assign(floats, 1.0f);
      fb.ref().assign(floats, 0.0f);
      if (op == "reduce")
        body = [&] { comm_.reduce(fa, fb, 0, sum); };
      else if (op == "allreduce")
        body = [&] { comm_.allreduce(fa, fb, sum); };
      else
        body = [&] { comm_.scan(fa, fb, sum); };
    } else if (op == "reduce_scatter") {
      fa.ref().assign(floats * n_, 1.0f);
      fb.ref().assign(floats, 0.0f);
      body = [&] { comm_.reduce_scatter(fa, fb, sum); };
    }

    auto secs = aligned(bytes, body);
    check_sum(op, bytes, fb);
    return secs;
  }

  // Each peer's time of `body` per iteration, the iterations aligned by a barrier;
  // the slowest peer's per iteration, on peer 0.
  std::vector<double> aligned(std::size_t bytes, const std::function<void()>& body) {
    std::size_t iters =
        agree_iterations(warm_up(warmup_for(opt_.warmup, bytes), true, body), opt_.iters);
    std::vector<double> secs;
    secs.reserve(iters);
    for (std::size_t i = 0; i < iters; ++i) {
      comm_.barrier();
      auto t = Clock::now();
      body();
      secs.push_back(seconds_since(t));
    }
    return slowest(std::move(secs));
  }

  // A wrong result would make every number meaningless: check the sums once.
  void check_sum(const std::string& op, std::size_t bytes,
                 const FMI::Comm::Data<std::vector<float>>& fb) const {
    const std::size_t floats = bytes / 4;
    if ((op == "allreduce" || op == "overlap" || (op == "reduce" && me_ == 0)) && floats > 0 &&
        (fb.get().front() != static_cast<float>(n_) || fb.get().back() != static_cast<float>(n_)))
      FMI_THROW(FMI::PeerError, "fmi-bench: ", op, " of ", bytes, " B on ", n_, " peers gave ",
                fb.get().front(), " on peer ", me_, ", expected ", n_);
  }

  // ---- overlap of computation and communication (see the top of the file) --

  void overlap(std::size_t bytes) {
    const std::size_t floats = bytes / 4;
    FMI::Comm::Data<std::vector<float>> fa(std::vector<float>(floats, 1.0f)),
        fb(std::vector<float>(floats, 0.0f));
    const auto sum = FMI::Utils::Function<std::vector<float>>::sum();
    auto emit = [&](const std::string& name, const std::vector<double>& secs) {
      if (me_ != 0) return 0.0;
      Row r = make_row("fmi", name, channel_name("allreduce", bytes), n_, bytes, secs);
      if (ev_.row) ev_.row(r);
      return r.median_us;
    };

    const double t_comm =
        emit("overlap.allreduce", aligned(bytes, [&] { comm_.allreduce(fa, fb, sum); }));
    check_sum("overlap", bytes, fb);
    const double t_nb =
        emit("overlap.iallreduce", aligned(bytes, [&] { comm_.iallreduce(fa, fb, sum).wait(); }));
    check_sum("overlap", bytes, fb);
    // Every peer computes for as long as the slowest peer's blocking allreduce.
    const auto target =
        std::chrono::duration<double>(max_over_peers(me_ == 0 ? t_comm * 1e-6 : 0.0));

    // Compute as sleep: leaves the cores to the worker thread.
    const auto nap = std::chrono::duration_cast<Clock::duration>(target);
    const double c_sleep =
        emit("overlap.compute_sleep", aligned(bytes, [&] { std::this_thread::sleep_for(nap); }));
    const double o_sleep = emit("overlap.sleep", aligned(bytes, [&] {
                                  FMI::Request r = comm_.iallreduce(fa, fb, sum);
                                  std::this_thread::sleep_for(nap);
                                  r.wait();
                                }));
    check_sum("overlap", bytes, fb);

    // Compute as real work: passes over 8 MiB of memory, as many as last `target`
    // here (calibrated once, the same count on every iteration).
    std::vector<std::uint64_t> mem(std::size_t(1) << 20, 1);
    volatile std::uint64_t sink = 0;  // the passes' result is used: not optimised away
    auto pass = [&] {
      for (auto& x : mem) x = x * 6364136223846793005ull + 1442695040888963407ull;
      sink = sink + mem[mem.size() / 2];
    };
    auto t0 = Clock::now();
    pass();
    pass();
    const double per_pass = std::max(seconds_since(t0) / 2, 1e-9);
    const std::size_t passes =
        static_cast<std::size_t>(max_over_peers(std::max(1.0, target.count() / per_pass)));
    auto work = [&] {
      for (std::size_t i = 0; i < passes; ++i) pass();
    };
    const double c_work = emit("overlap.compute_work", aligned(bytes, work));
    const double o_work = emit("overlap.work", aligned(bytes, [&] {
                                 FMI::Request r = comm_.iallreduce(fa, fb, sum);
                                 work();
                                 r.wait();
                               }));
    check_sum("overlap", bytes, fb);
    if (me_ != 0) return;
    auto fraction = [&](double compute, double both) {
      const double hidden = compute + t_comm - both, most = std::min(compute, t_comm);
      return most > 0 ? std::clamp(hidden / most, 0.0, 1.0) : 0.0;
    };
    std::fprintf(stderr,
                 "fmi-bench overlap: %zu B on %u peers: overlap fraction %.2f with sleep, %.2f "
                 "with real work; iallreduce+wait / allreduce = %.3f (%.1f / %.1f us)\n",
                 bytes, n_, fraction(c_sleep, o_sleep), fraction(c_work, o_work),
                 t_comm > 0 ? t_nb / t_comm : 0.0, t_nb, t_comm);
  }

  FMI::Communicator& comm_;
  const WorkerOptions& opt_;
  const WorkerEvents& ev_;
  const unsigned me_, n_;
  unsigned faas_memory_ = 128;
  std::size_t mesh_rounds_ = 0;  // communicators opened by mesh()

 public:
  void set_faas_memory(unsigned m) { faas_memory_ = m; }
};

}  // namespace

void run_worker(FMI::Communicator& comm, const WorkerOptions& opt, const WorkerEvents& ev) {
  Runner r(comm, opt, ev);
  r.set_faas_memory(opt.faas_memory);
  r.run();
}

}  // namespace fmibench
