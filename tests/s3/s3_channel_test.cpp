// What only the S3 channel does, against a real S3 server (moto): adaptive polling
// (requests per get), listing with continuation tokens, batched deletes, objects
// left after finalize (with a missing peer too), no request at finalize from a
// channel that moved nothing (issue 16), session tokens, SigV4 on every
// request, keep-alive, and the errors of a bad set-up. The object-store contract
// (sizes up to 64 MiB, readers, waiting, mismatches, deadlines, erase, listing) and
// the collectives are tests/conformance's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <future>
#include <numeric>
#include <thread>

#include "channels/s3/config.h"
#include "fmi/errors.h"
#include "fmi/fmi.h"
#include "fmi/inproc.h"
#include "fmi/model.h"
#include "harness.h"
#include "s3_fixture.h"

namespace fmitest {
namespace {

using FMI::Comm::ObjectKey;
using FMI::Comm::S3Channel;
using FMI::Comm::Tag;
using FMI::Utils::Operation;

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = std::byte(x >> 24);
  }
  return v;
}

ObjectKey key(Operation op, std::uint32_t seq, unsigned from, unsigned to = ObjectKey::all) {
  return ObjectKey{Tag{op, seq}, from, to};
}

class S3ChannelTest : public S3Test {
 protected:
  std::shared_ptr<S3Channel> channel(unsigned peer = 0, unsigned n = 1) {
    auto ch = s3_channel(config_json());
    ch->init({peer, n, comm_, 128});
    return ch;
  }

  // Messages must name both sizes, the object and the peer.
  template <typename Exc, typename F>
  std::string expect_throw(F&& f) {
    try {
      f();
    } catch (const Exc& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "wrong exception type: " << e.what();
      return {};
    }
    ADD_FAILURE() << "no exception thrown";
    return {};
  }
};

// The 1 GiB target, too slow for every run (moto is Python): run it by hand with
// s3_channel_test --gtest_also_run_disabled_tests --gtest_filter='*1GiB*'.
TEST_F(S3ChannelTest, DISABLED_PutGet1GiB) {
  auto ch = channel();
  const std::size_t n = std::size_t(1) << 30;
  std::vector<std::byte> data(n);
  for (std::size_t i = 0; i < n; i += 4096) data[i] = std::byte(i >> 12);
  const auto k = key(Operation::bcast, 2, 0);
  ch->put(k, data, 1, in(600s));
  std::vector<std::byte> out(n);
  ch->get(k, out, in(600s));
  EXPECT_TRUE(out == data);
  ch->finalize();
  EXPECT_TRUE(bucket_contents().empty());
}

TEST_F(S3ChannelTest, GetWaitsForALaterPutAndCountsPolls) {
  auto writer = channel(0, 1);
  auto reader = channel(0, 1);
  const auto data = pattern(8, 8);
  const auto k = key(Operation::send, 7, 0, 0);
  auto put_later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(300ms);
    writer->put(k, data, 1, in(10s));
  });
  std::vector<std::byte> out(8);
  const auto before = reader->requests();
  reader->get(k, out, in(10s));
  put_later.get();
  EXPECT_EQ(out, data);
  EXPECT_GE(reader->polls(), 1u);
  // Adaptive polling: far fewer requests than 300 ms / 5 ms.
  EXPECT_LE(reader->requests() - before, 30u);
  EXPECT_EQ(reader->requests() - before, reader->polls() + 1);
  reader->finalize();
  writer->finalize();
  EXPECT_TRUE(bucket_contents().empty());
}

// A missing object is polled for until the deadline; the error names its key.
TEST_F(S3ChannelTest, MissingObjectIsPolledUntilTheDeadline) {
  auto ch = channel();
  std::vector<std::byte> out(8);
  const auto k = key(Operation::send, 99, 3, 0);
  const std::string msg = expect_throw<FMI::TimeoutError>([&] { ch->get(k, out, in(400ms)); });
  EXPECT_NE(msg.find(k.str(comm_)), std::string::npos) << msg;
  EXPECT_NE(msg.find("peer 3"), std::string::npos) << msg;
  EXPECT_GE(ch->polls(), 2u);
}

