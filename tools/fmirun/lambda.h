// fmirun --lambda: a job of N functions on AWS Lambda (or an endpoint that serves the
// Invoke API, such as an emulator), started by N concurrent RequestResponse Invoke
// calls over one libcurl multi handle. Each function gets an event with its peer id,
// the job's size, the communicator name and the configuration (secrets removed);
// see docs/lambda.md for the event contract and what is printed.
#pragma once

#include <string>

namespace fmirun {

struct LambdaOptions {
  std::string function;  // name, name:qualifier or ARN
  int n = 1;
  std::string config;      // FMI configuration file; empty: no fmi_config in the events
  std::string name;        // communicator name; empty: fresh per run
  std::string region;      // empty: $AWS_REGION, $AWS_DEFAULT_REGION
  std::string endpoint;    // empty: https://lambda.REGION.amazonaws.com
  std::string payload;     // JSON object merged into every event
  double timeout_s = 0;    // 0: the function's own timeout + 60 s when known, else 900 s
  std::string output;      // directory for peer-i.json
  std::string rendezvous;  // fmi-rendezvous to start when the config's server is local
  bool verbose = false;
};

/// Runs the job; returns fmirun's exit status (0 all succeeded, 1 a function failed,
/// 2 set-up, 124 --timeout, 128+N signal N). Throws SetupError before anything runs.
int run_lambda(const LambdaOptions& opt);

}  // namespace fmirun
