// The S3 channel's descriptor: its config sections, factory and model.
#include "channels/registry.h"
#include "channels/s3/config.h"
#include "channels/s3/model.h"
#include "channels/s3/s3_channel.h"

namespace FMI::Comm {
namespace {

const char* const kBackend = "backends.S3";

// The value checks of an enabled section; the parser runs them, and so does the
// factory for a Config built in code.
void check(const S3Config& c, const std::string& source) {
  const std::string f = std::string(kBackend) + ".";
  if (c.bucket_name.empty()) config::fail(source, f + "bucket_name", "is empty");
  if (c.s3_region.empty()) config::fail(source, f + "s3_region", "is empty");
  if (c.timeout <= std::chrono::milliseconds(0))
    config::fail(source, f + "timeout", "(first poll interval) must be > 0 ms");
  if (c.max_timeout <= std::chrono::milliseconds(0))
    config::fail(source, f + "max_timeout", "must be > 0 ms");
  if (!c.endpoint.empty() && c.endpoint.rfind("http://", 0) != 0 &&
      c.endpoint.rfind("https://", 0) != 0)
    config::fail(source, f + "endpoint",
                 "'" + c.endpoint + "' must start with http:// or https://");
}

void parse_backend(const config::Reader& r, ChannelConfig& out) {
  auto& c = static_cast<S3Config&>(out);
  c.bucket_name = r.str("bucket_name");
  c.s3_region = r.str("s3_region");
  c.timeout = r.millis("timeout");
  c.max_timeout = r.millis("max_timeout");
  if (r.has("endpoint")) c.endpoint = r.str("endpoint");
  check(c, r.source());
}

void parse_model(const config::Reader& r, ChannelConfig& out) {
  auto& p = static_cast<S3Config&>(out).model;
  p.bandwidth = r.positive("bandwidth");
  p.overhead = r.num("overhead");
  p.transfer_price = r.num("transfer_price");
  p.download_price = r.num("download_price");
  p.upload_price = r.num("upload_price");
}

std::shared_ptr<Channel> make(const Config& config) {
  const auto& c = config.section<S3Config>();
  check(c, config.source);
  return std::make_shared<S3Channel>(c);
}

// The model polls with the channel's first interval, backends.S3.timeout.
std::shared_ptr<const ChannelModel> model(const Config& config) {
  const auto& c = config.section<S3Config>();
  return std::make_shared<S3Model>(c.model, c.timeout);
}

}  // namespace

constinit const ChannelDescriptor kS3Descriptor = {
    {S3Config::kName, [] { return std::unique_ptr<ChannelConfig>(new S3Config()); }, &parse_backend,
     &parse_model},
    ChannelKind::object_store,
    &make,
    &model,
};

}  // namespace FMI::Comm
