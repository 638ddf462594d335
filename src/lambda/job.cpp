// The event contract of `fmirun --lambda` (include/fmi/lambda.h): parse_job,
// communicator, job_handler.
#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "fmi/errors.h"
#include "fmi/lambda.h"

namespace FMI::Lambda {
namespace {

using json = nlohmann::json;

// The fields of the contract; everything else at the top level is the payload.
constexpr const char* kContract[] = {"peer_id", "num_peers", "comm_name", "fmi_config"};

[[noreturn]] void bad_field(const std::string& where, const char* field, const std::string& why) {
  FMI_THROW(ConfigError, where, ": field ", field, " ", why,
            " (the event of fmirun --lambda: peer_id, num_peers, comm_name, fmi_config)");
}

const json& field(const json& event, const std::string& where, const char* name) {
  auto it = event.find(name);
  if (it == event.end()) bad_field(where, name, "is missing");
  return *it;
}

Utils::peer_num peer_field(const json& event, const std::string& where, const char* name,
                           long long lo) {
  const json& v = field(event, where, name);
  // Integers only: 2.5 peers or "2" would be a launcher's bug worth naming.
  if (!v.is_number_integer()) bad_field(where, name, "must be an integer, is " + v.dump());
  const long long n = v.get<long long>();
  if (n < lo || n > (1LL << 31))
    bad_field(where, name, "must be in [" + std::to_string(lo) + ", 2^31], is " + v.dump());
  return static_cast<Utils::peer_num>(n);
}

// max_timeout of every backends.<channel> section that has one, lowered to `budget`
// ms. A value that is not a number (or a string holding one) is left for the
// configuration parser to report.
void clamp_max_timeouts(json& config, long long budget) {
  auto backends = config.find("backends");
  if (backends == config.end() || !backends->is_object()) return;
  for (auto& [name, section] : backends->items()) {
    if (!section.is_object() || !section.contains("max_timeout")) continue;
    json& mt = section["max_timeout"];
    double ms;
    if (mt.is_number()) {
      ms = mt.get<double>();
    } else if (mt.is_string()) {
      try {
        std::size_t used = 0;
        ms = std::stod(mt.get<std::string>(), &used);
        if (used != mt.get<std::string>().size()) continue;
      } catch (const std::exception&) {
        continue;
      }
    } else {
      continue;
    }
    if (ms > static_cast<double>(budget)) mt = budget;
  }
}

}  // namespace

std::chrono::milliseconds Invocation::remaining() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                               std::chrono::system_clock::now());
}

Job parse_job(const Invocation& invocation, std::chrono::milliseconds reserve) {
  const std::string where = "Lambda event " + invocation.request_id;
  json event = json::parse(invocation.event, nullptr, /*allow_exceptions=*/false);
  if (event.is_discarded())
    FMI_THROW(ConfigError, where, ": not JSON (the event of fmirun --lambda is a JSON object)");
  if (!event.is_object())
    FMI_THROW(ConfigError, where,
              ": must be a JSON object (with peer_id, num_peers, comm_name, "
              "fmi_config), is ",
              event.type_name());

  Job job;
  job.peer_id = peer_field(event, where, "peer_id", 0);
  job.num_peers = peer_field(event, where, "num_peers", 1);
  const json& name = field(event, where, "comm_name");
  if (!name.is_string() || name.get<std::string>().empty())
    bad_field(where, "comm_name", "must be a non-empty string, is " + name.dump());
  job.comm_name = name.get<std::string>();
  if (job.peer_id >= job.num_peers)
    FMI_THROW(UsageError, where, ": peer_id ", job.peer_id, " is not below num_peers ",
              job.num_peers);

  json config = field(event, where, "fmi_config");
  if (!config.is_object())
    bad_field(where, "fmi_config", std::string("must be a JSON object, is ") + config.type_name());
  const auto left = invocation.remaining() - reserve;
  if (left <= std::chrono::milliseconds(0))
    FMI_THROW(TimeoutError, where, ": only ", format_duration(invocation.remaining()),
              " left of the invocation, ", format_duration(reserve),
              " are kept for the response: no time for the job");
  clamp_max_timeouts(config, left.count());
  job.config = Config::parse(config.dump(), where + ": fmi_config");

  for (const char* f : kContract) event.erase(f);
  job.payload = event.dump();
  return job;
}

unsigned int function_memory() {
  const char* v = std::getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
  if (!v || !*v) return 128;
  char* end = nullptr;
  const unsigned long mib = std::strtoul(v, &end, 10);
  return (*end == '\0' && mib > 0 && mib <= 1u << 20) ? static_cast<unsigned int>(mib) : 128;
}

std::unique_ptr<Communicator> communicator(const Job& job, unsigned int faas_memory) {
  return std::make_unique<Communicator>(job.peer_id, job.num_peers, job.config, job.comm_name,
                                        faas_memory);
}

Handler job_handler(JobFunction fn, std::chrono::milliseconds reserve) {
  return [fn = std::move(fn), reserve](const Invocation& invocation) {
    const Job job = parse_job(invocation, reserve);
    std::string result;
    {
      auto comm = communicator(job);
      result = fn(*comm, job);
    }  // channels finalised here, before serve() posts the result
    return result;
  };
}

}  // namespace FMI::Lambda
