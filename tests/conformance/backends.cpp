// The five channels under test (backends.h) and the runner of the suite.
#include "backends.h"

#include <atomic>
#include <cctype>
#include <map>

#ifdef FMI_WITH_DIRECT
#include "rendezvous_server.h"
#endif
#ifdef FMI_WITH_REDIS
#include "redis_server.h"
#endif
#ifdef FMI_WITH_S3
#include "channels/s3/s3_client.h"
#include "moto_server.h"
#endif

namespace fmitest::conformance {

std::shared_ptr<FMI::Comm::PeerToPeerChannel> Group::open_p2p(unsigned rank,
                                                              const std::string& comm) {
  auto ch = std::dynamic_pointer_cast<FMI::Comm::PeerToPeerChannel>(open(rank, comm));
  PEER_CHECK(ch, "not a point-to-point channel");
  return ch;
}

std::shared_ptr<FMI::Comm::ObjectStoreChannel> Group::open_store(unsigned rank,
                                                                 const std::string& comm) {
  auto ch = std::dynamic_pointer_cast<FMI::Comm::ObjectStoreChannel>(open(rank, comm));
  PEER_CHECK(ch, "not an object-store channel");
  return ch;
}

namespace {

using FMI::Comm::ChannelKind;
constexpr std::size_t MiB = std::size_t(1) << 20;

// Servers live until the end of the test program (the environment resets them), so
// that one process starts each at most once.
std::vector<std::function<void()>>& teardowns() {
  static std::vector<std::function<void()>> v;
  return v;
}

class ConformanceEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    for (auto& f : teardowns()) f();
    teardowns().clear();
  }
};
[[maybe_unused]] const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ConformanceEnvironment);

// ---- in-process ---------------------------------------------------------------------

class InProcGroup : public Group {
 public:
  InProcGroup(unsigned n, std::string comm, ChannelKind kind, std::chrono::milliseconds t)
      : Group(n, std::move(comm)),
        kind_(kind),
        hub_(std::make_shared<FMI::Comm::InProcessHub>(n, t)) {}
  std::shared_ptr<FMI::Comm::Channel> make(unsigned) override {
    if (kind_ == ChannelKind::peer_to_peer) return hub_->p2p_endpoint();
    return hub_->store_endpoint();
  }
  std::optional<std::size_t> objects() override {
    if (kind_ == ChannelKind::peer_to_peer) return std::nullopt;
    return hub_->objects_in_store();
  }

 private:
  ChannelKind kind_;
  std::shared_ptr<FMI::Comm::InProcessHub> hub_;
};

class InProc : public Backend {
 public:
  explicit InProc(ChannelKind k) : kind_(k) {}
  std::string name() const override {
    return kind_ == ChannelKind::peer_to_peer ? "InProcP2P" : "InProcStore";
  }
  ChannelKind kind() const override { return kind_; }
  std::chrono::milliseconds max_timeout() const override { return 10s; }
  bool keeps_buffer_on_mismatch() const override { return true; }
  Axes axes() const override {
    // Full axes: threads and memcpy, a few seconds for all of them.
    return {{1, 2, 3, 4, 5, 7, 8, 9, 16},
            {0, 1, 3, 1001, 300001},
            {0, 4, 1000, 40000},
            true,
            true,
            40000};
  }
  std::unique_ptr<Group> group(unsigned n, const std::string& comm) override {
    return std::make_unique<InProcGroup>(n, comm, kind_, max_timeout());
  }

 private:
  ChannelKind kind_;
};

// ---- network channels: a config text, a server ---------------------------------------

class ConfigGroup : public Group {
 public:
  using Count = std::function<std::optional<std::size_t>()>;
  ConfigGroup(unsigned n, std::string comm, std::string channel, std::string json,
              Count objects = {}, Count leftovers = {})
      : Group(n, std::move(comm)),
        channel_(std::move(channel)),
        json_(std::move(json)),
        objects_(std::move(objects)),
        leftovers_(leftovers ? std::move(leftovers) : objects_) {}
  std::shared_ptr<FMI::Comm::Channel> make(unsigned) override {
    return make_channel(channel_, json_);
  }
  std::optional<std::size_t> objects() override { return objects_ ? objects_() : std::nullopt; }
  std::optional<std::size_t> leftovers() override {
    return leftovers_ ? leftovers_() : std::nullopt;
  }

