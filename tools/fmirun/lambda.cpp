// fmirun --lambda (see lambda.h, docs/lambda.md). One thread: every Invoke call is an
// easy handle on one curl multi handle, so 1000 functions in flight cost 1000
// connections and no threads; the same loop watches our signals and the output of
// the rendezvous server we may have started.
//
// Which failures end the job at once: anything that is the same for every call
// (unknown function, rejected credentials, an endpoint that refuses connections or
// does not resolve, a 4xx other than 429). Which are retried: 429 and 5xx, the
// answers Lambda gives before the function ran, with jittered exponential backoff
// within --timeout. Never retried: an error after the request was sent (the function
// may be running: a second copy would register twice as the same peer).
#include "lambda.h"

#include <curl/curl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "process.h"
#include "setup.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace fmirun {
namespace {

constexpr int kExitFailed = 1;
// The event fields fmirun sets; a --payload field may not take one of these names.
const char* const kReserved[] = {"peer_id", "num_peers", "comm_name", "fmi_config"};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string base64_decode(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned val = 0;
  int bits = -8;
  for (unsigned char c : in) {
    auto pos = chars.find(char(c));
    if (pos == std::string::npos) continue;  // '=', whitespace
    val = (val << 6) | unsigned(pos);
    bits += 6;
    if (bits >= 0) {
      out += char((val >> bits) & 0xFF);
      bits -= 8;
    }
  }
  return out;
}

std::string fresh_comm_name() {
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof buf, "fmi-%08x%08x", rd(), rd());
  return buf;
}

// The configuration as the events carry it: every field whose name says it holds a
// secret is removed from each backends.<channel> section (Direct's secret, Redis's
// password, any credential a future channel may read from the file). The functions
// get them from their own environment (FMI_SECRET, FMI_REDIS_PASSWORD, AWS_*), as the
// library reads them. Returns the removed fields' paths.
std::vector<std::string> strip_secrets(json& cfg) {
  std::vector<std::string> removed;
  auto b = cfg.find("backends");
  if (b == cfg.end() || !b->is_object()) return removed;
  for (auto& [channel, section] : b->items()) {
    if (!section.is_object()) continue;
    for (auto it = section.begin(); it != section.end();) {
      const std::string k = lower(it.key());
      if (k.find("secret") != std::string::npos || k.find("password") != std::string::npos ||
          k.find("token") != std::string::npos || k.find("access_key") != std::string::npos) {
        removed.push_back("backends." + channel + "." + it.key());
        it = section.erase(it);
      } else {
        ++it;
      }
    }
  }
  return removed;
}

// ---- HTTP --------------------------------------------------------------------------

struct SList {
  curl_slist* p = nullptr;
  SList() = default;
  SList(const SList&) = delete;
  SList& operator=(const SList&) = delete;
  ~SList() { curl_slist_free_all(p); }
  void add(const std::string& h) {
    curl_slist* n = curl_slist_append(p, h.c_str());
    if (!n) throw std::bad_alloc();
    p = n;
  }
};

struct Credentials {
  std::string key, secret, token;
};

// One HTTP exchange's result: status, lower-case headers, body.
struct Reply {
  long status = 0;
  std::map<std::string, std::string> headers;
  std::string body;
  CURLcode code = CURLE_OK;
  std::string curl_error;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  // The AWS error type: x-amzn-errortype ("ResourceNotFoundException:http://..."),
  // else the body's __type / Type.
  std::string error_type() const {
    std::string t = header("x-amzn-errortype");
    if (t.empty()) {
      auto j = json::parse(body, nullptr, false);
      if (j.is_object())
        for (const char* f : {"__type", "Type", "type"})
          if (auto it = j.find(f); it != j.end() && it->is_string()) t = it->get<std::string>();
    }
    return t.substr(0, t.find(':'));
  }
  std::string message() const {
    auto j = json::parse(body, nullptr, false);
    if (j.is_object())
      for (const char* f : {"Message", "message", "errorMessage"})
        if (auto it = j.find(f); it != j.end() && it->is_string()) return it->get<std::string>();
    std::string b = body.substr(0, 300);
    return b;
  }
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) r->headers.clear();  // a new response (after 100, redirects)
  if (auto colon = line.find(':'); colon != std::string::npos) {
    std::string v = line.substr(colon + 1);
    while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
    std::size_t i = 0;
    while (i < v.size() && std::isspace(static_cast<unsigned char>(v[i]))) ++i;
    r->headers[lower(line.substr(0, colon))] = v.substr(i);
  }
  return size * n;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->body.append(data, size * n);
  return size * n;
}

