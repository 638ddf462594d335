// The Direct channel's descriptor: its config sections, factory and model.
#include "channels/direct/config.h"
#include "channels/direct/direct_channel.h"
#include "channels/direct/model.h"
#include "channels/registry.h"

namespace FMI::Comm {
namespace {

const char* const kBackend = "backends.Direct";

// The value checks of an enabled section; the parser runs them, and so does the
// factory for a Config built in code. (The shared secret's length is checked by
// the channel: FMI_SECRET from the environment replaces it there.)
void check(const DirectConfig& c, const std::string& source) {
  if (c.host.empty())
    config::fail(source, std::string(kBackend) + ".host", "(rendezvous server) is empty");
  // A deadline of 0 would fail every call at once; port 0 names no server.
  if (c.max_timeout <= std::chrono::milliseconds(0))
    config::fail(source, std::string(kBackend) + ".max_timeout",
                 "must be positive, is " + std::to_string(c.max_timeout.count()) + " ms");
  // One connection cannot serve a point-to-point exchange between two others: with
  // fewer than 2 the least recently used one would be closed for every message.
  if (c.max_connections < 2)
    config::fail(source, std::string(kBackend) + ".max_connections",
                 "must be an integer >= 2 (connections one function keeps open), is " +
                     std::to_string(c.max_connections));
  if (c.port == 0)
    config::fail(source, std::string(kBackend) + ".port",
                 "must be an integer in [1, 65535] (the rendezvous server's port), is 0");
}

void parse_backend(const config::Reader& r, ChannelConfig& out) {
  auto& c = static_cast<DirectConfig&>(out);
  c.host = r.str("host");
  c.port = static_cast<std::uint16_t>(r.integer("port", 1, 65535));
  c.max_timeout = r.millis("max_timeout");
  if (r.has("secret")) c.secret = r.str("secret");
  if (r.has("encryption")) c.encryption = r.boolean("encryption");
  if (r.has("max_connections"))
    c.max_connections = std::size_t(r.integer("max_connections", 2, 1 << 20));
  check(c, r.source());
}

void parse_model(const config::Reader& r, ChannelConfig& out) {
  auto& p = static_cast<DirectConfig&>(out).model;
  p.bandwidth = r.positive("bandwidth");
  p.overhead = r.num("overhead");
  p.transfer_price = r.num("transfer_price");
  p.vm_price = r.num("vm_price");
  p.requests_per_hour = r.positive("requests_per_hour");
  p.include_infrastructure_costs = r.boolean("include_infrastructure_costs");
  // Optional fields added by issue 16 (relayed bytes billed as VM egress).
  if (r.has("relayed_fraction")) {
    p.relayed_fraction = r.num("relayed_fraction");
    if (!(p.relayed_fraction >= 0 && p.relayed_fraction <= 1))
      r.fail("relayed_fraction", "must be between 0 and 1");
  }
  if (r.has("vm_egress_price")) p.vm_egress_price = r.num("vm_egress_price");
}

std::shared_ptr<Channel> make(const Config& config) {
  const auto& c = config.section<DirectConfig>();
  check(c, config.source);
  return std::make_shared<DirectChannel>(c);
}

std::shared_ptr<const ChannelModel> model(const Config& config) {
  return std::make_shared<DirectModel>(config.section<DirectConfig>().model);
}

}  // namespace

constinit const ChannelDescriptor kDirectDescriptor = {
    {DirectConfig::kName, [] { return std::unique_ptr<ChannelConfig>(new DirectConfig()); },
     &parse_backend, &parse_model},
    ChannelKind::peer_to_peer,
    &make,
    &model,
};

}  // namespace FMI::Comm
