// fmirun's child processes: spawning (fork/exec into a process group, optionally in
// a network namespace), signalling groups, running helper commands to completion,
// reading their output line by line, and delivering our own signals to the poll
// loop through a pipe. The launcher (fmirun.cpp) decides what to start and when.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tools/common/fd.h"

namespace fmirun {

using FMI::Tools::Fd;

/// A failure before or around the run (arguments, config, lab, server): exit code 2.
struct SetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string errno_text(int err);

/// Writes all of s, retrying short writes and EINTR; gives up silently when fd is
/// gone (our own stdout closed: there is nobody left to report to).
void write_all(int fd, const std::string& s);

/// "fmirun: <s>" on stderr.
void say(const std::string& s);

/// A pipe, both ends close-on-exec: {read end, write end}. Throws SetupError.
std::pair<Fd, Fd> make_pipe();

/// "exited with status 3", "was killed by signal 9 (Killed)", ...
std::string describe_status(int status);

/// Installs the handlers of SIGINT, SIGTERM, SIGHUP and SIGCHLD, which write the
/// signal number into a pipe, and ignores SIGPIPE. Returns the pipe's non-blocking
/// read end, which the poll loop watches (the write end lives as long as the process).
Fd install_signal_pipe();

/// One output pipe of a child.
struct Stream {
  Fd fd;
  int target = STDOUT_FILENO;  // where its lines go
  std::string partial;         // bytes after the last newline
};

struct Proc {
  std::string label;  // "peer 3", "rendezvous"
  pid_t pid = -1;
  bool running = false;
  int status = 0;
  bool terminated_by_us = false;  // we sent it a signal: its death is not a failure
  Stream out, err;
};

struct SpawnSpec {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  int netns_fd = -1;  // join this network namespace before exec
};

/// Starts a process in its own process group (so that ending it also ends whatever
/// it started), stdin from /dev/null, stdout and stderr into pipes (p.out, p.err).
void spawn(Proc& p, const SpawnSpec& spec);

/// Sends sig to p's process group (or p alone if the group is gone) and marks p as
/// ended by us. Nothing when p is not running.
void signal_group(Proc& p, int sig);

/// Runs a helper command to completion (NAT lab set-up and tear-down): its stderr
/// passes through to ours (errors), its stdout is dropped. Returns its wait status.
int run_command(const std::vector<std::string>& args);

/// Reads what is available on s and calls on_line for each complete line; at EOF
/// (or an error on our own pipe) flushes an unterminated last line and closes s.
void read_lines(Stream& s, const std::function<void(const std::string&)>& on_line);

}  // namespace fmirun