 private:
  std::string channel_, json_;
  Count objects_, leftovers_;
};

#ifdef FMI_WITH_DIRECT
class DirectBackend : public Backend {
 public:
  std::string name() const override { return "Direct"; }
  ChannelKind kind() const override { return ChannelKind::peer_to_peer; }
  bool forked() const override { return true; }
  std::chrono::milliseconds max_timeout() const override { return 60s; }
  Axes axes() const override {
    // Every peer count is a registration and a mesh of n(n-1)/2 punched
    // connections: 1-8 peers, with 3 and 5 for the non-powers of two.
    return {{1, 2, 3, 5, 8}, {0, 3, 1001, 300001}, {0, 4, 40000}, false, true, 40000};
  }
  std::unique_ptr<Group> group(unsigned n, const std::string& comm) override {
    return group_with(n, comm, max_timeout());
  }
  // 10 s: a 3-peer mesh opens within a second under ThreadSanitizer.
  std::chrono::milliseconds short_timeout() const override { return 10s; }
  std::unique_ptr<Group> short_group(unsigned n, const std::string& comm) override {
    return group_with(n, comm, short_timeout());
  }

 private:
  std::unique_ptr<Group> group_with(unsigned n, const std::string& comm,
                                    std::chrono::milliseconds timeout) {
    if (!server_) {
      server_ = std::make_unique<RendezvousServer>(std::vector<std::string>{"--quiet"});
      teardowns().push_back([this] { server_.reset(); });
    }
    return std::make_unique<ConfigGroup>(n, comm, "Direct",
                                         direct_config("127.0.0.1", server_->port(), timeout));
  }
  std::unique_ptr<RendezvousServer> server_;
};
#endif

#ifdef FMI_WITH_REDIS
class RedisBackend : public Backend {
 public:
  std::string name() const override { return "Redis"; }
  ChannelKind kind() const override { return ChannelKind::object_store; }
  // Short: when one peer fails a check, the others wait this long for it (each of
  // those tests then takes max_timeout, and a broken channel fails dozens).
  std::chrono::milliseconds max_timeout() const override { return 5s; }
  // 64 and 256 MiB (chunked) are tests/redis's; the contract's large message
  // still crosses the 1 MiB chunk size several times.
  std::size_t large_message() const override { return 16 * MiB + 3; }
  Axes axes() const override {
    // 140000 int64 (1.1 MB) per block: above the 1 MiB inline limit (data hashes).
    return {{1, 2, 3, 5, 8}, {0, 3, 1001, 300001}, {0, 4, 40000}, false, true, 140000};
  }
  std::unique_ptr<Group> group(unsigned n, const std::string& comm) override {
    if (!server_) {
      server_ = std::make_unique<RedisServer>();
      teardowns().push_back([this] { server_.reset(); });
    }
    RedisServer* s = server_.get();
    return std::make_unique<ConfigGroup>(
        n, comm, "Redis", redis_config("127.0.0.1", s->port(), max_timeout()),
        // Objects: every key but the communicators' indexes ("#idx"), whose entries
        // a reader removes with its next request.
        [s]() -> std::optional<std::size_t> {
          std::size_t k = 0;
          for (const auto& key : s->client()->keys()) k += !key.ends_with("#idx");
          return k;
        },
        [s]() -> std::optional<std::size_t> { return s->client()->dbsize(); });
  }

 private:
  std::unique_ptr<RedisServer> server_;
};
#endif

