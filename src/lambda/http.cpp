// HttpClient over libcurl (http.h).
#include "lambda/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "fmi/errors.h"

namespace FMI::Lambda {
namespace {

// curl_global_init is not guaranteed thread-safe on every libcurl build.
void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      FMI_THROW(ChannelError, "Lambda runtime: curl_global_init failed");
  });
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

std::string trim(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), space));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), space).base(), s.end());
  return s;
}

// One header line ("Name: value\r\n"); the status line and the blank line have no
// colon and are skipped. A new status line (a redirect or 100 Continue) starts over.
std::size_t on_header(char* data, std::size_t size, std::size_t n, void* out) {
  auto& headers = *static_cast<std::map<std::string, std::string>*>(out);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) headers.clear();
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    headers[trim(name)] = trim(line.substr(colon + 1));
  }
  return size * n;
}

struct HeaderList {
  curl_slist* list = nullptr;
  ~HeaderList() { curl_slist_free_all(list); }
  void add(const std::string& h) {
    curl_slist* l = curl_slist_append(list, h.c_str());
    if (!l) FMI_THROW(ChannelError, "Lambda runtime: out of memory for a header");
    list = l;
  }
};

}  // namespace

HttpClient::HttpClient(std::string host_port) : base_("http://" + std::move(host_port)) {
  global_init();
  curl_ = curl_easy_init();
  if (!curl_) FMI_THROW(ChannelError, "Lambda runtime: curl_easy_init failed");
}

HttpClient::~HttpClient() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

HttpClient::Response HttpClient::get(const std::string& path, std::chrono::milliseconds timeout) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  return perform("GET", path, timeout);
}

HttpClient::Response HttpClient::post(const std::string& path, const std::string& body,
                                      const std::vector<std::string>& headers,
                                      std::chrono::milliseconds timeout) {
  CURL* c = static_cast<CURL*>(curl_);
  curl_easy_reset(c);
  HeaderList list;
  // No "Expect: 100-continue" for large bodies: a round trip for nothing on loopback.
  list.add("Expect:");
  list.add("Content-Type: application/json");
  for (const auto& h : headers) list.add(h);
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list.list);
  return perform("POST", path, timeout);
}

HttpClient::Response HttpClient::perform(const char* method, const std::string& path,
                                         std::chrono::milliseconds timeout) {
  CURL* c = static_cast<CURL*>(curl_);
  Response r;
  const std::string url = base_ + path;
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  // The Runtime API is on the function's own host: an http_proxy of the environment
  // (the user's, or a test machine's) must not be asked for it.
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK)
    FMI_THROW(ChannelError, "Lambda runtime: ", method, " ", url,
              " failed: ", *error ? error : curl_easy_strerror(rc),
              rc == CURLE_OPERATION_TIMEDOUT ? " (limit " + format_duration(timeout) + ")" : "");
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

}  // namespace FMI::Lambda
