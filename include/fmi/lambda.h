// FMI::Lambda: a C++ FMI program as an AWS Lambda function (a custom runtime,
// provided.al2023, whose `bootstrap` is the program). serve() is a small client of
// the Lambda Runtime API (version 2018-06-01, over $AWS_LAMBDA_RUNTIME_API): it
// fetches one invocation after the other, calls the handler and posts its result
// or its error. job_handler() adds the event contract of `fmirun --lambda`, so
// that a function is only the part that uses the Communicator:
//
//   int main() {
//     return FMI::Lambda::serve(FMI::Lambda::job_handler(
//         [](FMI::Communicator& comm, const FMI::Lambda::Job& job) {
//           FMI::Comm::Data<int> one(1), sum;
//           comm.allreduce(one, sum, FMI::Utils::Function<int>::sum());
//           return "{\"sum\": " + std::to_string(sum.get()) + "}";
//         }));
//   }
//
// The event contract (docs/lambda.md, docs/lambda-cpp.md): a JSON object with
//   "peer_id" (int), "num_peers" (int), "comm_name" (string),
//   "fmi_config" (the configuration as a JSON object, schema of config/fmi.json),
// plus the user's payload fields at its top level. The config travels without its
// secrets: the Direct secret and the Redis password come from the function's own
// environment (FMI_SECRET, FMI_REDIS_PASSWORD), which the channels read whatever
// the file says; S3 credentials come from the environment anyway.
//
// Built when FMI_WITH_LAMBDA is ON (the default; needs libcurl, as the S3 channel).
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "fmi/communicator.h"
#include "fmi/config.h"
#include "fmi/types.h"

namespace FMI::Lambda {

/// One invocation, from the headers and body of the Runtime API's answer to
/// GET /2018-06-01/runtime/invocation/next.
struct Invocation {
  /// Lambda-Runtime-Aws-Request-Id: the id the response or error is posted under.
  std::string request_id;
  /// Lambda-Runtime-Deadline-Ms: when Lambda stops the function (wall clock, as
  /// the header is Unix milliseconds).
  std::chrono::system_clock::time_point deadline;
  /// Lambda-Runtime-Invoked-Function-Arn (empty when the header is absent).
  std::string function_arn;
  /// Lambda-Runtime-Trace-Id; serve() also puts it in $_X_AMZN_TRACE_ID (and removes
  /// that variable for an invocation without one), as the Runtime API asks.
  std::string trace_id;
  /// The body: the event as the caller sent it (JSON text, not parsed).
  std::string event;

