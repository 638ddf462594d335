// bench_s3: 8-byte message latency over the S3 channel, side by side with bare
// PUT+GET requests in the same run, and the number of S3 requests per message.
//
//   build/bench/s3/bench_s3                      # starts a local moto server
//   build/bench/s3/bench_s3 --endpoint http://127.0.0.1:9000 --bucket b   # MinIO...
//   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... build/bench/s3/bench_s3 --aws
//     --bucket my-bucket --region eu-central-1        # AWS S3 itself
//
// Prints one row per variant: mean and median latency per message (ms), and the
// S3 requests and unsuccessful polls per message:
//  - curl CLI, 2 processes: `curl --aws-sigv4` PUT, then another curl GET;
//  - curl CLI, 1 process:   PUT and GET in one curl run (--next: one connection);
//  - S3 client:             the channel's HTTP layer alone (in-process libcurl), PUT then GET;
//  - channel put+get:       S3Channel::put then get (one thread, object exists);
//  - API send/recv:         FMI::Communicator send/recv ping-pong between two peers
//                           (threads), one-way latency = round trip / 2, for two
//                           first poll intervals (config "timeout").
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "channels/s3/s3_channel.h"
#include "fmi/fmi.h"
#include "moto_server.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Row {
  std::string name;
  std::vector<double> ms;                            // per message
  double requests = 0, polls = 0, connections = -1;  // -1: not measured
};

void print(const Row& r) {
  auto v = r.ms;
  std::sort(v.begin(), v.end());
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  const double median = v[v.size() / 2];
  std::printf("%-34s %6zu %10.3f %10.3f %10.2f %9.2f %9s\n", r.name.c_str(), v.size(), mean, median,
              r.requests, r.polls,
              r.connections < 0 ? "-" : std::to_string(r.connections).substr(0, 4).c_str());
  std::fflush(stdout);
}

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

FMI::Utils::Deadline in(std::chrono::milliseconds d) { return Clock::now() + d; }

