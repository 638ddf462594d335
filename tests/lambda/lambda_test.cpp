// FMI::Lambda (include/fmi/lambda.h) against a real HTTP server that serves the
// documented Runtime API (runtime_api_fixture.py): the order of invocations, the
// ids and bodies of responses, errors of handlers, init errors, the event contract,
// and a job of 3 functions over Direct, each a process serving its own fixture.
#include "fmi/lambda.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "channel_factory.h"
#include "channels/direct/config.h"
#include "harness.h"
#include "rendezvous_server.h"
#include "runtime_api_server.h"

namespace {

using fmitest::RuntimeApiServer;
using json = nlohmann::json;
using namespace std::chrono_literals;

FMI::Lambda::ServeOptions at(const RuntimeApiServer& api, std::size_t n) {
  FMI::Lambda::ServeOptions o;
  o.runtime_api = api.address();
  o.max_invocations = n;
  return o;
}

TEST(LambdaServe, FetchesInvocationsInOrderAndPostsEachResponseUnderItsId) {
  // Bodies as raw text: the client must hand over the bytes the API sent.
  const std::string ev3 = "{\"big\": \"" + std::string(300000, 'z') + "\"}";
  RuntimeApiServer api(json::array({
      {{"request_id", "req-1"},
       {"event_text", "{\"x\":1}"},
       {"trace_id", "Root=1-abc"},
       {"function_arn", "arn:aws:lambda:eu-central-1:123456789012:function:f"}},
      {{"request_id", "req-2"}, {"event_text", ""}, {"deadline_in_ms", 5000}},
      {{"request_id", "req-3"}, {"event_text", ev3}},
  }));
  std::vector<std::string> seen;
  const int rc = FMI::Lambda::serve(
      [&](const FMI::Lambda::Invocation& inv) {
        const char* trace = std::getenv("_X_AMZN_TRACE_ID");
        seen.push_back(inv.request_id + "|" + inv.function_arn + "|" + (trace ? trace : "-"));
        // The deadline header is Unix ms: the fixture's 60 s or 5 s from now.
        PEER_CHECK(inv.remaining() > 0ms && inv.remaining() <= 60s, inv.remaining().count());
        if (inv.request_id == "req-2") PEER_CHECK(inv.remaining() <= 5s);
        return "{\"echo\": " + std::to_string(inv.event.size()) + ", \"id\": \"" + inv.request_id +
               "\"}" + (inv.request_id == "req-3" ? inv.event : std::string());
      },
      at(api, 3));
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "req-1|arn:aws:lambda:eu-central-1:123456789012:function:f|Root=1-abc",
                      "req-2||-", "req-3||-"}));

  auto all = api.requests();
  ASSERT_EQ(all.size(), 6u);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"next", "req-1"},     {"response", "req-1"}, {"next", "req-2"},
      {"response", "req-2"}, {"next", "req-3"},     {"response", "req-3"}};
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i]["kind"], expected[i].first) << i;
    EXPECT_EQ(all[i]["request_id"], expected[i].second) << i;
    EXPECT_EQ(all[i]["status"], all[i]["kind"] == "next" ? 200 : 202) << i;
  }
  EXPECT_EQ(all[1]["body"], "{\"echo\": 7, \"id\": \"req-1\"}");
  EXPECT_EQ(all[3]["body"], "{\"echo\": 0, \"id\": \"req-2\"}");
  EXPECT_EQ(all[5]["body"],
            "{\"echo\": " + std::to_string(ev3.size()) + ", \"id\": \"req-3\"}" + ev3);
}