// The cost of an any-source wait (docs/s3.md, "Any-source receive"): one LIST of
// the common prefix per poll, whatever the number of sources, at the get's poll
// intervals (first `timeout`, x1.5 per miss, at most kMaxPollInterval), so a
// wait of T costs at most ceil(log1.5(kMaxPollInterval / timeout)) + T / 1 s + 2
// requests; when the message is there, one more GET (stopped at the headers)
// for its size, and the message stays for its get.
TEST_F(S3ChannelTest, AnySourceProbeCostsOneListPerPoll) {
  auto reader = channel(0, 4);
  auto writer = channel(2, 4);
  std::vector<ObjectKey> wanted;
  for (unsigned s = 1; s < 4; ++s) wanted.push_back(key(Operation::send, 10 + s, s, 0));
  const auto wait = 1500ms;
  const auto before = reader->requests();
  const auto start = FMI::Utils::Clock::now();
  EXPECT_THROW(reader->probe(wanted, true, in(wait)), FMI::TimeoutError);
  const auto waited = FMI::Utils::Clock::now() - start;
  const double ramp = std::ceil(std::log(1000.0 / 5.0) / std::log(1.5));
  const double bound = ramp + std::chrono::duration<double>(waited).count() + 2;
  const auto spent = reader->requests() - before;
  EXPECT_GE(spent, 3u);
  EXPECT_LE(double(spent), bound) << spent << " requests in " << FMI::format_duration(waited);

  const auto data = pattern(300, 3);
  writer->put(wanted[1], data, 1, in(10s));
  const auto at = reader->requests();
  const auto polls = reader->polls();
  auto p = reader->probe(wanted, true, in(10s));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->index, 1u);
  EXPECT_EQ(p->bytes, 300u);
  EXPECT_EQ(reader->requests() - at, reader->polls() - polls + 2);  // LISTs + the size GET
  auto q = reader->probe(wanted, false, in(10s));                   // still there
  ASSERT_TRUE(q);
  EXPECT_EQ(q->index, 1u);
  std::vector<std::byte> out(300);
  reader->get(wanted[1], out, in(10s));
  EXPECT_EQ(out, data);
  EXPECT_FALSE(reader->probe(wanted, false, in(10s)));  // consumed
  reader->finalize();
  writer->finalize();
  EXPECT_TRUE(bucket_contents().empty());
}

TEST_F(S3ChannelTest, ListByPrefixFollowsContinuationTokens) {
  auto ch = channel();
  ch->set_list_page_size(7);  // 25 keys: four pages
  std::vector<std::string> want;
  for (std::uint32_t i = 0; i < 25; ++i) {
    const auto k = key(Operation::allgather, 5, i);
    ch->put(k, pattern(1, i), 2, in(10s));
    want.push_back(k.str(comm_));
  }
  ch->put(key(Operation::allgather, 6, 0), pattern(1, 0), 2, in(10s));  // other prefix
  auto got = ch->list(comm_ + "/allgather/5/", in(10s));
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_TRUE(ch->list(comm_ + "/nothing/", in(10s)).empty());
  ch->finalize();  // multi-reader objects: deleted by their creator
  EXPECT_TRUE(bucket_contents().empty());
}

TEST_F(S3ChannelTest, ManySingleReaderObjectsAreDeletedInBatches) {
  auto ch = channel();
  const std::size_t n = S3Channel::kDeleteBatch + 5;
  std::vector<std::byte> out(2);
  for (std::uint32_t i = 0; i < n; ++i) {
    const auto k = key(Operation::send, i, 0, 0);
    ch->put(k, pattern(2, i), 1, in(10s));
    ch->get(k, out, in(10s));
  }
  // One DeleteObjects request removed the first kDeleteBatch objects.
  EXPECT_EQ(bucket_contents().size(), 5u);
  EXPECT_EQ(ch->requests(), 2 * n + 1 + 1);  // + HEAD bucket + one DeleteObjects
  ch->finalize();
  EXPECT_TRUE(bucket_contents().empty());
}