class CurlGlobal {
 public:
  CurlGlobal() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw SetupError("curl_global_init failed");
  }
  ~CurlGlobal() { curl_global_cleanup(); }
};

// The options every request of the job shares: URL, SigV4, credentials, timeouts.
class Api {
 public:
  Api(std::string endpoint, const std::string& region, Credentials c)
      : endpoint_(std::move(endpoint)),
        sigv4_("aws:amz:" + region + ":lambda"),
        cred_(std::move(c)) {}

  const std::string& endpoint() const { return endpoint_; }

  std::string url(const std::string& path) const { return endpoint_ + path; }

  // Sets up h for one request; `hdrs` and `body` must outlive the transfer.
  void prepare(CURL* h, const std::string& method, const std::string& path, SList& hdrs,
               const std::string* body, Reply& r, long timeout_ms) const {
    if (!cred_.token.empty()) hdrs.add("X-Amz-Security-Token: " + cred_.token);
    curl_easy_setopt(h, CURLOPT_URL, url(path).c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, cred_.key.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, cred_.secret.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs.p);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, std::max(1L, timeout_ms));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, std::min(std::max(1L, timeout_ms), 10000L));
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    // A RequestResponse call lasts as long as the function: keep idle-looking
    // connections alive through NATs and load balancers.
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (body) {
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body->size()));
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    }
  }

  // A synchronous GET (the checks before the job).
  Reply get(const std::string& path, long timeout_ms) const {
    Reply r;
    CURL* h = curl_easy_init();
    if (!h) throw SetupError("curl_easy_init failed");
    SList hdrs;
    prepare(h, "GET", path, hdrs, nullptr, r, timeout_ms);
    char err[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    r.code = curl_easy_perform(h);
    r.curl_error = *err ? err : curl_easy_strerror(r.code);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    return r;
  }

 private:
  std::string endpoint_, sigv4_;
  Credentials cred_;
};

// Failures that are the same for every call: a clear message, the job does not start
// (or stops at once).
std::optional<std::string> job_wide_problem(const Reply& r, const std::string& function,
                                            const std::string& region,
                                            const std::string& endpoint) {
  if (r.code != CURLE_OK) {
    switch (r.code) {
      case CURLE_COULDNT_RESOLVE_HOST:
        return "cannot resolve the Lambda endpoint " + endpoint + " (" + r.curl_error +
               "): is the region '" + region + "' right?";
      case CURLE_COULDNT_CONNECT:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_URL_MALFORMAT:
      case CURLE_UNSUPPORTED_PROTOCOL:
        return "cannot connect to the Lambda endpoint " + endpoint + ": " + r.curl_error;
      default: return std::nullopt;
    }
  }
  const std::string type = r.error_type();
  if (r.status == 404 && type == "ResourceNotFoundException")
    return "function '" + function + "' not found at " + endpoint + " (region " + region +
           "): " + r.message();
  if (r.status == 401 || r.status == 403) {
    if (type == "AccessDeniedException" || type == "AccessDenied")
      return "access denied to function '" + function + "' (" + r.message() +
             "): the credentials need lambda:InvokeFunction on it";
    return "the endpoint " + endpoint + " rejected the credentials (" + std::to_string(r.status) +
           (type.empty() ? "" : " " + type) + ": " + r.message() +
           "); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and the region";
  }
  if (r.status >= 400 && r.status < 500 && r.status != 429)
    return "Invoke of '" + function + "' was refused: " + std::to_string(r.status) +
           (type.empty() ? "" : " " + type) + ": " + r.message();
  return std::nullopt;
}

// ---- the rendezvous server we may start ---------------------------------------------

class LocalRendezvous {
 public:
  ~LocalRendezvous() { stop(); }

