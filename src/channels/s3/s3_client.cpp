#include "channels/s3/s3_client.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>

#include "base/config_reader.h"
#include "fmi/errors.h"

namespace FMI::Comm::s3 {

using Utils::Clock;
using Utils::Deadline;
using namespace std::chrono_literals;

namespace {

// curl_global_init is not guaranteed thread-safe on every libcurl build, and
// clients are created from several threads (one Communicator per thread in tests).
void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      FMI_THROW(ChannelError, "S3: curl_global_init failed");
  });
}

std::string hex(const unsigned char* p, unsigned n) {
  static const char* digits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (unsigned i = 0; i < n; ++i) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}

std::string digest(const EVP_MD* md, const void* data, std::size_t n) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(data, n, out, &len, md, nullptr) != 1)
    FMI_THROW(ChannelError, "S3: OpenSSL digest failed");
  return std::string(reinterpret_cast<char*>(out), len);
}

// SigV4 over plain HTTP needs the payload's real hash (S3-compatible servers
// reject UNSIGNED-PAYLOAD without TLS, and some always do).
std::string sha256_hex(const void* data, std::size_t n) {
  const std::string d = digest(EVP_sha256(), data, n);
  return hex(reinterpret_cast<const unsigned char*>(d.data()), unsigned(d.size()));
}

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()), int(in.size()));
  out.resize(std::size_t(n));
  return out;
}

const std::string kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string xml_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string xml_unescape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      o += s[i];
      continue;
    }
    static const std::pair<const char*, char> ents[] = {
        {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    bool done = false;
    for (auto [e, c] : ents) {
      if (s.compare(i, std::strlen(e), e) == 0) {
        o += c;
        i += std::strlen(e) - 1;
        done = true;
        break;
      }
    }
    if (!done && s.compare(i, 2, "&#") == 0) {
      const auto semi = s.find(';', i);
      if (semi != std::string::npos) {
        const bool hx = s[i + 2] == 'x';
        const long v = std::strtol(s.c_str() + i + (hx ? 3 : 2), nullptr, hx ? 16 : 10);
        if (v > 0 && v < 128) {
          o += char(v);
          i = semi;
          done = true;
        }
      }
    }
    if (!done) o += '&';
  }
  return o;
}

/// Raw (still escaped) text of the first <tag>...</tag> at or after *from.
std::optional<std::string> xml_raw(const std::string& body, const std::string& tag,
                                   std::size_t* from = nullptr) {
  const std::string open = "<" + tag + ">", close = "</" + tag + ">";
  const std::size_t start = from ? *from : 0;
  const auto a = body.find(open, start);
  if (a == std::string::npos) return std::nullopt;
  const auto b = body.find(close, a + open.size());
  if (b == std::string::npos) return std::nullopt;
  if (from) *from = b + close.size();
  return body.substr(a + open.size(), b - a - open.size());
}

/// Text of the first <tag>...</tag> at or after *from, unescaped.
std::optional<std::string> xml_field(const std::string& body, const std::string& tag,
                                     std::size_t* from = nullptr) {
  auto raw = xml_raw(body, tag, from);
  if (!raw) return std::nullopt;
  return xml_unescape(*raw);
}

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

long long ms_left(Deadline d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d - Clock::now()).count();
}

// With CURLOPT_NOSIGNAL (needed when several threads use curl) libcurl does not
// ignore SIGPIPE itself, and a TLS write on a connection the server has closed
// would kill the process. Block SIGPIPE in this thread during the call and
// discard one raised meanwhile, without touching the process-wide disposition.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
};

struct SList {
  curl_slist* p = nullptr;
  ~SList() { curl_slist_free_all(p); }
  void add(const std::string& h) {
    curl_slist* n = curl_slist_append(p, h.c_str());
    if (!n) throw std::bad_alloc();
    p = n;
  }
};

}  // namespace

std::string uri_encode(const std::string& s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string o;
  o.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      o += char(c);
    } else {
      o += '%';
      o += digits[c >> 4];
      o += digits[c & 15];
    }
  }
  return o;
}