  /// Time left until `deadline` (negative once it passed).
  std::chrono::milliseconds remaining() const;
};

/// The event contract of `fmirun --lambda`, parsed from an invocation.
struct Job {
  Utils::peer_num peer_id = 0;
  Utils::peer_num num_peers = 0;
  std::string comm_name;
  /// fmi_config, parsed and validated as a configuration file would be (source
  /// "Lambda event <request id>: fmi_config"), with every channel's max_timeout
  /// clamped to the invocation's time left (see parse_job).
  Config config;
  /// The event's other top-level fields, as a JSON object text ("{}" when none):
  /// the user's payload, for the user's own JSON parser (FMI's public API does not
  /// expose one).
  std::string payload;
};

/// Time kept back from the invocation's remaining time when max_timeout is clamped:
/// enough to post the response (or an error) after a timed-out call.
inline constexpr std::chrono::milliseconds kDefaultReserve{1000};

/// Parses the event contract. A missing or ill-typed field (peer_id, num_peers,
/// comm_name, fmi_config) or an event that is not a JSON object raises ConfigError
/// naming the field; peer_id >= num_peers raises UsageError; a bad fmi_config raises
/// the ConfigError a bad file would (naming the field under fmi_config).
///
/// Deadline: every backends.<channel> section of fmi_config gets max_timeout =
/// min(its own, remaining() - reserve) before parsing, so that no single FMI call
/// waits past the point where the function could still report. This bounds each
/// call, not the sum of them: a job of many calls can still run into Lambda's own
/// timeout, which then ends the process (the caller sees Lambda's timeout error).
/// Bounding the whole job would need a deadline in every Communicator call, which
/// the Communicator does not have. TimeoutError when remaining() <= reserve.
Job parse_job(const Invocation& invocation, std::chrono::milliseconds reserve = kDefaultReserve);

/// The function's memory in MiB from $AWS_LAMBDA_FUNCTION_MEMORY_SIZE (set by
/// Lambda), 128 when it is absent or not a number: the Communicator's faas_memory.
unsigned int function_memory();

/// The Communicator of a job: Communicator(job.peer_id, job.num_peers, job.config,
/// job.comm_name, faas_memory). (A unique_ptr because a Communicator cannot move.)
std::unique_ptr<Communicator> communicator(const Job& job,
                                           unsigned int faas_memory = function_memory());

/// What the function does with one invocation: returns the response body (sent
/// as is; JSON for `fmirun --lambda`, which prints it as the peer's result). What
/// it throws is posted as the invocation's error (see serve()).
using Handler = std::function<std::string(const Invocation&)>;

/// A handler with the Communicator built: parses the event (parse_job), creates the
/// Communicator, calls fn(comm, job) and destroys the Communicator (finalising its
/// channels: connections closed, keys and objects deleted) before the response is
/// posted, so that the caller's result means the function is done with the job.
using JobFunction = std::function<std::string(Communicator& comm, const Job& job)>;
Handler job_handler(JobFunction fn, std::chrono::milliseconds reserve = kDefaultReserve);

struct ServeOptions {
  /// host:port of the Runtime API; empty: $AWS_LAMBDA_RUNTIME_API.
  std::string runtime_api;
  /// Runs once before the first invocation is fetched (load data, read files). What
  /// it throws is posted to /runtime/init/error, and serve() returns 1: Lambda then
  /// fails the pending invocation with that error and discards the process.
  std::function<void()> init;
  /// Return after this many invocations (0: never, as on Lambda). For tests, and
  /// for a program that wants a fresh process after n jobs.
  std::size_t max_invocations = 0;
};

/// The runtime loop. Per invocation: GET .../runtime/invocation/next (a long poll
/// without a time limit: Lambda answers when there is an invocation and freezes
/// the process in between, so any limit would only fail healthy idle functions),
/// handler(invocation), then POST .../runtime/invocation/{id}/response with the
/// handler's string, or, when it throws, POST .../runtime/invocation/{id}/error with
/// {"errorType": error_type(e), "errorMessage": what()} and the header
/// Lambda-Runtime-Function-Error-Type: errorType. A handler's exception never ends
/// the loop: the next invocation may well succeed. A response the Runtime API refuses
/// as too large (413; Lambda takes 6 MB) becomes the invocation's error too
/// (FMI::UsageError naming the size).
///
/// Init error vs invocation error: only a failure before the first invocation is an
/// init error (ServeOptions::init). A broken event contract (a missing peer_id) is
/// that invocation's error (FMI::ConfigError naming the field): the Runtime API takes
/// init/error only during initialisation, and the caller of that invocation is the
/// one to tell.
///
/// Returns 0 after max_invocations, 1 after an init error was reported. Throws
/// ConfigError when no Runtime API address is given or set, and ChannelError when
/// the Runtime API cannot be reached or refuses a request (a non-2xx status; the
/// posts have a 30 s limit): the runtime is then broken, and Lambda restarts a
/// process that exits. Not thread-safe: one serve() per process (it sets
/// $_X_AMZN_TRACE_ID).
int serve(const Handler& handler, const ServeOptions& options = {});

/// The errorType of an exception: its class's qualified name as C++ spells it and
/// include/fmi/errors.h names FMI's ("FMI::TimeoutError", "FMI::ConfigError", ...;
/// "std::runtime_error" or the user's own class otherwise; "unknown" for a thrown
/// non-class value).
std::string error_type(std::exception_ptr e);

}  // namespace FMI::Lambda