  void start(const fs::path& bin, const std::string& bind, std::uint16_t port,
             const std::string& secret) {
    proc_.label = "rendezvous";
    SpawnSpec spec;
    spec.argv = {bin.string(), "--port", std::to_string(port), "--bind", bind};
    // The server checks what the functions prove with the secret they read from
    // their environment; ours takes the configuration's when FMI_SECRET is unset.
    const char* env = std::getenv("FMI_SECRET");
    if (!secret.empty() && !(env && *env)) spec.env.emplace_back("FMI_SECRET", secret);
    spawn(proc_, spec);
    const auto give_up = Clock::now() + 10s;
    while (!port_in_use(bind, port)) {
      drain();
      check_alive();
      if (!proc_.running)
        throw SetupError("the rendezvous server " + bin.string() + " " +
                         describe_status(proc_.status) + " before listening on " + bind + ":" +
                         std::to_string(port) + log_text());
      if (Clock::now() > give_up)
        throw SetupError("the rendezvous server " + bin.string() + " did not listen on " + bind +
                         ":" + std::to_string(port) + " within 10 s" + log_text());
      ::usleep(20000);
    }
  }

  bool started() const { return proc_.pid > 0; }

  // The server's pipes, for the poll of the main loop.
  std::vector<int> fds() const {
    std::vector<int> v;
    for (const Stream* s : {&proc_.out, &proc_.err})
      if (s->fd) v.push_back(s->fd.get());
    return v;
  }