// Peers as threads: multi-reader objects must survive until every reader is
// done, even when their creator finalizes first, and nothing may be left.
TEST_F(S3ChannelTest, FinalizeWaitsForReadersAndLeavesNothing) {
  const unsigned n = 4;
  std::vector<std::shared_ptr<S3Channel>> chs;
  for (unsigned i = 0; i < n; ++i) chs.push_back(channel(i, n));
  const auto data = pattern(1000, 5);
  // Peer 0 writes one object for everyone, and finalizes at once.
  chs[0]->put(key(Operation::bcast, 1, 0), data, n - 1, in(10s));
  std::vector<std::thread> ts;
  std::vector<int> ok(n, 0);
  ts.emplace_back([&] { chs[0]->finalize(); });
  for (unsigned i = 1; i < n; ++i) {
    ts.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100 * i));
      std::vector<std::byte> out(1000);
      chs[i]->get(key(Operation::bcast, 1, 0), out, in(10s));
      ok[i] = out == data;
      chs[i]->finalize();
    });
  }
  for (auto& t : ts) t.join();
  for (unsigned i = 1; i < n; ++i) EXPECT_TRUE(ok[i]) << "peer " << i;
  EXPECT_TRUE(bucket_contents().empty());
}

// A peer whose partners never finalize gives up after max_timeout, reports it on
// stderr, and still removes everything it created.
TEST_F(S3ChannelTest, FinalizeWithAMissingPeerStillCleansUp) {
  {
    auto ch = s3_channel(config_json(5ms, 1s));
    ch->init({1, 2, comm_, 128});
    ch->put(key(Operation::bcast, 1, 1), pattern(10, 1), 3, in(10s));
  }  // the destructor finalizes: peer 0 never arrives
  EXPECT_TRUE(bucket_contents().empty());
}

// Issue 16: a channel that moved nothing touches nothing at finalize. Peer 1 of 3
// whose partners never come: no barrier (it would wait max_timeout for peer 0's
// release), no request after the HEAD of init.
TEST_F(S3ChannelTest, UnusedChannelSendsNoRequestAtFinalize) {
  auto ch = s3_channel(config_json(5ms, 5s));
  ch->init({1, 3, comm_, 128});
  EXPECT_EQ(ch->requests(), 1u);  // HEAD bucket
  const auto t0 = FMI::Utils::Clock::now();
  ch->finalize();
  EXPECT_LT(FMI::Utils::Clock::now() - t0, 2s);
  EXPECT_EQ(ch->requests(), 1u);
  EXPECT_TRUE(bucket_contents().empty());
}

// Issue 16: S3 unreachable by the time the run ends (its own moto server, stopped
// after init): channels that moved nothing finish at once and report nothing.
TEST_F(S3ChannelTest, UnusedChannelFinishesCleanlyWhenS3IsGone) {
  auto own = std::make_unique<MotoServer>();
  const std::string json = config_json(5ms, 3s, {}, own->endpoint());
  FMI::Comm::s3::Client(FMI::Comm::s3::ClientOptions{bucket_, "us-east-1", own->endpoint(),
                                                     FMI::Comm::s3::Credentials::from_env()})
      .create_bucket(in(10s));
  std::vector<std::shared_ptr<S3Channel>> chs;
  for (unsigned i = 0; i < 3; ++i) {
    chs.push_back(s3_channel(json));
    chs.back()->init({i, 3, comm_, 128});
  }
  own.reset();  // S3 is gone
  ::testing::internal::CaptureStderr();
  const auto t0 = FMI::Utils::Clock::now();
  for (auto& ch : chs) ch->finalize();
  const auto took = FMI::Utils::Clock::now() - t0;
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_LT(took, 1s);
  EXPECT_EQ(err, "");
  for (auto& ch : chs) EXPECT_EQ(ch->requests(), 1u);
}