Credentials Credentials::from_env() {
  auto get = [](const char* n) {
    const char* v = std::getenv(n);
    return std::string(v ? v : "");
  };
  Credentials c{get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN")};
  const bool no_id = c.access_key.empty(), no_secret = c.secret_key.empty();
  if (no_id || no_secret)
    FMI_THROW(ConfigError, "S3 channel: no AWS credentials: environment variable",
              no_id && no_secret ? "s AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are"
              : no_id            ? " AWS_ACCESS_KEY_ID is"
                                 : " AWS_SECRET_ACCESS_KEY is",
              " not set (credentials are read only from AWS_ACCESS_KEY_ID, "
              "AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN)");
  return c;
}

struct Client::Request {
  const char* method = "GET";
  std::string key;    // object key; empty: the bucket itself
  std::string query;  // already canonical: sorted, encoded (curl signs it verbatim)
  ConstBytes body;
  bool has_body = false;
  Headers headers;
  Bytes sink;  // a 2xx GET body goes here; must fit exactly
  bool use_sink = false;
  std::string purpose;  // for messages: "get of object", "bucket check", ...
  std::string subject;  // for messages: the key, prefix or first key of a batch

  std::string what() const {
    return method + (" (" + purpose) + (subject.empty() ? "" : " '" + subject + "'") + ")";
  }
  bool retry_connect = true;  // false at the bucket check: a wrong endpoint fails fast
};

struct Client::Response {
  long status = 0;
  std::string body;         // error bodies and non-sink bodies
  std::size_t written = 0;  // bytes written into the sink
  std::optional<std::size_t> content_length;
  std::optional<unsigned> readers;
  std::string bucket_region;  // x-amz-bucket-region (wrong-region hints)
  bool size_mismatch = false;
  const Request* rq = nullptr;
};

namespace {

bool is_2xx(long s) { return s >= 200 && s < 300; }

size_t on_header(char* buf, size_t size, size_t n, void* ud) {
  auto* r = static_cast<Client::Response*>(ud);
  const size_t len = size * n;
  std::string line(buf, len);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after "100 Continue" or a retry on a reused connection).
    const auto sp = line.find(' ');
    r->status = sp == std::string::npos ? 0 : std::strtol(line.c_str() + sp + 1, nullptr, 10);
    r->content_length.reset();
    r->readers.reset();
    r->body.clear();
    r->written = 0;
    return len;
  }
  if (line == "\r\n" || line == "\n") {
    // End of the headers: abort rather than download an object that cannot be
    // used (checked here, not at Content-Length, to have read every header).
    if (r->rq->use_sink && is_2xx(r->status) && r->content_length &&
        *r->content_length != r->rq->sink.size()) {
      r->size_mismatch = true;
      return 0;
    }
    return len;
  }
  const auto colon = line.find(':');
  if (colon == std::string::npos) return len;
  const std::string name = lower(line.substr(0, colon));
  const std::string value = trim(line.substr(colon + 1));
  if (name == "content-length") {
    r->content_length = std::strtoull(value.c_str(), nullptr, 10);
  } else if (name == "x-amz-meta-fmi-readers") {
    r->readers = unsigned(std::strtoul(value.c_str(), nullptr, 10));
  } else if (name == "x-amz-bucket-region") {
    r->bucket_region = value;
  }
  return len;
}

size_t on_body(char* buf, size_t size, size_t n, void* ud) {
  auto* r = static_cast<Client::Response*>(ud);
  const size_t len = size * n;
  if (r->rq->use_sink && is_2xx(r->status)) {
    if (r->written + len > r->rq->sink.size()) {  // no Content-Length, or it lied
      r->size_mismatch = true;
      return 0;
    }
    std::memcpy(r->rq->sink.data() + r->written, buf, len);
    r->written += len;
    return len;
  }
  if (r->rq->use_sink && r->body.size() > (1u << 16)) return len;  // keep error bodies small
  r->body.append(buf, len);
  return len;
}

bool retryable_curl(CURLcode c, bool retry_connect) {
  switch (c) {
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: return true;
    case CURLE_COULDNT_CONNECT: return retry_connect;
    default: return false;
  }
}

}  // namespace

Client::Client(ClientOptions opts) : opts_(std::move(opts)) {
  // The parser checked these for a configuration file (descriptor.cpp); a client
  // made in code gets the same ConfigError, without a file to name.
  if (opts_.bucket.empty()) config::fail("", "backends.S3.bucket_name", "is empty");
  if (opts_.region.empty()) config::fail("", "backends.S3.s3_region", "is empty");
  sigv4_ = "aws:amz:" + opts_.region + ":s3";
  if (opts_.endpoint.empty()) {
    // Virtual-hosted style is what AWS recommends; bucket names with dots break
    // the TLS wildcard certificate, so those use path style on the same host.
    if (opts_.bucket.find('.') == std::string::npos) {
      base_ = "https://" + opts_.bucket + ".s3." + opts_.region + ".amazonaws.com";
    } else {
      base_ = "https://s3." + opts_.region + ".amazonaws.com/" + opts_.bucket;
      path_style_ = true;
    }
  } else {
    std::string ep = opts_.endpoint;
    while (!ep.empty() && ep.back() == '/') ep.pop_back();
    if (ep.rfind("http://", 0) != 0 && ep.rfind("https://", 0) != 0)
      config::fail("", "backends.S3.endpoint",
                   "'" + opts_.endpoint + "' must start with http:// or https://");
    base_ = ep + "/" + uri_encode(opts_.bucket, false);
    path_style_ = true;
  }
  global_init();
}