  // Reads what the server wrote, without waiting (its pipes block).
  void drain(bool verbose = false) {
    for (Stream* s : {&proc_.out, &proc_.err}) {
      if (!s->fd) continue;
      pollfd p{s->fd.get(), POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      read_lines(*s, [&](const std::string& l) {
        log_.push_back(l);
        if (log_.size() > 20) log_.pop_front();
        if (verbose) write_all(STDERR_FILENO, "[rendezvous] " + l + "\n");
      });
    }
  }

  // After SIGCHLD: a server that died during the job is reported (the functions
  // will fail to connect; their errors say so too).
  void check_alive() {
    if (!proc_.running) return;
    int status;
    if (::waitpid(proc_.pid, &status, WNOHANG) == proc_.pid) {
      proc_.running = false;
      proc_.status = status;
      if (!proc_.terminated_by_us)
        say("the rendezvous server " + describe_status(status) + " during the job" + log_text());
    }
  }

  void stop() {
    if (!proc_.running) return;
    signal_group(proc_, SIGTERM);
    const auto kill_at = Clock::now() + 3s;
    while (proc_.running) {
      int status;
      pid_t r = ::waitpid(proc_.pid, &status, WNOHANG);
      if (r == proc_.pid || (r < 0 && errno != EINTR)) {
        proc_.running = false;
        break;
      }
      if (Clock::now() > kill_at) signal_group(proc_, SIGKILL);
      drain();
      ::usleep(20000);
    }
  }

 private:
  std::string log_text() const {
    std::string s;
    for (const auto& l : log_) s += "\n[rendezvous] " + l;
    return s;
  }
  Proc proc_;
  std::deque<std::string> log_;
};

// ---- the job -------------------------------------------------------------------------

struct Invocation {
  enum class State { waiting, in_flight, done, failed };
  int peer = 0;
  std::string event;
  CURL* easy = nullptr;
  std::unique_ptr<SList> headers;
  Reply reply;
  State state = State::waiting;
  int attempts = 0;
  Clock::time_point start_at{};  // when to (re)send
  double seconds = 0;            // of the last attempt
  std::string error;             // "Type: message"
  std::string log_tail;
};

class Job {
 public:
  Job(const LambdaOptions& o, Api& api, std::string region, int sig_fd, LocalRendezvous& server)
      : opt_(o),
        api_(api),
        region_(std::move(region)),
        sig_fd_(sig_fd),
        server_(server),
        tty_(::isatty(STDERR_FILENO) == 1) {}
  ~Job() {
    for (auto& inv : calls_)
      if (inv.easy) {
        if (inv.state == Invocation::State::in_flight) curl_multi_remove_handle(multi_, inv.easy);
        curl_easy_cleanup(inv.easy);
      }
    if (multi_) curl_multi_cleanup(multi_);
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  int run(const std::vector<std::string>& events, Clock::time_point deadline);

 private:
  void send(Invocation& inv);
  void finished(Invocation& inv, CURLcode code);
  void succeed(Invocation& inv, const std::string& result);
  void fail(Invocation& inv, const std::string& error);
  bool retry(Invocation& inv, const std::string& why);
  void abort_job(const std::string& why, int code);
  void print(int fd, const std::string& text);
  void progress(bool force);
  std::string progress_text() const;

  const LambdaOptions& opt_;
  Api& api_;
  std::string region_;
  int sig_fd_;
  LocalRendezvous& server_;
  bool tty_;
  CURLM* multi_ = nullptr;
  std::vector<Invocation> calls_;
  Clock::time_point started_{}, deadline_{};
  Clock::time_point last_progress_{};
  std::string last_progress_text_;
  bool progress_shown_ = false;
  int invoked_ = 0, running_ = 0, done_ = 0, failed_ = 0;
  std::optional<std::string> first_failure_;
  std::optional<int> abort_code_;
  bool timed_out_ = false;  // a call ended by the deadline: exit kExitTimeout
  std::mt19937_64 rng_{std::random_device{}()};
};

std::string Job::progress_text() const {
  return "fmirun: " + opt_.function + ": " + std::to_string(invoked_) + "/" +
         std::to_string(calls_.size()) + " invoked, " + std::to_string(running_) + " running, " +
         std::to_string(done_) + " done, " + std::to_string(failed_) + " failed, " +
         fmt_seconds(seconds_since(started_));
}

// On a terminal the progress line is rewritten in place (and taken away around other
// output); elsewhere (logs, CI) a line every 10 s when something changed.
void Job::progress(bool force) {
  const auto now = Clock::now();
  if (tty_) {
    if (!force && now - last_progress_ < 200ms) return;
    write_all(STDERR_FILENO, "\r\033[K" + progress_text());
    progress_shown_ = true;
  } else {
    std::string counts = std::to_string(invoked_) + "," + std::to_string(running_) + "," +
                         std::to_string(done_) + "," + std::to_string(failed_);
    if (!force && (now - last_progress_ < 10s || counts == last_progress_text_)) return;
    last_progress_text_ = counts;
    write_all(STDERR_FILENO, progress_text() + "\n");
  }
  last_progress_ = now;
}

void Job::print(int fd, const std::string& text) {
  if (tty_ && progress_shown_) {
    write_all(STDERR_FILENO, "\r\033[K");
    progress_shown_ = false;
  }
  write_all(fd, text);
}

void Job::send(Invocation& inv) {
  inv.reply = Reply{};
  inv.headers = std::make_unique<SList>();
  inv.headers->add("Content-Type: application/json");
  inv.headers->add("X-Amz-Invocation-Type: RequestResponse");
  inv.headers->add("X-Amz-Log-Type: Tail");
  const long left =
      long(std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count());
  if (!inv.easy) inv.easy = curl_easy_init();
  if (!inv.easy) throw SetupError("curl_easy_init failed");
  curl_easy_reset(inv.easy);
  api_.prepare(inv.easy, "POST", "/2015-03-31/functions/" + opt_.function + "/invocations",
               *inv.headers, &inv.event, inv.reply, left);
  curl_easy_setopt(inv.easy, CURLOPT_PRIVATE, &inv);
  if (curl_multi_add_handle(multi_, inv.easy) != CURLM_OK)
    throw SetupError("curl_multi_add_handle failed");
  if (inv.attempts++ == 0) ++invoked_;
  ++running_;
  inv.state = Invocation::State::in_flight;
  inv.start_at = Clock::now();
}

void Job::succeed(Invocation& inv, const std::string& result) {
  inv.state = Invocation::State::done;
  ++done_;
  print(STDOUT_FILENO, "[peer " + std::to_string(inv.peer) + "] " + result + "\n");
}

void Job::fail(Invocation& inv, const std::string& error) {
  inv.state = Invocation::State::failed;
  inv.error = error;
  ++failed_;
  const std::string who = "peer " + std::to_string(inv.peer);
  if (!first_failure_) first_failure_ = who + ": " + error;
  std::string text =
      "fmirun: " + who + " failed after " + fmt_seconds(inv.seconds) + ": " + error + "\n";
  if (!inv.log_tail.empty()) {
    text += "fmirun: " + who + ": the tail of its log:\n";
    std::istringstream in(inv.log_tail);
    for (std::string l; std::getline(in, l);) text += "[" + who + "] | " + l + "\n";
  }
  print(STDERR_FILENO, text);
}

// 429 and 5xx: again after a jittered exponential backoff (equal jitter: half the
// delay fixed, half random, so that a throttled job's calls spread out), as long as
// the answer can still come before the deadline.
bool Job::retry(Invocation& inv, const std::string& why) {
  const double cap = 20.0, base = 0.2;
  double d = std::min(cap, base * std::pow(2.0, std::min(inv.attempts - 1, 16)));
  if (auto ra = inv.reply.header("retry-after"); !ra.empty())
    d = std::max(d, std::atof(ra.c_str()));
  std::uniform_real_distribution<double> half(0.0, d / 2);
  const auto wait = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(d / 2 + half(rng_)));
  if (Clock::now() + wait + 1s >= deadline_) return false;
  inv.state = Invocation::State::waiting;
  inv.start_at = Clock::now() + wait;
  if (opt_.verbose)
    print(STDERR_FILENO, "fmirun: peer " + std::to_string(inv.peer) + ": " + why +
                             "; retrying in " +
                             fmt_seconds(std::chrono::duration<double>(wait).count()) + "\n");
  return true;
}

void Job::abort_job(const std::string& why, int code) {
  if (abort_code_) return;
  abort_code_ = code;
  print(STDERR_FILENO, "fmirun: " + why + "\n");
}

void Job::finished(Invocation& inv, CURLcode code) {
  curl_multi_remove_handle(multi_, inv.easy);
  --running_;
  inv.seconds = seconds_since(inv.start_at);
  Reply& r = inv.reply;
  r.code = code;
  curl_easy_getinfo(inv.easy, CURLINFO_RESPONSE_CODE, &r.status);
  const std::string who = "peer " + std::to_string(inv.peer);
  if (code != CURLE_OK) {
    r.curl_error = curl_easy_strerror(code);
    if (code == CURLE_OPERATION_TIMEDOUT && Clock::now() + 50ms >= deadline_) {
      timed_out_ = true;
      fail(inv, "no answer within the job's --timeout (on AWS it may still be running)");
      return;
    }
    if (auto p = job_wide_problem(r, opt_.function, region_, api_.endpoint())) {
      fail(inv, *p);
      abort_job(*p, kExitSetup);
      return;
    }
    // The request may have reached the function: not sent again.
    fail(inv, "the Invoke call failed: " + r.curl_error);
    return;
  }
  if (r.status == 429 || r.status >= 500) {
    const std::string why = std::to_string(r.status) + " " + r.error_type() + ": " + r.message();
    if (!retry(inv, why)) fail(inv, "Invoke kept failing until --timeout: " + why);
    return;
  }
  if (auto p = job_wide_problem(r, opt_.function, region_, api_.endpoint())) {
    fail(inv, *p);
    abort_job(*p, kExitSetup);
    return;
  }
  if (!opt_.output.empty()) {
    std::ofstream f(fs::path(opt_.output) / ("peer-" + std::to_string(inv.peer) + ".json"));
    f << r.body << "\n";
    if (!f)
      print(STDERR_FILENO, "fmirun: cannot write " + opt_.output + "/peer-" +
                               std::to_string(inv.peer) + ".json\n");
  }
  if (auto tail = r.header("x-amz-log-result"); !tail.empty()) inv.log_tail = base64_decode(tail);
  // A function error: Lambda's own (X-Amz-Function-Error, payload errorType /
  // errorMessage), or one that fmi.lambda_handler returned as the result where raising
  // would kill the emulator's worker (the same payload, without the header).
  json payload = json::parse(r.body, nullptr, false);
  const bool error_payload = payload.is_object() && payload.contains("errorType") &&
                             payload["errorType"].is_string() && payload.contains("errorMessage") &&
                             payload["errorMessage"].is_string();
  const std::string fn_error = r.header("x-amz-function-error");
  if (!fn_error.empty() || error_payload) {
    std::string type = error_payload ? payload["errorType"].get<std::string>() : fn_error;
    std::string message = error_payload ? payload["errorMessage"].get<std::string>() : r.body;
    fail(inv, type + ": " + message +
                  (fn_error.empty() || fn_error == type ? "" : " (" + fn_error + ")"));
    return;
  }
  succeed(inv, payload.is_discarded() ? r.body : payload.dump());
}

int Job::run(const std::vector<std::string>& events, Clock::time_point deadline) {
  started_ = Clock::now();
  deadline_ = deadline;
  multi_ = curl_multi_init();
  if (!multi_) throw SetupError("curl_multi_init failed");
  calls_.resize(events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    calls_[i].peer = int(i);
    calls_[i].event = events[i];
    calls_[i].start_at = started_;
  }

  auto active = [&] {
    return std::any_of(calls_.begin(), calls_.end(), [](const Invocation& c) {
      return c.state == Invocation::State::waiting || c.state == Invocation::State::in_flight;
    });
  };
  while (active() && !abort_code_) {
    const auto now = Clock::now();
    auto next = now + 1s;
    for (auto& inv : calls_)
      if (inv.state == Invocation::State::waiting) {
        if (inv.start_at <= now)
          send(inv);
        else
          next = std::min(next, inv.start_at);
      }
    int still = 0;
    curl_multi_perform(multi_, &still);
    while (CURLMsg* m = [&] {
      int q;
      return curl_multi_info_read(multi_, &q);
    }()) {
      if (m->msg != CURLMSG_DONE) continue;
      Invocation* inv = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&inv));
      finished(*inv, m->data.result);
    }
    if (Clock::now() >= deadline_ && active()) {
      // The job's --timeout, reached before libcurl's own timer of each call ended
      // it (under load the two are a poll interval apart): the same report either
      // way, one line per peer without an answer, then the summary and exit 124.
      timed_out_ = true;
      for (auto& inv : calls_)
        if (inv.state == Invocation::State::waiting || inv.state == Invocation::State::in_flight) {
          if (inv.state == Invocation::State::in_flight) {
            curl_multi_remove_handle(multi_, inv.easy);
            --running_;
            inv.seconds = seconds_since(inv.start_at);
            fail(inv, "no answer within the job's --timeout (on AWS it may still be running)");
          } else {
            fail(inv, "not answered before the job's --timeout (waiting to be invoked again)");
          }
        }
      break;
    }
    progress(false);