// Only sends (single-reader objects, deleted by their reader): no finalize barrier
// either; the reader deletes what it consumed, the writer sends nothing more.
TEST_F(S3ChannelTest, SendsOnlyNeedNoFinalizeBarrier) {
  const std::string json = config_json(5ms, 5s);
  auto writer = s3_channel(json), reader = s3_channel(json);
  writer->init({0, 3, comm_, 128});
  reader->init({2, 3, comm_, 128});
  const auto k = key(Operation::send, 1, 0, 2);
  writer->put(k, pattern(16, 1), 1, in(10s));
  std::vector<std::byte> out(16);
  reader->get(k, out, in(10s));
  EXPECT_EQ(out, pattern(16, 1));
  const auto t0 = FMI::Utils::Clock::now();
  writer->finalize();  // peer 1 never exists: a barrier would time out
  reader->finalize();
  EXPECT_LT(FMI::Utils::Clock::now() - t0, 2s);
  EXPECT_EQ(writer->requests(), 2u);  // HEAD, PUT
  EXPECT_EQ(reader->requests(), 3u);  // HEAD, GET, DELETE of the consumed object
  EXPECT_TRUE(bucket_contents().empty());
}

// Issue 16, through a Communicator: every channel enabled, hint fast: every message
// goes over the point-to-point channel (in-process, registered as "Direct" so that
// the policy ranks it with the Direct model), and the S3 channel, never used, sends
// no request after the HEAD of init: none while running, none at finalize.
TEST_F(S3ChannelTest, AllChannelsHintFastLeavesS3Untouched) {
  using FMI::Comm::Data;
  using FMI::Utils::Function;
  using Vec = std::vector<long>;
  const unsigned n = 3;
  FMI::Comm::InProcessHub hub(n, 20s);
  const FMI::Config cfg = config();
  std::vector<std::shared_ptr<FMI::Comm::Channel>> s3(n);
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> ts;
  for (unsigned i = 0; i < n; ++i)
    ts.emplace_back([&, i] {
      try {
        FMI::Communicator comm(i, n, cfg, comm_);
        comm.register_channel("Direct", hub.p2p_endpoint());
        comm.hint(FMI::Utils::Hint::fast);
        s3[i] = comm.channels().at("S3");
        const long me = i;
        Data<Vec> v(Vec{me, 2 * me}), sum(2);
        comm.allreduce(v, sum, Function<Vec>::sum());
        EXPECT_EQ(sum.get(), (Vec{3, 6}));
        Data<Vec> b(Vec{me, me});
        comm.bcast(b, 1);
        EXPECT_EQ(b.get(), (Vec{1, 1}));
        comm.barrier();
        Data<Vec> m(Vec{7 * me});
        if (i == 0) comm.send(m, 2);
        if (i == 2) {
          comm.recv(m, 0);
          EXPECT_EQ(m.get(), (Vec{0}));
        }
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  for (auto& t : ts) t.join();
  for (unsigned i = 0; i < n; ++i) {
    if (errors[i]) ADD_FAILURE() << "peer " << i << " threw: " << describe(errors[i]);
    auto* ch = dynamic_cast<S3Channel*>(s3[i].get());
    ASSERT_NE(ch, nullptr);
    EXPECT_EQ(ch->requests(), 1u) << "peer " << i << ": only the HEAD bucket of init";
  }
  EXPECT_TRUE(bucket_contents().empty());
}

TEST_F(S3ChannelTest, SessionTokenIsSentAndAccepted) {
  ::setenv("AWS_SESSION_TOKEN", "test-session-token", 1);
  auto ch = channel();
  ::unsetenv("AWS_SESSION_TOKEN");
  const auto k = key(Operation::send, 1, 0, 0);
  ch->put(k, pattern(3, 3), 1, in(10s));
  std::vector<std::byte> out(3);
  ch->get(k, out, in(10s));
  EXPECT_EQ(out, pattern(3, 3));
}

TEST_F(S3ChannelTest, MissingBucketIsAClearErrorAtInit) {
  auto ch = s3_channel(config_json(5ms, 20s, "fmi-no-such-bucket"));
  const std::string msg = expect_throw<FMI::ChannelError>([&] { ch->init({0, 1, comm_, 128}); });
  EXPECT_NE(msg.find("bucket fmi-no-such-bucket does not exist"), std::string::npos) << msg;
  EXPECT_NE(msg.find(server_->endpoint()), std::string::npos) << msg;
}

TEST_F(S3ChannelTest, WrongEndpointIsAClearErrorNamingTheAddress) {
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(free_port());
  auto ch = s3_channel(config_json(5ms, 20s, {}, endpoint));
  const std::string msg = expect_throw<FMI::ChannelError>([&] { ch->init({0, 1, comm_, 128}); });
  EXPECT_NE(msg.find(endpoint), std::string::npos) << msg;
}

TEST_F(S3ChannelTest, BadEndpointSchemeIsAConfigError) {
  const std::string json = config_json(5ms, 20s, {}, "127.0.0.1:9000");
  const std::string msg = expect_throw<FMI::ConfigError>([&] { s3_channel(json); });
  EXPECT_NE(msg.find("endpoint"), std::string::npos) << msg;
}

TEST_F(S3ChannelTest, MissingCredentialsAreAConfigErrorNamingTheVariables) {
  const std::string saved = std::getenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  const std::string json = config_json();
  const std::string msg = expect_throw<FMI::ConfigError>([&] { s3_channel(json); });
  ::setenv("AWS_SECRET_ACCESS_KEY", saved.c_str(), 1);
  EXPECT_NE(msg.find("AWS_SECRET_ACCESS_KEY"), std::string::npos) << msg;
}

TEST_F(S3ChannelTest, S3ErrorResponsesQuoteCodeStatusMethodAndKey) {
  auto c = client("fmi-bucket-that-is-missing");
  const std::string msg =
      expect_throw<FMI::ChannelError>([&] { c->put_object("comm/send/1/0-1", {}, {}, in(10s)); });
  EXPECT_NE(msg.find("NoSuchBucket"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HTTP 404"), std::string::npos) << msg;
  EXPECT_NE(msg.find("PUT"), std::string::npos) << msg;
  EXPECT_NE(msg.find("comm/send/1/0-1"), std::string::npos) << msg;
}

// A communicator name with dot segments, which curl collapses: with path-style URLs
// "x/../../<other bucket>" would put objects into another bucket. Refused, by the
// channel at init and by the client for any key; the other bucket stays empty.
TEST_F(S3ChannelTest, DotSegmentNamesCannotReachAnotherBucket) {
  const std::string other = bucket_ + "-other";
  client(other)->create_bucket(in(10s));
  const std::vector<std::string> names = {"x/../../" + other, "..", "a/./b", "a/.."};
  for (const std::string& name : names) {
    auto ch = s3_channel(config_json());
    const std::string msg = expect_throw<FMI::UsageError>([&] { ch->init({0, 1, name, 128}); });
    EXPECT_NE(msg.find("communicator name '" + name + "'"), std::string::npos) << msg;
  }
  auto c = client();
  expect_throw<FMI::UsageError>([&] { c->put_object("x/../../" + other + "/k", {}, {}, in(10s)); });
  EXPECT_TRUE(client(other)->list_objects("", in(10s)).empty());
  EXPECT_TRUE(bucket_contents().empty());
  // Dots inside a segment are ordinary characters.
  auto ok = s3_channel(config_json());
  ok->init({0, 1, "a.b/..c/d..", 128});
  const auto k = key(Operation::send, 1, 0, 0);
  ok->put(k, pattern(5, 1), 1, in(10s));
  std::vector<std::byte> out(5);
  ok->get(k, out, in(10s));
  EXPECT_EQ(out, pattern(5, 1));
}

TEST_F(S3ChannelTest, UseBeforeInitIsAUsageError) {
  auto ch = s3_channel(config_json());
  std::vector<std::byte> out(1);
  EXPECT_THROW(ch->get(key(Operation::send, 1, 0, 0), out, in(1s)), FMI::UsageError);
}

TEST_F(S3ChannelTest, ExposesThePolicysReferenceModel) {
  // The formulas are tested in tests/policy; the channel must hand the policy the
  // same model the explain tool shows.
  auto cfg = config(50ms);
  auto m = s3_channel(config_json(50ms))->model();
  ASSERT_TRUE(m);
  auto ref = FMI::Comm::make_builtin_model("S3", cfg);
  EXPECT_DOUBLE_EQ(m->latency(1, 4, 1 << 20), ref->latency(1, 4, 1 << 20));
  EXPECT_DOUBLE_EQ(m->cost(1, 4, 1 << 20), ref->cost(1, 4, 1 << 20));
  EXPECT_GT(m->cost(4, 4, 1000), m->cost(1, 4, 1000));
}

}  // namespace
}  // namespace fmitest

namespace fmitest {
namespace {

// moto checks SigV4 signatures once INITIAL_NO_AUTH_ACTION_COUNT unauthenticated
// requests have been served: those create an IAM user with a key, and every
// request of the channel after that must be signed correctly (payload hash,
// session-less credentials, DeleteObjects with Content-MD5, continuation tokens).
TEST(S3Signature, EveryRequestIsSignedCorrectly) {
  MotoServer srv({"INITIAL_NO_AUTH_ACTION_COUNT=3"});
  const std::string keys_file = "/tmp/fmi-moto-keys-" + std::to_string(::getpid());
  const std::string script = keys_file + ".py";
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(
        f,
        "import boto3, json, sys\n"
        "iam = boto3.client('iam', endpoint_url=sys.argv[1], region_name='us-east-1',\n"
        "                   aws_access_key_id='x', aws_secret_access_key='y')\n"
        "iam.create_user(UserName='fmi')\n"
        "k = iam.create_access_key(UserName='fmi')['AccessKey']\n"
        "iam.put_user_policy(UserName='fmi', PolicyName='all', PolicyDocument=json.dumps(\n"
        "  {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*',\n"
        "   'Resource': '*'}]}))\n"
        "open(sys.argv[2], 'w').write(k['AccessKeyId'] + ' ' + k['SecretAccessKey'])\n");
    std::fclose(f);
  }
  const std::string cmd =
      "'" + find_moto_python() + "' " + script + " " + srv.endpoint() + " " + keys_file;
  const int rc = std::system(cmd.c_str());
  std::remove(script.c_str());
  ASSERT_EQ(rc, 0) << cmd;
  char ak[256] = {0}, sk[256] = {0};
  {
    std::FILE* f = std::fopen(keys_file.c_str(), "r");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(std::fscanf(f, "%255s %255s", ak, sk), 2);
    std::fclose(f);
    std::remove(keys_file.c_str());
  }
  ::setenv("AWS_ACCESS_KEY_ID", ak, 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
  ::unsetenv("AWS_SESSION_TOKEN");

  const std::string bucket = "fmi-signed";
  FMI::Comm::s3::Client admin(
      {bucket, "us-east-1", srv.endpoint(), FMI::Comm::s3::Credentials::from_env()});
  admin.create_bucket(in(10s));
  {
    auto ch = s3_channel(s3_config(bucket, srv.endpoint(), 10s, 5ms));
    ch->init({0, 1, "signed", 128});
    ch->set_list_page_size(2);
    std::uint32_t seq = 0;
    for (std::size_t n : {0u, 1u, 70001u}) {
      const auto k = key(Operation::send, seq++, 0, 0);
      ch->put(k, pattern(n, 1), 1, in(10s));
      std::vector<std::byte> out(n);
      ch->get(k, out, in(10s));
      EXPECT_EQ(out, pattern(n, 1));
    }
    for (std::uint32_t i = 0; i < 3; ++i)
      ch->put(key(Operation::bcast, 1, i), pattern(5, i), 2, in(10s));
    // moto (unlike AWS) signs '/' in query values unencoded: list a prefix without one.
    EXPECT_EQ(ch->list("signed", in(10s)).size(), 3u);
    std::vector<std::byte> out(4);
    EXPECT_THROW(ch->get(key(Operation::send, 99, 0, 0), out, in(50ms)), FMI::TimeoutError);
    ch->finalize();
    EXPECT_TRUE(admin.list_objects("signed", in(10s)).empty());
  }
  // A wrong secret is refused, and the error quotes S3's code.
  ::setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret", 1);
  FMI::Comm::s3::Client bad(
      {bucket, "us-east-1", srv.endpoint(), FMI::Comm::s3::Credentials::from_env()});
  try {
    bad.put_object("signed/x", {}, {}, in(10s));
    ADD_FAILURE() << "a request with a wrong secret was accepted";
  } catch (const FMI::ChannelError& e) {
    EXPECT_NE(std::string(e.what()).find("SignatureDoesNotMatch"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("HTTP 403"), std::string::npos) << e.what();
  }
  ::setenv("AWS_ACCESS_KEY_ID", "testing", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "testing", 1);
}

}  // namespace
}  // namespace fmitest

namespace fmitest {
namespace {

// moto closes every connection, so keep-alive is checked against a minimal
// HTTP/1.1 server that keeps them open (as AWS and MinIO do): every request of
// one client must then go over a single connection.
TEST(S3KeepAlive, OneClientReusesOneConnection) {
  const std::string script = "/tmp/fmi-keepalive-" + std::to_string(::getpid()) + ".py";
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(
        "import sys\n"
        "from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer\n"
        "store = {}\n"
        "class H(BaseHTTPRequestHandler):\n"
        "    protocol_version = 'HTTP/1.1'\n"
        "    def log_message(self, *a): pass\n"
        "    def reply(self, code, body=b''):\n"
        "        self.send_response(code)\n"
        "        self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers()\n"
        "        if self.command != 'HEAD': self.wfile.write(body)\n"
        "    def do_HEAD(self): self.reply(200)\n"
        "    def do_PUT(self):\n"
        "        n = int(self.headers.get('Content-Length', 0))\n"
        "        store[self.path] = self.rfile.read(n)\n"
        "        self.reply(200)\n"
        "    def do_POST(self): self.do_PUT()\n"
        "    def do_GET(self):\n"
        "        if self.path in store: self.reply(200, store[self.path])\n"
        "        else: self.reply(404, b'<Error><Code>NoSuchKey</Code></Error>')\n"
        "ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n",
        f);
    std::fclose(f);
  }
  MotoServer srv({}, {script, "{port}"});
  std::remove(script.c_str());
  FMI::Comm::s3::Client c({"bucket", "us-east-1", srv.endpoint(), {"ak", "sk", ""}});
  c.head_bucket(in(10s));
  std::vector<std::byte> out(3);
  for (int i = 0; i < 5; ++i) {
    c.put_object("k" + std::to_string(i), pattern(3, i), {}, in(10s));
    EXPECT_TRUE(c.get_object("k" + std::to_string(i), out, in(10s)).size_matches);
    EXPECT_FALSE(c.get_object("missing", out, in(10s)).found);
  }
  EXPECT_EQ(c.requests(), 16u);
  EXPECT_EQ(c.connections(), 1u);
}

}  // namespace
}  // namespace fmitest