TEST(LambdaServe, AThrowingHandlerPostsItsErrorAndTheLoopGoesOn) {
  RuntimeApiServer api(json::array({
      {{"request_id", "a"}, {"event", json::object()}},
      {{"request_id", "b"}, {"event", json::object()}},
      {{"request_id", "c"}, {"event", json::object()}},
      {{"request_id", "d"}, {"event", json::object()}},
  }));
  const int rc = FMI::Lambda::serve(
      [](const FMI::Lambda::Invocation& inv) -> std::string {
        if (inv.request_id == "a") FMI_THROW(FMI::TimeoutError, "recv from peer 2 via Direct: 2 s");
        if (inv.request_id == "b") throw std::out_of_range("index 7 \"quoted\"\n");
        if (inv.request_id == "c") throw 42;
        return "\"fine\"";
      },
      at(api, 4));
  EXPECT_EQ(rc, 0);
  auto errors = api.requests("error");
  ASSERT_EQ(errors.size(), 3u);
  const std::vector<std::tuple<std::string, std::string, std::string>> expected = {
      {"a", "FMI::TimeoutError", "recv from peer 2 via Direct: 2 s"},
      {"b", "std::out_of_range", "index 7 \"quoted\"\n"},
      {"c", "int", "a thrown value that is not a std::exception"}};
  for (std::size_t i = 0; i < errors.size(); ++i) {
    const auto& [id, type, message] = expected[i];
    EXPECT_EQ(errors[i]["request_id"], id);
    EXPECT_EQ(errors[i]["status"], 202);
    EXPECT_EQ(errors[i]["error_type"], type);
    const json body = json::parse(errors[i]["body"].get<std::string>());
    EXPECT_EQ(body, (json{{"errorType", type}, {"errorMessage", message}}));
  }
  auto responses = api.requests("response");
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0]["request_id"], "d");
  EXPECT_EQ(responses[0]["body"], "\"fine\"");
}

TEST(LambdaServe, AResponseLargerThanLambdaTakesBecomesTheInvocationsError) {
  RuntimeApiServer api(json::array({{{"request_id", "huge"}, {"event", json::object()}},
                                    {{"request_id", "small"}, {"event", json::object()}}}));
  const std::size_t huge = 7u << 20;
  EXPECT_EQ(FMI::Lambda::serve(
                [&](const FMI::Lambda::Invocation& inv) {
                  return inv.request_id == "huge" ? std::string(huge, 'x') : std::string("1");
                },
                at(api, 2)),
            0);
  auto responses = api.requests("response");
  ASSERT_EQ(responses.size(), 2u);
  EXPECT_EQ(responses[0]["status"], 413);
  EXPECT_EQ(responses[1]["request_id"], "small");
  EXPECT_EQ(responses[1]["status"], 202);
  auto errors = api.requests("error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["request_id"], "huge");
  EXPECT_EQ(errors[0]["status"], 202);
  EXPECT_EQ(errors[0]["error_type"], "FMI::UsageError");
  const std::string msg = json::parse(errors[0]["body"].get<std::string>())["errorMessage"];
  EXPECT_NE(msg.find(std::to_string(huge) + " bytes"), std::string::npos) << msg;
}

TEST(LambdaServe, AFailingInitPostsInitErrorAndFetchesNothing) {
  RuntimeApiServer api(json::array({{{"request_id", "never"}, {"event", json::object()}}}));
  auto opt = at(api, 1);
  opt.init = [] { FMI::Config::load("/nonexistent/fmi.json"); };
  bool called = false;
  EXPECT_EQ(FMI::Lambda::serve(
                [&](const FMI::Lambda::Invocation&) {
                  called = true;
                  return "";
                },
                opt),
            1);
  EXPECT_FALSE(called);
  auto all = api.requests();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["kind"], "init_error");
  EXPECT_EQ(all[0]["status"], 202);
  EXPECT_EQ(all[0]["error_type"], "FMI::ConfigError");
  const json body = json::parse(all[0]["body"].get<std::string>());
  EXPECT_EQ(body["errorType"], "FMI::ConfigError");
  EXPECT_NE(body["errorMessage"].get<std::string>().find("/nonexistent/fmi.json"),
            std::string::npos)
      << body;
}

TEST(LambdaServe, WithoutARuntimeApiServeFailsAtOnce) {
  ::unsetenv("AWS_LAMBDA_RUNTIME_API");
  EXPECT_THROW(FMI::Lambda::serve([](const FMI::Lambda::Invocation&) { return ""; }),
               FMI::ConfigError);
  // A Runtime API that has nothing more to give (here: answers 410) ends the loop
  // with a ChannelError naming the status, instead of posting anything.
  RuntimeApiServer api(json::array());
  EXPECT_THROW(FMI::Lambda::serve([](const FMI::Lambda::Invocation&) { return ""; }, at(api, 1)),
               FMI::ChannelError);
  EXPECT_TRUE(api.requests("response").empty());
}