    // Wait for network activity, a signal, the server's output, a retry or the deadline.
    std::vector<curl_waitfd> extra;
    extra.push_back({sig_fd_, CURL_WAIT_POLLIN, 0});
    for (int fd : server_.fds()) extra.push_back({fd, CURL_WAIT_POLLIN, 0});
    auto until = std::min({next, deadline_, Clock::now() + (tty_ ? 200ms : 1000ms)});
    int ms = int(std::max<long long>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count()));
    curl_multi_poll(multi_, extra.data(), unsigned(extra.size()), ms, nullptr);
    if (extra[0].revents & CURL_WAIT_POLLIN) {
      unsigned char sigs[64];
      ssize_t n = ::read(sig_fd_, sigs, sizeof sigs);
      for (ssize_t i = 0; i < n; ++i) {
        if (sigs[i] == SIGCHLD)
          server_.check_alive();
        else
          abort_job(std::string("received ") + ::sigabbrev_np(sigs[i]) +
                        ", ending the job (on AWS the functions may still be running)",
                    128 + sigs[i]);
      }
    }
    server_.drain(opt_.verbose);
  }
  progress(true);
  if (!tty_ || progress_shown_) {
    if (tty_) write_all(STDERR_FILENO, "\n");
    progress_shown_ = false;
  }
  if (abort_code_) return *abort_code_;
  const std::string summary = std::to_string(done_) + " of " + std::to_string(calls_.size()) +
                              " functions succeeded in " + fmt_seconds(seconds_since(started_));
  if (failed_ == 0) {
    say(summary);
    return 0;
  }
  say(summary + ", " + std::to_string(failed_) + " failed; the first failure: " + *first_failure_);
  return timed_out_ ? kExitTimeout : kExitFailed;
}