std::string shell_quote(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_s3: 8-byte latency over the S3 channel vs bare PUT+GET"};
  std::string endpoint, bucket = "fmi-bench", region = "us-east-1";
  bool aws = false;
  int iters = 200, cli_iters = 30;
  app.add_option("--endpoint", endpoint, "S3 endpoint (default: start a local moto server)");
  app.add_flag("--aws", aws, "use AWS S3 itself (virtual-hosted https endpoint of --region)");
  app.add_option("--bucket", bucket, "bucket (created when a local moto server is used)");
  app.add_option("--region", region, "region");
  app.add_option("--iters", iters, "messages per in-process variant");
  app.add_option("--cli-iters", cli_iters, "messages per curl command-line variant");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<fmitest::MotoServer> moto;
  if (endpoint.empty() && !aws) {
    ::setenv("AWS_ACCESS_KEY_ID", "bench", 0);
    ::setenv("AWS_SECRET_ACCESS_KEY", "bench", 0);
    moto = std::make_unique<fmitest::MotoServer>();
    endpoint = moto->endpoint();
  }
  try {
    const auto creds = FMI::Comm::s3::Credentials::from_env();
    FMI::Comm::s3::Client client({bucket, region, endpoint, creds});
    if (moto) client.create_bucket(in(10s));
    client.head_bucket(in(10s));
    const std::string run = "bench" + std::to_string(::getpid());
    std::printf("# S3 endpoint %s, 8-byte messages\n", client.where().c_str());
    std::printf("%-34s %6s %10s %10s %10s %9s %9s\n", "variant", "msgs", "mean_ms", "median_ms",
                "req/msg", "polls/msg", "conn/msg");

    // Base URL as the client builds it, for the curl command line.
    const std::string base =
        aws ? "https://" + bucket + ".s3." + region + ".amazonaws.com" : endpoint + "/" + bucket;
    const std::string payload_file = "/tmp/" + run + ".bin";
    {
      std::FILE* f = std::fopen(payload_file.c_str(), "wb");
      std::fwrite("12345678", 1, 8, f);
      std::fclose(f);
    }
    const std::string sha_of_8 = "ef797c8118f02dfb649607dd5d3f8c7623048c9c063d532cc95c5ed7a898a64f";
    const std::string sha_empty =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    std::string auth = "--aws-sigv4 " + shell_quote("aws:amz:" + region + ":s3") + " -u " +
                       shell_quote(creds.access_key + ":" + creds.secret_key);
    if (!creds.session_token.empty())
      auth += " -H " + shell_quote("x-amz-security-token: " + creds.session_token);
    auto put_cmd = [&](const std::string& key) {
      return "-sS -f -o /dev/null " + auth + " -H 'x-amz-content-sha256: " + sha_of_8 +
             "' -H 'Content-Type: application/octet-stream' -X PUT --data-binary @" + payload_file +
             " " + shell_quote(base + "/" + key);
    };
    auto get_cmd = [&](const std::string& key) {
      return "-sS -f -o /dev/null " + auth + " -H 'x-amz-content-sha256: " + sha_empty + "' " +
             shell_quote(base + "/" + key);
    };
    std::vector<std::string> cli_keys;
    {
      Row r{"curl CLI PUT+GET (2 processes)", {}, 2, 0};
      for (int i = 0; i < cli_iters; ++i) {
        const std::string k = run + "/cli2/" + std::to_string(i);
        cli_keys.push_back(k);
        const auto t = Clock::now();
        if (std::system(("curl " + put_cmd(k)).c_str()) != 0 ||
            std::system(("curl " + get_cmd(k)).c_str()) != 0)
          throw std::runtime_error("curl command line failed");
        r.ms.push_back(ms_since(t));
      }
      print(r);
    }
    {
      Row r{"curl CLI PUT+GET (1 process)", {}, 2, 0};
      for (int i = 0; i < cli_iters; ++i) {
        const std::string k = run + "/cli1/" + std::to_string(i);
        cli_keys.push_back(k);
        const auto t = Clock::now();
        if (std::system(("curl " + put_cmd(k) + " --next " + get_cmd(k)).c_str()) != 0)
          throw std::runtime_error("curl command line failed");
        r.ms.push_back(ms_since(t));
      }
      print(r);
    }
    std::remove(payload_file.c_str());
    client.delete_objects(cli_keys, in(30s));

    std::vector<std::byte> msg(8, std::byte{7}), out(8);
    {
      Row r{"S3 client PUT+GET (libcurl)", {}, 0, 0};
      std::vector<std::string> keys;
      const auto before = client.requests();
      const auto conn0 = client.connections();
      for (int i = 0; i < iters; ++i) {
        const std::string k = run + "/client/" + std::to_string(i);
        keys.push_back(k);
        const auto t = Clock::now();
        client.put_object(k, msg, {}, in(10s));
        client.get_object(k, out, in(10s));
        r.ms.push_back(ms_since(t));
      }
      r.requests = double(client.requests() - before) / iters;
      r.connections = double(client.connections() - conn0) / iters;
      print(r);
      client.delete_objects(keys, in(30s));
    }

    FMI::Config cfg;
    cfg.section<FMI::Comm::S3Config>().enabled = true;
    cfg.section<FMI::Comm::S3Config>().bucket_name = bucket;
    cfg.section<FMI::Comm::S3Config>().s3_region = region;
    cfg.section<FMI::Comm::S3Config>().endpoint = aws ? "" : endpoint;
    cfg.section<FMI::Comm::S3Config>().max_timeout = 30s;
    {
      FMI::Comm::S3Channel ch(cfg.section<FMI::Comm::S3Config>());
      ch.init({0, 1, run + "-ch", 128});
      Row r{"channel put+get", {}, 0, 0};
      const auto before = ch.requests();
      for (int i = 0; i < iters; ++i) {
        const FMI::Comm::ObjectKey k{{FMI::Utils::Operation::send, std::uint32_t(i)}, 0, 0};
        const auto t = Clock::now();
        ch.put(k, msg, 1, in(10s));
        ch.get(k, out, in(10s));
        r.ms.push_back(ms_since(t));
      }
      ch.finalize();  // the deferred deletes of consumed objects count too
      r.requests = double(ch.requests() - before) / iters;
      r.polls = double(ch.polls()) / iters;
      r.connections = double(ch.connections()) / iters;
      print(r);
    }

    for (auto first_poll : {5ms, 50ms}) {
      cfg.section<FMI::Comm::S3Config>().timeout = first_poll;
      const int n = iters / 2;
      std::vector<double> rtt;
      std::uint64_t reqs = 0, polls = 0;
      std::mutex mu;
      auto peer = [&](unsigned me) {
        FMI::Communicator comm(me, 2, cfg, run + "-pp" + std::to_string(first_poll.count()));
        auto* ch = dynamic_cast<FMI::Comm::S3Channel*>(comm.channels().at("S3").get());
        FMI::Comm::Data<void*> buf(msg.data(), msg.size());
        std::vector<std::byte> mine(8);
        FMI::Comm::Data<void*> recv_buf(mine.data(), mine.size());
        const auto r0 = ch->requests(), p0 = ch->polls();
        for (int i = 0; i < n; ++i) {
          const auto t = Clock::now();
          if (me == 0) {
            comm.send(buf, 1);
            comm.recv(recv_buf, 1);
            rtt.push_back(ms_since(t) / 2);
          } else {
            comm.recv(recv_buf, 0);
            comm.send(recv_buf, 0);
          }
        }
        std::lock_guard lk(mu);
        reqs += ch->requests() - r0;
        polls += ch->polls() - p0;
      };
      std::thread t1(peer, 1);
      peer(0);
      t1.join();
      Row r{"API send/recv (timeout " + std::to_string(first_poll.count()) + " ms)", rtt,
            double(reqs) / (2.0 * n), double(polls) / (2.0 * n)};
      print(r);
    }
    std::printf(
        "# req/msg counts every HTTP request (PUT, GET, unsuccessful polls, deletes);\n"
        "# the API rows exclude the communicators' set-up and finalize requests.\n"
        "# conn/msg: new connections per message (1 request = 1 connection when the\n"
        "# server closes connections, as moto does; near 0 with keep-alive).\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_s3: %s\n", e.what());
    return 1;
  }
  return 0;
}
