// fmirun's child processes (see process.h).
#include "process.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fmirun {
namespace {

// Signals reach the poll loop through a pipe so that every reaction (terminating
// the peers, tearing the lab down) happens in normal code, not in a handler.
int g_signal_pipe_w = -1;
void on_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  (void)!::write(g_signal_pipe_w, &b, 1);
  errno = saved;
}

}  // namespace

std::string errno_text(int err) { return std::strerror(err); }

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // our own stdout went away (e.g. a closed pager): nothing to report to
    }
    off += static_cast<std::size_t>(n);
  }
}

void say(const std::string& s) { write_all(STDERR_FILENO, "fmirun: " + s + "\n"); }

std::pair<Fd, Fd> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw SetupError("pipe: " + errno_text(errno));
  return {Fd(p[0]), Fd(p[1])};
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = ::sigdescr_np(sig);
    return "was killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")" +
           (WCOREDUMP(status) ? ", core dumped" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

Fd install_signal_pipe() {
  auto [r, w] = make_pipe();
  ::fcntl(r.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(w.get(), F_SETFL, O_NONBLOCK);
  g_signal_pipe_w = w.get();
  static Fd keep_w;  // lives as long as the handlers may run
  keep_w = std::move(w);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) ::sigaction(s, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  return std::move(r);
}

void spawn(Proc& p, const SpawnSpec& spec) {
  auto [out_r, out_w] = make_pipe();
  auto [err_r, err_w] = make_pipe();
  std::vector<char*> argv;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw SetupError("fork for " + p.label + ": " + errno_text(errno));
  if (pid == 0) {
    // Child: only async-signal-safe calls plus setenv (fmirun is single-threaded).
    ::setpgid(0, 0);
    // Even a SIGKILLed fmirun must not leave functions or a server behind.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(128 + SIGTERM);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) ::signal(s, SIG_DFL);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::dup2(out_w.get(), STDOUT_FILENO);
    ::dup2(err_w.get(), STDERR_FILENO);
    auto die = [&](const char* what, int err) {
      std::string m =
          std::string("fmirun: ") + what + " " + spec.argv[0] + ": " + std::strerror(err) + "\n";
      (void)!::write(STDERR_FILENO, m.data(), m.size());
      ::_exit(127);
    };
    if (spec.netns_fd >= 0 && ::setns(spec.netns_fd, CLONE_NEWNET) != 0)
      die("cannot enter the network namespace for", errno);
    for (const auto& [k, v] : spec.env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execvp(argv[0], argv.data());
    die("cannot execute", errno);
  }
  // Parent: also set the group here, so that a kill(-pid) right after fork works.
  ::setpgid(pid, pid);
  p.pid = pid;
  p.running = true;
  p.out.fd = std::move(out_r);
  p.out.target = STDOUT_FILENO;
  p.err.fd = std::move(err_r);
  p.err.target = STDERR_FILENO;
}

void signal_group(Proc& p, int sig) {
  if (!p.running) return;
  p.terminated_by_us = true;
  if (::kill(-p.pid, sig) != 0) ::kill(p.pid, sig);
}

int run_command(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw SetupError("fork: " + errno_text(errno));
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

void read_lines(Stream& s, const std::function<void(const std::string&)>& on_line) {
  char buf[65536];
  ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {  // EOF (or an error on our own pipe): flush an unterminated last line
    if (!s.partial.empty()) on_line(s.partial);
    s.partial.clear();
    s.fd.reset();
    return;
  }
  s.partial.append(buf, static_cast<std::size_t>(n));
  std::size_t start = 0, nl;
  while ((nl = s.partial.find('\n', start)) != std::string::npos) {
    on_line(s.partial.substr(start, nl - start));
    start = nl + 1;
  }
  s.partial.erase(0, start);
  // A process printing without newlines must not make us buffer without bound.
  if (s.partial.size() > (1u << 20)) {
    on_line(s.partial);
    s.partial.clear();
  }
}

}  // namespace fmirun