// ---- set-up ----------------------------------------------------------------------------

std::string resolve_region(const LambdaOptions& o) {
  std::string r = o.region;
  if (r.empty())
    for (const char* v : {"AWS_REGION", "AWS_DEFAULT_REGION"})
      if (const char* e = std::getenv(v); e && *e) {
        r = e;
        break;
      }
  if (r.empty()) {
    if (!o.endpoint.empty()) return "us-east-1";  // emulators accept any region
    throw SetupError("no AWS region: give --region, or set AWS_REGION or AWS_DEFAULT_REGION");
  }
  static const std::regex shape("[a-z]{2}(-[a-z]+)+-[0-9]+");
  if (!std::regex_match(r, shape))
    throw SetupError("'" + r + "' is not an AWS region name (e.g. us-east-1, eu-central-1)");
  return r;
}

Credentials credentials() {
  auto get = [](const char* n) {
    const char* v = std::getenv(n);
    return std::string(v ? v : "");
  };
  Credentials c{get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN")};
  if (c.key.empty() || c.secret.empty())
    throw SetupError(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
        "AWS_SESSION_TOKEN for temporary credentials; e.g. eval \"$(aws configure "
        "export-credentials --format env)\"); emulators take any values");
  return c;
}

// The user's --payload: a JSON object whose fields go into every event.
json parse_payload(const std::string& text) {
  if (text.empty()) return json::object();
  json p = json::parse(text, nullptr, false);
  if (p.is_discarded() || !p.is_object())
    throw SetupError("--payload must be a JSON object, e.g. '{\"elements\": 1000}'; got: " + text);
  for (const char* k : kReserved)
    if (p.contains(k))
      throw SetupError(std::string("--payload may not set '") + k +
                       "': fmirun sets peer_id, num_peers, comm_name and fmi_config itself" +
                       (std::string(k) == "comm_name" ? " (use --name)" : ""));
  return p;
}

// GetFunction and GetFunctionConcurrency: warnings before the job starts, and the
// function's own timeout (the default --timeout). Endpoints without these calls (the
// emulator answers a plain 404) are skipped in silence.
std::optional<double> check_function(const Api& api, const LambdaOptions& o,
                                     const std::string& region) {
  std::optional<double> fn_timeout;
  Reply r = api.get("/2015-03-31/functions/" + o.function, 10000);
  const std::string type = r.error_type();
  // Only GetFunction's own permission may be missing where Invoke is allowed; an
  // endpoint without GetFunction answers 404 with no AWS error type.
  if (r.status == 403 && type == "AccessDeniedException") {
    say("note: cannot check the function's settings (GetFunction: " + r.message() + ")");
    return fn_timeout;
  }
  const bool fatal = r.code != CURLE_OK || r.status == 401 || r.status == 403 ||
                     (r.status == 404 && type == "ResourceNotFoundException");
  if (auto p = job_wide_problem(r, o.function, region, api.endpoint()); p && fatal)
    throw SetupError(*p);
  if (r.code != CURLE_OK || r.status != 200) return fn_timeout;
  json j = json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("Configuration") && j["Configuration"].is_object()) {
    const json& c = j["Configuration"];
    if (c.contains("Timeout") && c["Timeout"].is_number()) {
      fn_timeout = c["Timeout"].get<double>();
      if (o.timeout_s > *fn_timeout)
        say("warning: the function's timeout (" + std::to_string(int(*fn_timeout)) +
            " s) is shorter than the job's --timeout (" + fmt_seconds(o.timeout_s) +
            "): Lambda ends a function that runs longer, and its peers then fail too");
    }
    if (c.contains("State") && c["State"].is_string() && c["State"] != "Active")
      say("warning: the function's state is " + c["State"].get<std::string>() +
          " (invocations may fail or wait until it is Active)");
  }
  Reply cr = api.get("/2019-09-30/functions/" + o.function + "/concurrency", 10000);
  if (cr.code == CURLE_OK && cr.status == 200) {
    json cj = json::parse(cr.body, nullptr, false);
    if (cj.is_object() && cj.contains("ReservedConcurrentExecutions") &&
        cj["ReservedConcurrentExecutions"].is_number_integer()) {
      const long reserved = cj["ReservedConcurrentExecutions"].get<long>();
      if (reserved < o.n)
        say("warning: the function's reserved concurrency (" + std::to_string(reserved) +
            ") is below the job's " + std::to_string(o.n) +
            " functions: the others are throttled while the running ones wait for them, "
            "until their FMI timeouts");
    }
  }
  return fn_timeout;
}