Client::~Client() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

// A curl handle of the pool for the duration of one request (and its retries).
class Client::Handle {
 public:
  explicit Handle(Client& c) : c_(c) {
    {
      std::lock_guard lk(c_.mu_);
      if (!c_.idle_.empty()) {
        h_ = c_.idle_.back();
        c_.idle_.pop_back();
        return;
      }
    }
    h_ = curl_easy_init();
    if (!h_) FMI_THROW(ChannelError, "S3: curl_easy_init failed");
  }
  ~Handle() {
    std::lock_guard lk(c_.mu_);
    c_.idle_.push_back(h_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  void* get() const { return h_; }

 private:
  Client& c_;
  void* h_ = nullptr;
};

std::string Client::where() const {
  if (opts_.endpoint.empty()) return base_ + " (AWS region " + opts_.region + ")";
  return opts_.endpoint + " (bucket " + opts_.bucket + ")";
}

void check_key(const std::string& key, const std::string& what) {
  std::size_t start = 0;
  for (;;) {
    std::size_t end = key.find('/', start);
    std::string_view seg(key.data() + start, (end == std::string::npos ? key.size() : end) - start);
    if (seg == "." || seg == "..")
      FMI_THROW(UsageError, "S3: ", what, " '", key, "' has a '", seg,
                "' segment: HTTP clients collapse it, so it would address another key or "
                "another bucket; use a name without '.' and '..' between slashes");
    if (end == std::string::npos) return;
    start = end + 1;
  }
}

std::string Client::url(const std::string& key, const std::string& query) const {
  std::string u = base_;
  // curl removes dot segments from the path (RFC 3986), and uri_encode keeps '.' and
  // '/': "a/../../other/k" would reach bucket "other" with path-style URLs.
  if (!key.empty()) check_key(key, "object key");
  if (!key.empty())
    u += "/" + uri_encode(key, true);
  else if (!path_style_)
    u += "/";
  if (!query.empty()) u += "?" + query;
  return u;
}

Client::Response Client::perform_once(void* handle, const Request& rq, Deadline deadline,
                                      int& curl_code, std::string& curl_error) {
  CURL* h = static_cast<CURL*>(handle);
  Response r;
  r.rq = &rq;
  // Reset keeps live connections; every option is set again below.
  curl_easy_reset(h);
  char errbuf[CURL_ERROR_SIZE] = {0};
  const std::string u = url(rq.key, rq.query);
  const long long left = std::max<long long>(1, ms_left(deadline));

  SList hdrs;
  // The payload hash is part of the signature (curl signs every header we add).
  hdrs.add("x-amz-content-sha256: " + (rq.has_body && !rq.body.empty()
                                           ? sha256_hex(rq.body.data(), rq.body.size())
                                           : kEmptySha256));
  if (!opts_.credentials.session_token.empty())
    hdrs.add("x-amz-security-token: " + opts_.credentials.session_token);
  for (const auto& [k, v] : rq.headers) hdrs.add(k + ": " + v);
  if (rq.has_body) hdrs.add("Content-Type: application/octet-stream");

  curl_easy_setopt(h, CURLOPT_URL, u.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, opts_.credentials.access_key.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, opts_.credentials.secret_key.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs.p);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, long(left));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, long(std::min<long long>(left, 10000)));
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);

  const std::string m = rq.method;
  if (m == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (rq.has_body) {
    // A POST body sent with the method replaced: the payload goes straight from
    // the caller's buffer, and unlike an upload (CURLOPT_UPLOAD) curl does not
    // wait for "100 Continue" before sending small bodies, which costs a round
    // trip (an empty "Expect:" header would be signed by curl 7.88 and break
    // the signature).
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq.method);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(rq.body.size()));
    curl_easy_setopt(h, CURLOPT_POSTFIELDS,
                     rq.body.empty() ? "" : reinterpret_cast<const char*>(rq.body.data()));
  } else if (m != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq.method);
  }

  ++requests_;
  CURLcode rc;
  {
    SigpipeGuard no_sigpipe;
    rc = curl_easy_perform(h);
  }
  long connects = 0;
  if (curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
    connections_ += std::uint64_t(connects);
  curl_code = int(rc);
  if (rc != CURLE_OK && !r.size_mismatch)
    curl_error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
  if (r.size_mismatch) curl_code = 0;
  // Drop the pointers to this call's locals (error buffer, header list, response);
  // the connection stays in the handle's cache.
  curl_easy_reset(h);
  return r;
}

