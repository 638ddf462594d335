// A plain-HTTP client of one host:port (the Lambda Runtime API on the function's
// loopback), over one libcurl easy handle so that the connection is kept between
// requests. Only what the runtime loop needs: GET and POST, the status, the
// response headers and body.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace FMI::Lambda {

class HttpClient {
 public:
  struct Response {
    long status = 0;
    /// Header names in lower case (HTTP names are case-insensitive); values trimmed.
    std::map<std::string, std::string> headers;
    std::string body;
  };

  /// `host_port` as in $AWS_LAMBDA_RUNTIME_API ("127.0.0.1:9001").
  explicit HttpClient(std::string host_port);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// `timeout` zero: no limit (the next-invocation long poll). ChannelError when the
  /// server cannot be reached or the transfer fails; any status is returned.
  Response get(const std::string& path, std::chrono::milliseconds timeout);
  Response post(const std::string& path, const std::string& body,
                const std::vector<std::string>& headers, std::chrono::milliseconds timeout);

 private:
  Response perform(const char* method, const std::string& path, std::chrono::milliseconds timeout);

  std::string base_;
  void* curl_;  // CURL*, kept out of this header
};

}  // namespace FMI::Lambda