#ifdef FMI_WITH_S3
class S3Backend : public Backend {
 public:
  std::string name() const override { return "S3"; }
  ChannelKind kind() const override { return ChannelKind::object_store; }
  // Long enough for moto on a loaded machine, short enough that a broken channel
  // fails within the ctest TIMEOUT (the peers of a failed test wait this long).
  // 20 s, not 10 s: under `ctest -j2` in CI, s3_collectives ran next to two other
  // moto servers and failed once (3 Dec 2026) where it passes alone in 25-50 s.
  std::chrono::milliseconds max_timeout() const override { return 20s; }
  bool counts_readers() const override { return false; }
  Axes axes() const override {
    // moto is a Python server: every object is ~3 requests of some ms. Peer
    // counts 1, 2, 3, 5, one root (the last, not 0), no second non-commutative
    // function, blocks up to 300 KB (above coll::kLargeMessage).
    return {{1, 2, 3, 5}, {0, 1001, 300001}, {0, 4, 40000}, false, false, 40000};
  }
  std::unique_ptr<Group> group(unsigned n, const std::string& comm) override {
    if (!server_) {
      ::setenv("AWS_ACCESS_KEY_ID", "testing", 1);
      ::setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
      ::unsetenv("AWS_SESSION_TOKEN");
      server_ = std::make_unique<MotoServer>();
      teardowns().push_back([this] { server_.reset(); });
      bucket_ = "fmi-conformance-" + std::to_string(::getpid());
      client()->create_bucket(in(30s));
    }
    return std::make_unique<ConfigGroup>(
        n, comm, "S3", s3_config(bucket_, server_->endpoint(), max_timeout(), 5ms),
        [this]() -> std::optional<std::size_t> {
          return client()->list_objects("", in(30s)).size();
        });
  }

 private:
  std::unique_ptr<FMI::Comm::s3::Client> client() const {
    return std::make_unique<FMI::Comm::s3::Client>(FMI::Comm::s3::ClientOptions{
        bucket_, "us-east-1", server_->endpoint(), FMI::Comm::s3::Credentials::from_env()});
  }
  std::unique_ptr<MotoServer> server_;
  std::string bucket_;
};
#endif

std::map<std::string, std::unique_ptr<Backend>>& registry() {
  static std::map<std::string, std::unique_ptr<Backend>> r = [] {
    std::map<std::string, std::unique_ptr<Backend>> m;
    auto add = [&](std::unique_ptr<Backend> b) {
      auto name = b->name();
      m[name] = std::move(b);
    };
    add(std::make_unique<InProc>(ChannelKind::peer_to_peer));
    add(std::make_unique<InProc>(ChannelKind::object_store));
#ifdef FMI_WITH_DIRECT
    add(std::make_unique<DirectBackend>());
#endif
#ifdef FMI_WITH_REDIS
    add(std::make_unique<RedisBackend>());
#endif
#ifdef FMI_WITH_S3
    add(std::make_unique<S3Backend>());
#endif
    return m;
  }();
  return r;
}

}  // namespace

Backend& backend(const std::string& name) {
  auto& r = registry();
  auto it = r.find(name);
  if (it == r.end()) throw std::runtime_error("no backend " + name + " in this build");
  return *it->second;
}

// The names of this build's backends (gtest instantiates the suites from these at
// static initialisation; servers start only when a test makes a group).
std::vector<std::string> p2p_backends() {
  std::vector<std::string> v = {"InProcP2P"};
#ifdef FMI_WITH_DIRECT
  v.push_back("Direct");
#endif
  return v;
}

std::vector<std::string> store_backends() {
  std::vector<std::string> v = {"InProcStore"};
#ifdef FMI_WITH_REDIS
  v.push_back("Redis");
#endif
#ifdef FMI_WITH_S3
  v.push_back("S3");
#endif
  return v;
}

std::vector<std::string> all_backends() {
  auto v = p2p_backends();
  for (auto& s : store_backends()) v.push_back(s);
  return v;
}

void run_on(Backend& b, Group& g, const std::function<void(unsigned, Group&)>& body) {
  const unsigned n = g.size();
  if (b.forked()) {
    expect_all_ok(run_forked(
        n, [&](unsigned r) { body(r, g); }, std::chrono::seconds(120)));
  } else {
    expect_no_errors(run_threads(n, [&](unsigned r) { body(r, g); }), b.name());
  }
}

void run(Backend& b, unsigned n, const std::function<void(unsigned, Group&)>& body,
         const std::string& comm) {
  auto g = b.group(n, comm);
  run_on(b, *g, body);
}

std::string param_name(std::string s) {
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return s;
}

}  // namespace fmitest::conformance