// ---- the event contract ------------------------------------------------------------

json good_event(const std::string& config_text) {
  return {{"peer_id", 1},         {"num_peers", 3},
          {"comm_name", "job-7"}, {"fmi_config", json::parse(config_text)},
          {"points", 1000},       {"label", "x"}};
}

FMI::Lambda::Invocation invocation(const json& event, std::chrono::milliseconds left = 60s) {
  FMI::Lambda::Invocation inv;
  inv.request_id = "r-1";
  inv.deadline = std::chrono::system_clock::now() + left;
  inv.event = event.dump();
  return inv;
}

TEST(LambdaJob, ParsesTheContractAndLeavesThePayload) {
  const auto cfg = fmitest::direct_config("127.0.0.1", 10000, 30s);
  const auto job = FMI::Lambda::parse_job(invocation(good_event(cfg)));
  EXPECT_EQ(job.peer_id, 1u);
  EXPECT_EQ(job.num_peers, 3u);
  EXPECT_EQ(job.comm_name, "job-7");
  EXPECT_TRUE(job.config.enabled("Direct"));
  EXPECT_EQ(json::parse(job.payload), (json{{"points", 1000}, {"label", "x"}}));
  // 60 s left, 30 s max_timeout: kept.
  EXPECT_EQ(job.config.section<FMI::Comm::DirectConfig>().max_timeout, 30000ms);
}

TEST(LambdaJob, MaxTimeoutIsClampedToTheInvocationsTimeLeft) {
  const auto cfg = fmitest::direct_config("127.0.0.1", 10000, 30s);
  const auto job = FMI::Lambda::parse_job(invocation(good_event(cfg), 5s), 1s);
  const auto mt = job.config.section<FMI::Comm::DirectConfig>().max_timeout;
  EXPECT_LE(mt, 4000ms);
  EXPECT_GT(mt, 3000ms);
  // Less time left than the reserve: no job at all.
  EXPECT_THROW(FMI::Lambda::parse_job(invocation(good_event(cfg), 500ms), 1s), FMI::TimeoutError);
}

// One bad event and the message it must give (field named).
struct BadEvent {
  const char* what;
  json event;
  const char* type;  // error_type of the exception
  std::vector<std::string> message_parts;
};