// Room for connections: one per function in flight (a RequestResponse call holds
// its connection for as long as the function runs).
void raise_fd_limit() {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) == 0 && l.rlim_cur < l.rlim_max) {
    l.rlim_cur = l.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &l);
  }
}

}  // namespace

int run_lambda(const LambdaOptions& opt) {
  CurlGlobal curl_global;
  const auto started = Clock::now();
  Fd sig = install_signal_pipe();
  raise_fd_limit();

  if (opt.function.empty()) throw SetupError("--lambda needs a function name");
  json payload = parse_payload(opt.payload);
  const std::string region = resolve_region(opt);
  Credentials cred = credentials();
  std::string endpoint =
      opt.endpoint.empty() ? "https://lambda." + region + ".amazonaws.com" : opt.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  if (!opt.output.empty()) {
    std::error_code ec;
    fs::create_directories(opt.output, ec);
    if (ec)
      throw SetupError("cannot create --output directory " + opt.output + ": " + ec.message());
  }

  // The configuration: validated as the functions will read it, then sent without
  // its secrets.
  std::optional<json> fmi_config;
  DirectEndpoint direct;
  std::string secret;
  if (!opt.config.empty()) {
    const std::string path = fs::absolute(opt.config).lexically_normal().string();
    json cfg = load_json(path);
    direct = direct_endpoint(cfg, path);
    if (auto d = cfg.find("backends"); d != cfg.end() && d->is_object())
      if (auto s = d->find("Direct"); s != d->end() && s->is_object())
        if (auto v = s->find("secret"); v != s->end() && v->is_string())
          secret = v->get<std::string>();
    auto removed = strip_secrets(cfg);
    if (!removed.empty()) {
      std::string list;
      for (const auto& r : removed) list += (list.empty() ? "" : ", ") + r;
      say("not sent in the events: " + list +
          " (the functions read them from their environment: FMI_SECRET, FMI_REDIS_PASSWORD)");
    }
    fmi_config = std::move(cfg);
  }

  Api api(endpoint, region, cred);
  std::optional<double> fn_timeout = check_function(api, opt, region);
  double timeout = opt.timeout_s > 0 ? opt.timeout_s : fn_timeout ? *fn_timeout + 60 : 900;

  LocalRendezvous server;
  if (direct.enabled && is_local_host(direct.host)) {
    const std::string bind = direct.host == "localhost" ? "127.0.0.1" : direct.host;
    const std::string where = bind + ":" + std::to_string(direct.port);
    if (opt.endpoint.empty())
      say("warning: the configuration's rendezvous server is " + where +
          ": functions on AWS cannot reach it; name a public server in backends.Direct.host");
    if (port_in_use(bind, direct.port)) {
      if (std::string problem = rendezvous_greeting_problem(bind, direct.port); !problem.empty())
        throw SetupError("something is listening on " + where +
                         " (the Direct channel's rendezvous port) but " + problem);
      say("using the rendezvous server already listening on " + where);
    } else {
      server.start(find_rendezvous(opt.rendezvous), bind, direct.port, secret);
      say("started the rendezvous server on " + where);
    }
  }

  const std::string comm_name = opt.name.empty() ? fresh_comm_name() : opt.name;
  std::vector<std::string> events;
  for (int i = 0; i < opt.n; ++i) {
    json e = payload;
    e["peer_id"] = i;
    e["num_peers"] = opt.n;
    e["comm_name"] = comm_name;
    if (fmi_config) e["fmi_config"] = *fmi_config;
    events.push_back(e.dump());
  }
  say("invoking " + opt.function + " " + std::to_string(opt.n) + " times at " + endpoint +
      " (communicator " + comm_name + ")");

  const auto deadline =
      started + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  int code;
  {
    Job job(opt, api, region, sig.get(), server);
    code = job.run(events, deadline);
  }
  server.stop();
  return code;
}

}  // namespace fmirun
