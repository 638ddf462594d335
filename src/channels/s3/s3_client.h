// A minimal S3 REST client over libcurl: just the requests the S3 channel needs
// (HEAD/PUT bucket, PUT/GET/DELETE object, DeleteObjects, ListObjectsV2).
//
// Requests are signed by libcurl itself (CURLOPT_AWS_SIGV4), so no AWS SDK is
// needed. Curl easy handles are reused from request to request, which keeps their
// HTTP connections alive (curl_easy_reset keeps the connection cache). The client
// is safe to share between threads: each request takes an idle handle from a small
// pool (or a new one) for its duration, so requests of several threads (a
// communicator's non-blocking operations, one of them polling) run side by side;
// the pool grows to the number of requests in flight at once.
//
// Works against AWS S3 (virtual-hosted https://<bucket>.s3.<region>.amazonaws.com)
// and S3-compatible servers at a custom endpoint (path style: <endpoint>/<bucket>/<key>),
// e.g. MinIO, Ceph RGW, moto.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fmi/types.h"

namespace FMI::Comm::s3 {

/// AWS credentials. Only ever taken from the environment (AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN as set by AWS Lambda), never from files.
struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // empty unless temporary credentials

  /// Throws ConfigError naming the missing variable(s).
  static Credentials from_env();
};

/// Throws UsageError if `key` has a "." or ".." segment (between slashes or at
/// either end): URL normalisation would make it address another key or bucket.
/// `what` names it in the message ("object key", "communicator name").
void check_key(const std::string& key, const std::string& what);

struct ClientOptions {
  std::string bucket;
  std::string region;
  std::string endpoint;  // empty: AWS (https, virtual-hosted); else http(s)://host[:port]
  Credentials credentials;
};

/// Result of one GET of an object.
struct GetResult {
  bool found = false;               // false: the object does not exist (yet)
  std::size_t size = 0;             // the object's size (also when it did not fit `out`)
  bool size_matches = false;        // size == out.size() and `out` holds the object
  std::optional<unsigned> readers;  // x-amz-meta-fmi-readers, when the creator set it
};

class Client {
 public:
  /// Validates the options (ConfigError); does not talk to the server yet.
  explicit Client(ClientOptions opts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Succeeds when the bucket exists and is accessible. Throws ChannelError
  /// "bucket X does not exist at endpoint Y", access denied, wrong region, or
  /// unreachable endpoint (naming the address), TimeoutError after `deadline`.
  void head_bucket(Utils::Deadline deadline);
  /// Creates the bucket (tests and tools; FMI itself never creates buckets).
  /// An existing bucket owned by the caller is not an error.
  void create_bucket(Utils::Deadline deadline);

  using Headers = std::vector<std::pair<std::string, std::string>>;
  /// Stores `data` under `key` (one PUT; S3 allows up to 5 GiB per PUT).
  void put_object(const std::string& key, ConstBytes data, const Headers& extra,
                  Utils::Deadline deadline);
  /// Reads `key` into `out` when its size is exactly out.size(). A missing object
  /// is reported as found=false (not an error); a size mismatch as size_matches=false
  /// (the transfer is aborted at the headers, nothing large is downloaded).
  GetResult get_object(const std::string& key, Bytes out, Utils::Deadline deadline);
  /// Deletes `key`; deleting a missing key is not an error (S3 semantics).
  void delete_object(const std::string& key, Utils::Deadline deadline);
  /// Deletes many keys with DeleteObjects (1000 per request).
  void delete_objects(const std::vector<std::string>& keys, Utils::Deadline deadline);
  /// Keys under `prefix` via ListObjectsV2, following continuation tokens.
  std::vector<std::string> list_objects(const std::string& prefix, Utils::Deadline deadline,
                                        unsigned page_size = 1000);

  /// HTTP requests sent so far, retries included (each is billed by S3).
  std::uint64_t requests() const { return requests_.load(); }
  /// Requests that failed transiently (connection reset, HTTP 5xx, throttling) and
  /// were sent again (also in requests()).
  std::uint64_t retries() const { return retries_.load(); }
  /// ListObjectsV2 pages asked for so far (also in requests()): collectives never
  /// list (tests count them).
  std::uint64_t lists() const { return lists_.load(); }
  /// TCP (or TLS) connections opened so far: stays far below requests() when the
  /// server keeps connections alive (AWS, MinIO; moto closes every connection).
  std::uint64_t connections() const { return connections_.load(); }
  /// "http://127.0.0.1:9000 (bucket b)" or "https://b.s3.eu-central-1.amazonaws.com".
  std::string where() const;
  const std::string& bucket() const { return opts_.bucket; }

  struct Request;
  struct Response;

 private:
  Response perform(const Request& rq, Utils::Deadline deadline);
  Response perform_once(void* handle, const Request& rq, Utils::Deadline deadline, int& curl_code,
                        std::string& curl_error);
  class Handle;
  [[noreturn]] void throw_s3_error(const Request& rq, const Response& r) const;
  std::string url(const std::string& key, const std::string& query) const;

  ClientOptions opts_;
  bool path_style_ = false;
  std::string base_;         // scheme://host[:port][/bucket]
  std::string sigv4_;        // "aws:amz:<region>:s3"
  std::mutex mu_;            // guards idle_
  std::vector<void*> idle_;  // CURL* no request is using; void* keeps curl.h out of here
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> connections_{0};
  std::atomic<std::uint64_t> lists_{0};
  std::atomic<std::uint64_t> retries_{0};
};

/// Percent-encodes for an S3 path ('/' kept) or query value ('/' encoded), as
/// SigV4's canonical request requires (curl signs the URL as given).
std::string uri_encode(const std::string& s, bool keep_slash);

}  // namespace FMI::Comm::s3