Client::Response Client::perform(const Request& rq, Deadline deadline) {
  Handle handle(*this);
  auto backoff = 50ms;
  std::string last;  // the last retryable failure, for the timeout message
  for (int attempt = 1;; ++attempt) {
    if (Clock::now() >= deadline)
      FMI_THROW(TimeoutError, "S3 ", rq.what(), " at ", where(), ": deadline passed",
                last.empty() ? "" : " after retries; last failure: ", last);
    int code = 0;
    std::string err;
    Response r = perform_once(handle.get(), rq, deadline, code, err);
    const auto rc = CURLcode(code);
    bool retry = false;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      FMI_THROW(TimeoutError, "S3 ", rq.what(), " at ", where(), " timed out: ", err);
    } else if (rc != CURLE_OK) {
      if (!retryable_curl(rc, rq.retry_connect) || attempt >= 5)
        FMI_THROW(ChannelError, "S3 ", rq.what(), " to ", url(rq.key, rq.query), " failed: ", err,
                  rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST
                      ? " (is the S3 endpoint address right and the server running?)"
                      : "");
      retry = true;
      last = err;
    } else if (r.status >= 500 || r.status == 429 ||
               xml_field(r.body, "Code").value_or("") == "SlowDown") {
      // Throttling and server errors are transient on S3; back off and retry.
      retry = true;
      last = "HTTP " + std::to_string(r.status) + " " + xml_field(r.body, "Code").value_or("");
    }
    if (!retry) return r;
    ++retries_;
    const auto left = deadline - Clock::now();
    if (left <= 0ns) continue;  // reported at the top of the loop
    std::this_thread::sleep_for(std::min<Clock::duration>(backoff, left));
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2000ms);
  }
}

void Client::throw_s3_error(const Request& rq, const Response& r) const {
  const std::string code = xml_field(r.body, "Code").value_or("");
  const std::string msg = xml_field(r.body, "Message").value_or("");
  FMI_THROW(ChannelError, "S3 ", rq.what(), " at ", where(), " failed: HTTP ", r.status,
            code.empty() ? "" : " ", code, msg.empty() ? "" : ": ", msg);
}

void Client::head_bucket(Deadline deadline) {
  Request rq;
  rq.method = "HEAD";
  rq.purpose = "bucket check";
  rq.retry_connect = false;
  const Response r = perform(rq, deadline);
  if (is_2xx(r.status)) return;
  if (r.status == 404)
    FMI_THROW(ChannelError, "S3: bucket ", opts_.bucket, " does not exist at endpoint ",
              opts_.endpoint.empty() ? base_ : opts_.endpoint,
              " (create it first; FMI never creates buckets)");
  if (r.status == 403)
    FMI_THROW(ChannelError, "S3: access to bucket ", opts_.bucket, " at ", where(),
              " denied (HTTP 403): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / "
              "AWS_SESSION_TOKEN and the bucket policy");
  if (r.status == 301 || r.status == 400)
    FMI_THROW(ChannelError, "S3: bucket ", opts_.bucket, " is not reachable in region ",
              opts_.region, " at ", where(), " (HTTP ", r.status, ")",
              r.bucket_region.empty() ? "" : "; the bucket is in region ", r.bucket_region);
  throw_s3_error(rq, r);
}

void Client::create_bucket(Deadline deadline) {
  Request rq;
  rq.method = "PUT";
  rq.purpose = "create bucket";
  std::string body;
  if (opts_.region != "us-east-1")
    body = "<CreateBucketConfiguration><LocationConstraint>" + opts_.region +
           "</LocationConstraint></CreateBucketConfiguration>";
  rq.body = std::as_bytes(std::span(body.data(), body.size()));
  rq.has_body = true;
  const Response r = perform(rq, deadline);
  if (is_2xx(r.status)) return;
  if (xml_field(r.body, "Code").value_or("") == "BucketAlreadyOwnedByYou") return;
  throw_s3_error(rq, r);
}