TEST(LambdaJob, ABrokenContractIsTheInvocationsErrorNamingTheField) {
  const auto cfg = fmitest::direct_config("127.0.0.1", 10000, 30s);
  auto without = [&](const char* f) {
    json e = good_event(cfg);
    e.erase(f);
    return e;
  };
  auto with = [&](const char* f, json v) {
    json e = good_event(cfg);
    e[f] = std::move(v);
    return e;
  };
  json bad_port = good_event(cfg);
  bad_port["fmi_config"]["backends"]["Direct"]["port"] = 0;
  const std::vector<BadEvent> cases = {
      {"no peer_id", without("peer_id"), "FMI::ConfigError", {"peer_id", "is missing"}},
      {"no num_peers", without("num_peers"), "FMI::ConfigError", {"num_peers", "is missing"}},
      {"no comm_name", without("comm_name"), "FMI::ConfigError", {"comm_name", "is missing"}},
      {"no fmi_config", without("fmi_config"), "FMI::ConfigError", {"fmi_config", "is missing"}},
      {"num_peers a string",
       with("num_peers", "3"),
       "FMI::ConfigError",
       {"num_peers", "must be an integer", "\"3\""}},
      {"negative peer_id", with("peer_id", -1), "FMI::ConfigError", {"peer_id", "-1"}},
      {"comm_name empty", with("comm_name", ""), "FMI::ConfigError", {"comm_name", "non-empty"}},
      {"fmi_config a path",
       with("fmi_config", "config/fmi.json"),
       "FMI::ConfigError",
       {"fmi_config", "must be a JSON object"}},
      {"peer_id too large", with("peer_id", 3), "FMI::UsageError", {"peer_id 3", "num_peers 3"}},
      {"bad port in fmi_config",
       bad_port,
       "FMI::ConfigError",
       {"fmi_config", "backends.Direct.port"}},
      {"an array", json::array({1, 2}), "FMI::ConfigError", {"must be a JSON object"}},
  };
  json invocations = json::array();
  for (std::size_t i = 0; i < cases.size(); ++i)
    invocations.push_back({{"request_id", "bad-" + std::to_string(i)}, {"event", cases[i].event}});
  invocations.push_back({{"request_id", "not-json"}, {"event_text", "{\"peer_id\": "}});
  RuntimeApiServer api(invocations);
  bool ran = false;
  EXPECT_EQ(FMI::Lambda::serve(FMI::Lambda::job_handler([&](FMI::Communicator&, const auto&) {
                                 ran = true;
                                 return std::string();
                               }),
                               at(api, cases.size() + 1)),
            0);
  EXPECT_FALSE(ran);
  auto errors = api.requests("error");
  ASSERT_EQ(errors.size(), cases.size() + 1);
  EXPECT_TRUE(api.requests("init_error").empty());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].what);
    EXPECT_EQ(errors[i]["request_id"], "bad-" + std::to_string(i));
    EXPECT_EQ(errors[i]["error_type"], cases[i].type);
    const json body = json::parse(errors[i]["body"].get<std::string>());
    EXPECT_EQ(body["errorType"], cases[i].type);
    const std::string msg = body["errorMessage"];
    EXPECT_NE(msg.find("Lambda event bad-" + std::to_string(i)), std::string::npos) << msg;
    for (const auto& part : cases[i].message_parts)
      EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
  }
  EXPECT_EQ(errors.back()["request_id"], "not-json");
  EXPECT_EQ(errors.back()["error_type"], "FMI::ConfigError");
}

// ---- a job ------------------------------------------------------------------------

// A rendezvous server with a shared secret, and the fmi_config of a job on it without
// the secret (as fmirun --lambda sends it): the functions have it from FMI_SECRET only.
struct DirectJob {
  std::string secret = "lambda-test-secret-0123456789abcdef";
  fmitest::SecretFile file{secret};
  fmitest::RendezvousServer server{std::vector<std::string>{"--secret-file", file.path()}};
  json config = json::parse(fmitest::direct_config("127.0.0.1", server.port(), 20s));

  /// In a forked function: the environment Lambda would give it.
  void enter_function(const RuntimeApiServer& api) const {
    ::setenv("FMI_SECRET", secret.c_str(), 1);
    ::setenv("AWS_LAMBDA_RUNTIME_API", api.address().c_str(), 1);
  }
};

// The functions of a one-invocation job after they ended: each exited with 1 (its
// fixture's 410 after the invocation ends serve()), posted no error and one response
// under "<id>-<peer>". Returns the parsed response bodies.
std::vector<json> single_responses(const std::vector<std::unique_ptr<RuntimeApiServer>>& apis,
                                   const std::vector<fmitest::PeerResult>& res,
                                   const std::string& id) {
  std::vector<json> bodies;
  for (unsigned p = 0; p < apis.size(); ++p) {
    SCOPED_TRACE("peer " + std::to_string(p));
    EXPECT_TRUE(res[p].exited && res[p].code == 1) << res[p].code << " " << res[p].signal;
    EXPECT_TRUE(apis[p]->requests("error").empty());
    auto responses = apis[p]->requests("response");
    EXPECT_EQ(responses.size(), 1u);
    if (responses.empty()) {
      bodies.push_back(json::object());
      continue;
    }
    EXPECT_EQ(responses[0]["request_id"], id + "-" + std::to_string(p));
    bodies.push_back(json::parse(responses[0]["body"].get<std::string>()));
  }
  return bodies;
}

