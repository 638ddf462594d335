// The Lambda Runtime API loop (include/fmi/lambda.h): serve() and error_type().
//
// The API (version 2018-06-01, paths under http://$AWS_LAMBDA_RUNTIME_API):
//   GET  /runtime/invocation/next            -> 200, the event; headers name the invocation
//   POST /runtime/invocation/{id}/response   -> 202
//   POST /runtime/invocation/{id}/error      -> 202 (body {"errorType", "errorMessage"})
//   POST /runtime/init/error                 -> 202, before the first next only
#include <cxxabi.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <typeinfo>

#include "fmi/errors.h"
#include "fmi/lambda.h"
#include "lambda/http.h"

namespace FMI::Lambda {
namespace {

using namespace std::chrono_literals;

const std::string kApi = "/2018-06-01/runtime";
// A post to the local Runtime API answers at once; 30 s means it is broken.
constexpr auto kPostLimit = 30s;

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

std::string message_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "a thrown value that is not a std::exception";
  }
}

// The error document of the Runtime API, and its error-type header.
void post_error(HttpClient& http, const std::string& path, std::exception_ptr e) {
  const std::string type = error_type(e);
  // dump() with replacement: a message with invalid UTF-8 (bytes of a peer's reply)
  // must still make a valid document rather than throw here.
  const std::string body =
      nlohmann::json{{"errorType", type}, {"errorMessage", message_of(e)}}.dump(
          -1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto r = http.post(path, body, {"Lambda-Runtime-Function-Error-Type: " + type}, kPostLimit);
  if (r.status / 100 != 2)
    FMI_THROW(ChannelError, "Lambda runtime: POST ", path, " answered ", r.status, ": ", r.body);
}

std::string header(const HttpClient::Response& r, const char* name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

Invocation next_invocation(HttpClient& http) {
  // No limit: see serve()'s comment in the header.
  auto r = http.get(kApi + "/invocation/next", 0ms);
  if (r.status != 200)
    FMI_THROW(ChannelError, "Lambda runtime: GET ", kApi, "/invocation/next answered ", r.status,
              ": ", r.body);
  Invocation inv;
  inv.request_id = header(r, "lambda-runtime-aws-request-id");
  if (inv.request_id.empty())
    FMI_THROW(ChannelError,
              "Lambda runtime: the next invocation has no "
              "Lambda-Runtime-Aws-Request-Id header");
  const std::string deadline = header(r, "lambda-runtime-deadline-ms");
  char* end = nullptr;
  const long long ms = std::strtoll(deadline.c_str(), &end, 10);
  if (deadline.empty() || *end != '\0')
    FMI_THROW(ChannelError, "Lambda runtime: invocation ", inv.request_id,
              ": Lambda-Runtime-Deadline-Ms is not a number: \"", deadline, "\"");
  inv.deadline = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
  inv.function_arn = header(r, "lambda-runtime-invoked-function-arn");
  inv.trace_id = header(r, "lambda-runtime-trace-id");
  inv.event = std::move(r.body);
  return inv;
}

}  // namespace

std::string error_type(std::exception_ptr e) {
  if (!e) return "unknown";
  try {
    std::rethrow_exception(e);
  } catch (...) {
    // The dynamic type of the exception in flight, whatever it derives from.
    const std::type_info* t = abi::__cxa_current_exception_type();
    if (!t) return "unknown";
    if (*t == typeid(const char*) || *t == typeid(char*)) return "unknown";
    return demangle(t->name());
  }
}

int serve(const Handler& handler, const ServeOptions& options) {
  std::string api = options.runtime_api;
  if (api.empty()) {
    const char* v = std::getenv("AWS_LAMBDA_RUNTIME_API");
    if (!v || !*v)
      FMI_THROW(ConfigError,
                "FMI::Lambda::serve: $AWS_LAMBDA_RUNTIME_API is not set "
                "(Lambda sets it for a custom runtime's bootstrap)");
    api = v;
  }
  HttpClient http(api);

  if (options.init) {
    try {
      options.init();
    } catch (...) {
      post_error(http, kApi + "/init/error", std::current_exception());
      return 1;
    }
  }

  for (std::size_t done = 0; options.max_invocations == 0 || done < options.max_invocations;
       ++done) {
    const Invocation inv = next_invocation(http);
    if (inv.trace_id.empty())
      ::unsetenv("_X_AMZN_TRACE_ID");
    else
      ::setenv("_X_AMZN_TRACE_ID", inv.trace_id.c_str(), 1);

    const std::string base = kApi + "/invocation/" + inv.request_id;
    std::string result;
    std::exception_ptr failure;
    try {
      result = handler(inv);
    } catch (...) {
      failure = std::current_exception();
    }
    if (failure) {
      // Also to the log (CloudWatch): the caller sees the error, the log keeps it.
      std::fprintf(stderr, "FMI::Lambda: invocation %s failed: %s: %s\n", inv.request_id.c_str(),
                   error_type(failure).c_str(), message_of(failure).c_str());
      post_error(http, base + "/error", failure);
      continue;
    }
    auto r = http.post(base + "/response", result, {}, kPostLimit);
    if (r.status == 413) {
      // Larger than Lambda takes (6 MB synchronous): the invocation is still open,
      // and its caller should learn why there is no result.
      try {
        FMI_THROW(UsageError, "FMI::Lambda: the response of invocation ", inv.request_id, " is ",
                  result.size(), " bytes, more than the Runtime API accepts (413: ", r.body, ")");
      } catch (...) {
        post_error(http, base + "/error", std::current_exception());
      }
      continue;
    }
    if (r.status / 100 != 2)
      FMI_THROW(ChannelError, "Lambda runtime: POST ", base, "/response answered ", r.status, ": ",
                r.body);
  }
  return 0;
}

}  // namespace FMI::Lambda
