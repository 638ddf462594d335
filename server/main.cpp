// fmi-rendezvous: the rendezvous server of FMI's Direct channel.
//
//   fmi-rendezvous [--port 10000] [--bind 0.0.0.0] [--ttl-ms 60000] [--quiet]
//                  [--secret-file PATH] [--max-connections 4096] [--max-per-address 1024]
//                  [--relay-idle-ms 600000] [--relay-max-bytes 17179869184]
//                  [--relay-window-ms 86400000]
//
// Shared secret (optional, docs/security.md): --secret-file PATH (the file's
// content, without a trailing newline), else the environment variable FMI_SECRET.
// Never on the command line, which every user of the machine can see in `ps`.
//
// Prints "fmi-rendezvous listening on ADDR:PORT" on stderr once it accepts
// connections (with --port 0 the kernel picks the port, and that line says which).
// Stops cleanly on SIGTERM or SIGINT.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "fmi/errors.h"
#include "server.h"
#include "wire/auth.h"

int main(int argc, char** argv) {
  FMI::Rendezvous::Options opt;
  CLI::App app{"fmi-rendezvous: rendezvous server for FMI's Direct channel (TCP hole punching)"};
  app.add_option("-p,--port", opt.port, "TCP port to listen on (0: any free port)")
      ->capture_default_str();
  app.add_option("-b,--bind", opt.bind, "address to listen on")->capture_default_str();
  app.add_option("--max-connections", opt.max_connections, "open connections at most")
      ->capture_default_str();
  app.add_option("--max-per-address", opt.max_per_address,
                 "open connections from one IP address at most (0: no limit)")
      ->capture_default_str();
  long ttl = opt.registration_ttl.count(), hello = opt.hello_timeout.count();
  long relay_idle = opt.relay_idle.count(), relay_window = opt.relay_window.count();
  app.add_option("--relay-idle-ms", relay_idle,
                 "close a relay on which no byte moved for this long")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--relay-max-bytes", opt.relay_max_bytes,
                 "bytes one relay forwards at most, both directions (0: no cap)")
      ->capture_default_str();
  app.add_option("--relay-window-ms", relay_window,
                 "relay a communicator's pairs for this long after its table was sent")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--ttl-ms", ttl, "expire registrations whose communicator is incomplete after")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--hello-timeout-ms", hello, "drop connections that send no request within")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("-q,--quiet", opt.quiet, "log only errors, start and stop");
  std::string secret_file;
  app.add_option(
      "--secret-file", secret_file,
      "file holding the shared secret (default: env FMI_SECRET; none: no authentication)");
  CLI11_PARSE(app, argc, argv);
  opt.registration_ttl = std::chrono::milliseconds(ttl);
  opt.hello_timeout = std::chrono::milliseconds(hello);
  opt.relay_idle = std::chrono::milliseconds(relay_idle);
  opt.relay_window = std::chrono::milliseconds(relay_window);
  try {
    if (!secret_file.empty()) {
      std::ifstream f(secret_file, std::ios::binary);
      if (!f)
        FMI_THROW(FMI::ConfigError, "fmi-rendezvous: cannot read --secret-file ", secret_file);
      std::stringstream ss;
      ss << f.rdbuf();
      opt.secret = ss.str();
      while (!opt.secret.empty() && (opt.secret.back() == '\n' || opt.secret.back() == '\r'))
        opt.secret.pop_back();
      if (opt.secret.empty())
        FMI_THROW(FMI::ConfigError, "fmi-rendezvous: --secret-file ", secret_file, " is empty");
      FMI::Wire::auth::check_secret(opt.secret, "--secret-file " + secret_file);
    } else if (const char* env = std::getenv("FMI_SECRET"); env && *env) {
      opt.secret = env;
      FMI::Wire::auth::check_secret(opt.secret, "the environment variable FMI_SECRET");
    }
    FMI::Rendezvous::Server server(opt);
    server.run();
  } catch (const FMI::Error& e) {
    std::cerr << e.what() << '\n';
    return 1;
  }
  return 0;
}
