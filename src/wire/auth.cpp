#include "wire/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <initializer_list>
#include <span>
#include <vector>

#include "fmi/errors.h"

namespace FMI::Wire::auth {

namespace {

using Field = std::span<const std::uint8_t>;

void put_u32(std::vector<std::uint8_t>& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(std::uint8_t(v >> s));
}

std::array<std::uint8_t, 4> be32(std::uint32_t v) {
  return {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v)};
}
std::array<std::uint8_t, 8> be64(std::uint64_t v) {
  std::array<std::uint8_t, 8> a;
  for (int i = 0; i < 8; ++i) a[i] = std::uint8_t(v >> (56 - 8 * i));
  return a;
}
Field str(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

proto::Mac mac(const std::string& secret, const char* label, std::initializer_list<Field> fields) {
  std::vector<std::uint8_t> msg = {'F', 'M', 'I', '1'};
  std::string l(label);
  put_u32(msg, std::uint32_t(l.size()));
  msg.insert(msg.end(), l.begin(), l.end());
  for (Field f : fields) {
    put_u32(msg, std::uint32_t(f.size()));
    msg.insert(msg.end(), f.begin(), f.end());
  }
  proto::Mac out{};
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), int(secret.size()), msg.data(), msg.size(), out.data(),
            &len) ||
      len != out.size())
    FMI_THROW(ChannelError, "Direct: HMAC-SHA256 failed (OpenSSL)");
  return out;
}

}  // namespace

void check_secret(const std::string& secret, const std::string& source) {
  if (!secret.empty() && secret.size() < kMinSecret)
    FMI_THROW(ConfigError, "the shared secret from ", source, " is ", secret.size(),
              " bytes; it must be at least ", kMinSecret,
              " bytes (or empty for no authentication)");
}

std::string resolve_secret(const std::string& configured) {
  if (const char* env = std::getenv("FMI_SECRET"); env && *env) {
    std::string s(env);
    check_secret(s, "the environment variable FMI_SECRET");
    return s;
  }
  check_secret(configured, "backends.Direct.secret");
  return configured;
}

proto::Nonce random_nonce() {
  proto::Nonce n{};
  if (RAND_bytes(n.data(), int(n.size())) != 1)
    FMI_THROW(ChannelError,
              "Direct: no random bytes for an authentication nonce (OpenSSL RAND_bytes)");
  return n;
}

bool equal(const proto::Mac& a, const proto::Mac& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

proto::Mac register_mac(const std::string& secret, const proto::Register& r,
                        const proto::Nonce& ns) {
  auto id = be32(r.peer_id), n = be32(r.num_peers);
  auto sess = be64(r.session);
  // The private endpoint is covered too: it is what the others will connect to.
  std::array<std::uint8_t, 19> ep{};
  ep[0] = r.private_ep.v6 ? 6 : 4;
  std::copy(r.private_ep.addr.begin(), r.private_ep.addr.end(), ep.begin() + 1);
  ep[17] = std::uint8_t(r.private_ep.port >> 8);
  ep[18] = std::uint8_t(r.private_ep.port);
  return mac(secret, "register",
             {str(r.comm), id, n, sess, ep, ns, r.proof ? Field(r.proof->nonce) : Field()});
}

proto::Mac relay_mac(const std::string& secret, const proto::Relay& r, const proto::Nonce& ns) {
  auto from = be32(r.from), to = be32(r.to);
  auto fs = be64(r.from_session), ts = be64(r.to_session);
  return mac(secret, "relay",
             {str(r.comm), from, to, fs, ts, ns, r.proof ? Field(r.proof->nonce) : Field()});
}

proto::Mac peer_mac(const std::string& secret, const std::string& comm, std::uint32_t sender,
                    std::uint32_t receiver, std::uint64_t sender_session,
                    std::uint64_t receiver_session, const proto::Nonce& sender_nonce,
                    const proto::Nonce& receiver_nonce) {
  auto s = be32(sender), r = be32(receiver);
  auto ss = be64(sender_session), rs = be64(receiver_session);
  return mac(secret, "peer", {str(comm), s, r, ss, rs, sender_nonce, receiver_nonce});
}

}  // namespace FMI::Wire::auth