// 3 functions, each a process that serves its own Runtime API (as each Lambda
// function has its own), two jobs in a row: the second reuses the warm process with
// a fresh comm name. The handlers build their Communicators from the events (Direct,
// the secret from the environment only) and allreduce; every response is checked.
TEST(LambdaJob, ThreeFunctionsRunAnAllreduceFromTheirEvents) {
  const DirectJob direct;
  constexpr unsigned n = 3;
  ASSERT_FALSE(direct.config["backends"]["Direct"].contains("secret"));
  std::vector<std::unique_ptr<RuntimeApiServer>> apis;
  for (unsigned p = 0; p < n; ++p) {
    json invocations = json::array();
    for (int job = 0; job < 2; ++job)
      invocations.push_back(
          {{"request_id", "job" + std::to_string(job) + "-peer" + std::to_string(p)},
           {"event",
            {{"peer_id", p},
             {"num_peers", n},
             {"comm_name", fmitest::comm_name() + std::to_string(job)},
             {"fmi_config", direct.config},
             {"scale", 10 * (job + 1)}}}});
    apis.push_back(std::make_unique<RuntimeApiServer>(invocations));
  }
  auto res = fmitest::run_forked(n, [&](unsigned p) {
    direct.enter_function(*apis[p]);
    FMI::Lambda::ServeOptions opt;
    opt.max_invocations = 2;
    const int rc = FMI::Lambda::serve(
        FMI::Lambda::job_handler([](FMI::Communicator& comm, const FMI::Lambda::Job& job) {
          const long scale = json::parse(job.payload).at("scale").get<long>();
          FMI::Comm::Data<long> mine(scale * (comm.peer_id() + 1)), sum;
          comm.allreduce(mine, sum, FMI::Utils::Function<long>::sum());
          return json{{"peer", comm.peer_id()}, {"sum", sum.get()}, {"comm", comm.comm_name()}}
              .dump();
        }),
        opt);
    PEER_CHECK(rc == 0, rc);
  });
  fmitest::expect_all_ok(res);
  for (unsigned p = 0; p < n; ++p) {
    SCOPED_TRACE("peer " + std::to_string(p));
    EXPECT_TRUE(apis[p]->requests("error").empty());
    auto responses = apis[p]->requests("response");
    ASSERT_EQ(responses.size(), 2u);
    for (int job = 0; job < 2; ++job) {
      EXPECT_EQ(responses[job]["request_id"],
                "job" + std::to_string(job) + "-peer" + std::to_string(p));
      const json body = json::parse(responses[job]["body"].get<std::string>());
      // sum over peers of scale * (p + 1) = scale * n (n + 1) / 2
      EXPECT_EQ(body, (json{{"peer", p},
                            {"sum", 10 * (job + 1) * n * (n + 1) / 2},
                            {"comm", fmitest::comm_name() + std::to_string(job)}}));
    }
  }
}

}  // namespace

#ifdef FMI_KMEANS_PATH
// examples/kmeans as 3 Lambda functions (`kmeans --lambda`, what deploy/lambda's
// bootstrap runs), each process serving its own Runtime API: options from the
// payload, --check's verdict in every response. The fixture answers 410 once its one
// invocation is used, which ends serve() with a ChannelError: exit status 1, as on
// a broken Runtime API (on Lambda the next invocation would come instead).
TEST(LambdaKmeans, ThreeFunctionsFromTheirEventsAgreeAndPassTheCheck) {
  const DirectJob direct;
  constexpr unsigned n = 3;
  std::vector<std::unique_ptr<RuntimeApiServer>> apis;
  for (unsigned p = 0; p < n; ++p)
    apis.push_back(std::make_unique<RuntimeApiServer>(
        json::array({{{"request_id", "kmeans-" + std::to_string(p)},
                      {"event",
                       {{"peer_id", p},
                        {"num_peers", n},
                        {"comm_name", fmitest::comm_name()},
                        {"fmi_config", direct.config},
                        {"points", 3000},
                        {"epochs", 40},
                        {"check", true}}}}})));
  auto res = fmitest::run_forked(n, [&](unsigned p) {
    direct.enter_function(*apis[p]);
    ::execl(FMI_KMEANS_PATH, "kmeans", "--lambda", static_cast<char*>(nullptr));
    throw std::runtime_error("exec " FMI_KMEANS_PATH " failed");
  });
  const std::vector<json> bodies = single_responses(apis, res, "kmeans");
  ASSERT_EQ(bodies.size(), n);
  for (unsigned p = 0; p < n; ++p) {
    SCOPED_TRACE("peer " + std::to_string(p));
    EXPECT_EQ(bodies[p]["peer_id"], p);
    EXPECT_EQ(bodies[p]["num_peers"], n);
    EXPECT_EQ(bodies[p]["check"], true);
    EXPECT_EQ(bodies[p]["converged"], true);
  }
  // One allreduce a epoch: every function ends at the same epoch with the same inertia.
  for (unsigned p = 1; p < bodies.size(); ++p) {
    EXPECT_EQ(bodies[p]["epochs"], bodies[0]["epochs"]);
    EXPECT_EQ(bodies[p]["inertia"], bodies[0]["inertia"]);
  }
}
#endif