void Client::put_object(const std::string& key, ConstBytes data, const Headers& extra,
                        Deadline deadline) {
  Request rq;
  rq.method = "PUT";
  rq.purpose = "put of object";
  rq.key = key;
  rq.subject = key;
  rq.body = data;
  rq.has_body = true;
  rq.headers = extra;
  const Response r = perform(rq, deadline);
  if (!is_2xx(r.status)) throw_s3_error(rq, r);
}

GetResult Client::get_object(const std::string& key, Bytes out, Deadline deadline) {
  Request rq;
  rq.method = "GET";
  rq.purpose = "get of object";
  rq.key = key;
  rq.subject = key;
  rq.sink = out;
  rq.use_sink = true;
  const Response r = perform(rq, deadline);
  GetResult g;
  if (r.status == 404 && xml_field(r.body, "Code").value_or("NoSuchKey") == "NoSuchKey") return g;
  if (!is_2xx(r.status)) throw_s3_error(rq, r);
  g.found = true;
  g.readers = r.readers;
  if (r.size_mismatch) {
    g.size = r.content_length.value_or(r.written);
    // Without Content-Length the body overflowed `out`: report "more than".
    if (!r.content_length) g.size = out.size() + 1;
    return g;
  }
  g.size = r.written;
  g.size_matches = r.written == out.size();
  return g;
}

void Client::delete_object(const std::string& key, Deadline deadline) {
  Request rq;
  rq.method = "DELETE";
  rq.purpose = "delete of object";
  rq.key = key;
  rq.subject = key;
  const Response r = perform(rq, deadline);
  if (!is_2xx(r.status) && r.status != 404) throw_s3_error(rq, r);
}

void Client::delete_objects(const std::vector<std::string>& keys, Deadline deadline) {
  for (std::size_t at = 0; at < keys.size(); at += 1000) {
    const std::size_t end = std::min(keys.size(), at + 1000);
    if (end - at == 1) {  // one DELETE is cheaper to build and equally one request
      delete_object(keys[at], deadline);
      continue;
    }
    std::string body = "<Delete><Quiet>true</Quiet>";
    for (std::size_t i = at; i < end; ++i)
      body += "<Object><Key>" + xml_escape(keys[i]) + "</Key></Object>";
    body += "</Delete>";
    Request rq;
    rq.method = "POST";
    rq.purpose = "DeleteObjects of " + std::to_string(end - at) + " keys, the first";
    rq.subject = keys[at];
    rq.query = "delete=";
    rq.body = std::as_bytes(std::span(body.data(), body.size()));
    rq.has_body = true;
    // S3 requires an integrity header on DeleteObjects.
    rq.headers.emplace_back("Content-MD5", base64(digest(EVP_md5(), body.data(), body.size())));
    const Response r = perform(rq, deadline);
    if (!is_2xx(r.status)) throw_s3_error(rq, r);
    if (auto e = xml_raw(r.body, "Error")) {
      FMI_THROW(ChannelError, "S3 DeleteObjects at ", where(), " could not delete '",
                xml_field(*e, "Key").value_or("?"), "': ", xml_field(*e, "Code").value_or(""), ": ",
                xml_field(*e, "Message").value_or(""));
    }
  }
}

std::vector<std::string> Client::list_objects(const std::string& prefix, Deadline deadline,
                                              unsigned page_size) {
  std::vector<std::string> keys;
  std::string token;
  for (;;) {
    Request rq;
    rq.method = "GET";
    rq.purpose = "list of prefix";
    rq.subject = prefix;
    // Parameters in the sorted order SigV4's canonical query string requires.
    if (!token.empty()) rq.query += "continuation-token=" + uri_encode(token, false) + "&";
    rq.query += "list-type=2&max-keys=" + std::to_string(page_size) +
                "&prefix=" + uri_encode(prefix, false);
    ++lists_;
    const Response r = perform(rq, deadline);
    if (!is_2xx(r.status)) throw_s3_error(rq, r);
    std::size_t pos = 0;
    while (auto c = xml_raw(r.body, "Contents", &pos))
      if (auto k = xml_field(*c, "Key")) keys.push_back(*k);
    const bool truncated = xml_field(r.body, "IsTruncated").value_or("false") == "true";
    if (!truncated) break;
    token = xml_field(r.body, "NextContinuationToken").value_or("");
    if (token.empty())
      FMI_THROW(ChannelError, "S3 list of prefix '", prefix, "' at ", where(),
                ": truncated result without NextContinuationToken");
  }
  return keys;
}

}  // namespace FMI::Comm::s3