#ifdef FMI_LAMBDA_EXEC_PATH
// fmi-lambda-exec (tools/fmirun/lambda_exec.cpp): any program (an MPI program built with fmi-mpicc
// here) as a Lambda function, each process serving its own Runtime API.
namespace {

// Runs `cmd` with sh, returns its stdout; its exit status into *rc.
std::string shell(const std::string& cmd, int* rc) {
  std::string out;
  std::FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) throw std::runtime_error("popen " + cmd);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int status = ::pclose(f);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "fmi-lambda-exec-XXXXXX").string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    path = t;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// In a forked function: serve the fixture as a Lambda bootstrap `exec fmi-lambda-exec
// PROG ARGS` would. After the fixture's last invocation it answers 410, which ends the
// runtime with status 1.
[[noreturn]] void exec_function(const std::vector<std::string>& program) {
  std::vector<char*> argv{const_cast<char*>("fmi-lambda-exec")};
  for (const auto& a : program) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(FMI_LAMBDA_EXEC_PATH, argv.data());
  throw std::runtime_error("exec " FMI_LAMBDA_EXEC_PATH " failed");
}

// tests/mpi/NAME.c built with fmi-mpicc into dir.
std::string build_mpi(const TempDir& dir, const std::string& name) {
  const std::string prog = dir.path + "/" + name;
  int rc = -1;
  const std::string out = shell(
      "'" FMI_MPICC_PATH "' -O1 -o '" + prog + "' '" FMI_MPI_SOURCES "/" + name + ".c' -lm 2>&1",
      &rc);
  if (rc != 0) throw std::runtime_error("fmi-mpicc " + name + ".c failed: " + out);
  return prog;
}

// The events of one job of n functions, one fixture (Runtime API) per function.
std::vector<std::unique_ptr<RuntimeApiServer>> job_fixtures(const DirectJob& direct, unsigned n,
                                                            const std::string& id) {
  std::vector<std::unique_ptr<RuntimeApiServer>> apis;
  for (unsigned p = 0; p < n; ++p)
    apis.push_back(std::make_unique<RuntimeApiServer>(
        json::array({{{"request_id", id + "-" + std::to_string(p)},
                      {"event",
                       {{"peer_id", p},
                        {"num_peers", n},
                        {"comm_name", fmitest::comm_name() + id},
                        {"fmi_config", direct.config}}}}})));
  return apis;
}

// tests/mpi/coll.c (every collective of the MPI layer) built with fmi-mpicc, once with
// fmirun -n 3 and once as 3 functions over Direct from their events: each function's
// stdout is what fmirun printed for that peer, line for line.
TEST(LambdaExec, AnMpiProgramOnThreeFunctionsPrintsWhatFmirunPrints) {
  constexpr unsigned n = 3;
  TempDir dir;
  const std::string prog = build_mpi(dir, "coll");
  int rc = -1;
  const std::string local =
      shell("'" FMI_FMIRUN_PATH "' -n 3 --rendezvous-port 0 --timeout 60 --config '" FMI_TEST_CONFIG
            "' -- '" +
                prog + "' </dev/null",
            &rc);
  ASSERT_EQ(rc, 0) << local;
  std::vector<std::string> expected(n);
  std::istringstream lines(local);
  for (std::string line; std::getline(lines, line);) {
    unsigned p = 0;
    char close = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "[peer %u%c", &p, &close), 2) << line;
    ASSERT_TRUE(p < n && close == ']') << line;
    expected[p] += line.substr(line.find("] ") + 2) + "\n";
  }
  for (unsigned p = 0; p < n; ++p) ASSERT_FALSE(expected[p].empty()) << "peer " << p;

  const DirectJob direct;
  auto apis = job_fixtures(direct, n, "mpi");
  auto res = fmitest::run_forked(n, [&](unsigned p) {
    direct.enter_function(*apis[p]);
    exec_function({prog});
  });
  const std::vector<json> bodies = single_responses(apis, res, "mpi");
  for (unsigned p = 0; p < n; ++p) {
    SCOPED_TRACE("peer " + std::to_string(p));
    const json& body = bodies[p];
    EXPECT_EQ(body["exit_code"], 0);
    EXPECT_EQ(body["stdout"], expected[p]);
    EXPECT_TRUE(body["stderr_tail"].is_string());
  }
}

// tests/mpi/fatal.c on 3 functions: rank 0's MPI_Send to rank 7 is fatal
// (MPI_ERRORS_ARE_FATAL), its invocation's error names the call and the MPI error;
// the other ranks, waiting in a barrier for it, fail too (FMI's error when rank 0 is
// gone), none posts a result and none hangs.
TEST(LambdaExec, AFatalMpiErrorIsTheFailingRanksInvocationError) {
  constexpr unsigned n = 3;
  TempDir dir;
  const std::string prog = build_mpi(dir, "fatal");
  const DirectJob direct;
  auto apis = job_fixtures(direct, n, "fatal");
  const auto start = std::chrono::steady_clock::now();
  auto res = fmitest::run_forked(n, [&](unsigned p) {
    direct.enter_function(*apis[p]);
    exec_function({prog});
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 60s);
  for (unsigned p = 0; p < n; ++p) {
    SCOPED_TRACE("peer " + std::to_string(p));
    EXPECT_TRUE(res[p].exited && res[p].code == 1) << res[p].code << " " << res[p].signal;
    EXPECT_TRUE(apis[p]->requests("response").empty());
    auto errors = apis[p]->requests("error");
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0]["request_id"], "fatal-" + std::to_string(p));
    EXPECT_EQ(errors[0]["error_type"], "fmi_lambda_exec::ProgramExited");
    const std::string msg =
        json::parse(errors[0]["body"].get<std::string>())["errorMessage"].get<std::string>();
    EXPECT_NE(msg.find("(peer " + std::to_string(p) + " of 3) exited with status"),
              std::string::npos)
        << msg;
    // Rank 0 names its own error; the others name the peer that is gone.
    const char* cause = p == 0 ? "MPI_Send: destination 7 is not a rank of the communicator of 3"
                               : "MPI_Barrier: barrier via Direct";
    EXPECT_NE(msg.find(cause), std::string::npos) << msg;
    if (p != 0) {
      EXPECT_NE(msg.find("MPI_ERR_PROC_FAILED"), std::string::npos) << msg;
    }
  }
}

// One function, one invocation after the other: the environment and arguments the
// program gets, its private config file (0600, max_timeout clamped to the time left,
// removed afterwards), and each way of failing as the invocation's error.
TEST(LambdaExec, EnvironmentArgumentsAndFailuresOfTheProgram) {
  const std::string script = R"(case "$1" in
ok) shift; printf '%s|' "$FMI_PEER_ID" "$FMI_NUM_PEERS" "$FMI_COMM_NAME" "$@"; echo
    stat -c %a "$FMI_CONFIG"; echo "$FMI_CONFIG"; cat "$FMI_CONFIG"; echo; echo a warning >&2 ;;
exit3) seq 20000 >&2; echo "rank 1: it broke" >&2; exit 3 ;;
segv) echo "about to crash" >&2; kill -SEGV $$ ;;
sleep) echo sleeping >&2; exec sleep 30 ;;
esac)";
  const json config = json::parse(fmitest::direct_config("127.0.0.1", 10000, 30s));
  auto event = [&](json args) {
    return json{{"peer_id", 2},
                {"num_peers", 5},
                {"comm_name", "exec-job"},
                {"fmi_config", config},
                {"args", std::move(args)}};
  };
  RuntimeApiServer api(json::array({
      {{"request_id", "ok"},
       {"event", event({"ok", "two words", "last"})},
       {"deadline_in_ms", 10000}},
      {{"request_id", "exit3"}, {"event", event({"exit3"})}},
      {{"request_id", "segv"}, {"event", event({"segv"})}},
      {{"request_id", "sleep"}, {"event", event({"sleep"})}, {"deadline_in_ms", 3000}},
      {{"request_id", "bad-args"}, {"event", event("ok")}},
  }));
  const auto start = std::chrono::steady_clock::now();
  auto res = fmitest::run_forked(1, [&](unsigned) {
    ::setenv("AWS_LAMBDA_RUNTIME_API", api.address().c_str(), 1);
    exec_function({"/bin/sh", "-c", script, "sh"});
  });
  // The sleeping program was killed at its deadline (3 s less the 1 s reserve).
  EXPECT_LT(std::chrono::steady_clock::now() - start, 20s);
  EXPECT_TRUE(res[0].exited && res[0].code == 1) << res[0].code << " " << res[0].signal;

  auto responses = api.requests("response");
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_EQ(responses[0]["request_id"], "ok");
  const json body = json::parse(responses[0]["body"].get<std::string>());
  EXPECT_EQ(body["exit_code"], 0);
  EXPECT_EQ(body["stderr_tail"], "a warning\n");
  std::istringstream out(body["stdout"].get<std::string>());
  std::string args_line, mode, path, file;
  std::getline(out, args_line);
  std::getline(out, mode);
  std::getline(out, path);
  std::getline(out, file);
  EXPECT_EQ(args_line, "2|5|exec-job|two words|last|");
  EXPECT_EQ(mode, "600");
  EXPECT_FALSE(std::filesystem::exists(path)) << path;
  const json written = json::parse(file);
  EXPECT_EQ(written["backends"]["Direct"]["port"], 10000);
  const double mt = written["backends"]["Direct"]["max_timeout"].get<double>();
  EXPECT_LE(mt, 9000);  // 10 s left less the reserve, not the config's 30 s
  EXPECT_GT(mt, 5000);

  auto errors = api.requests("error");
  ASSERT_EQ(errors.size(), 4u);
  const std::vector<std::tuple<std::string, std::string, std::vector<std::string>>> expected = {
      {"exit3",
       "fmi_lambda_exec::ProgramExited",
       {"/bin/sh (peer 2 of 5)", "exited with status 3", "rank 1: it broke"}},
      {"segv", "fmi_lambda_exec::ProgramKilled", {"signal 11", "about to crash"}},
      {"sleep", "FMI::TimeoutError", {"killed at the invocation's deadline", "sleeping"}},
      {"bad-args", "FMI::ConfigError", {"Lambda event bad-args", "args", "array of strings"}},
  };
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& [id, type, parts] = expected[i];
    SCOPED_TRACE(id);
    EXPECT_EQ(errors[i]["request_id"], id);
    EXPECT_EQ(errors[i]["error_type"], type);
    const json err = json::parse(errors[i]["body"].get<std::string>());
    EXPECT_EQ(err["errorType"], type);
    for (const auto& part : parts)
      EXPECT_NE(err["errorMessage"].get<std::string>().find(part), std::string::npos)
          << "'" << part << "' not in: " << err["errorMessage"];
    // 108 kB of stderr before the last line: only its 4 kB tail is in the message.
    if (id == "exit3") {
      const std::string msg = err["errorMessage"];
      EXPECT_LT(msg.size(), 4096u + 200u);
      EXPECT_NE(msg.find("\n19999\n20000\nrank 1: it broke"), std::string::npos);
      EXPECT_EQ(msg.find("\n1\n2\n3\n"), std::string::npos);
    }
  }
}

}  // namespace
#endif
