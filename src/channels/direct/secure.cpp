#include "channels/direct/secure.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>

#include "fmi/errors.h"

namespace FMI::Direct::secure {

namespace {

using Field = std::span<const std::uint8_t>;

[[noreturn]] void fail(const char* what) {
  FMI_THROW(ChannelError, "Direct encryption: ", what, " failed (OpenSSL)");
}

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

void put_field(std::vector<std::uint8_t>& b, Field f) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(std::uint8_t(f.size() >> s));
  b.insert(b.end(), f.begin(), f.end());
}
std::array<std::uint8_t, 4> be32(std::uint32_t v) {
  return {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v)};
}
std::array<std::uint8_t, 8> be64(std::uint64_t v) {
  std::array<std::uint8_t, 8> a;
  for (int i = 0; i < 8; ++i) a[i] = std::uint8_t(v >> (56 - 8 * i));
  return a;
}
Field lit(const char* s) { return {reinterpret_cast<const std::uint8_t*>(s), std::strlen(s)}; }

std::array<std::uint8_t, 32> transcript_hash(const Transcript& t) {
  std::vector<std::uint8_t> m;
  auto lo = be32(t.lower), hi = be32(t.higher);
  auto ls = be64(t.lower_session), hs = be64(t.higher_session);
  for (Field f : {lit("FMI direct v1"),
                  Field(reinterpret_cast<const std::uint8_t*>(t.comm.data()), t.comm.size()),
                  Field(lo), Field(hi), Field(ls), Field(hs), Field(t.lower_nonce),
                  Field(t.higher_nonce), Field(t.lower_share), Field(t.higher_share)})
    put_field(m, f);
  std::array<std::uint8_t, 32> h{};
  unsigned len = 0;
  if (!EVP_Digest(m.data(), m.size(), h.data(), &len, EVP_sha256(), nullptr)) fail("SHA-256");
  return h;
}

}  // namespace

KeyPair::KeyPair() {
  PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) <= 0 || EVP_PKEY_keygen(ctx.get(), &key_) <= 0)
    fail("X25519 key generation");
  std::size_t len = share_.size();
  if (EVP_PKEY_get_raw_public_key(key_, share_.data(), &len) <= 0 || len != share_.size()) {
    EVP_PKEY_free(key_);
    fail("X25519 public key");
  }
}

KeyPair::~KeyPair() { EVP_PKEY_free(key_); }

SessionKeys derive(const KeyPair& own, const Wire::proto::KeyShare& peer, const std::string& secret,
                   const Transcript& t) {
  std::unique_ptr<EVP_PKEY, PkeyFree> pub(
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer.data(), peer.size()));
  if (!pub) FMI_THROW(ChannelError, "Direct encryption: the peer's key share is not an X25519 key");
  std::array<std::uint8_t, 32> shared{};
  std::size_t slen = shared.size();
  PkeyCtx dctx(EVP_PKEY_CTX_new(own.pkey(), nullptr));
  if (!dctx || EVP_PKEY_derive_init(dctx.get()) <= 0 ||
      EVP_PKEY_derive_set_peer(dctx.get(), pub.get()) <= 0 ||
      EVP_PKEY_derive(dctx.get(), shared.data(), &slen) <= 0 || slen != shared.size())
    FMI_THROW(ChannelError,
              "Direct encryption: X25519 with the peer's key share failed "
              "(a low-order point?)");
  static const std::array<std::uint8_t, 32> zero{};
  if (CRYPTO_memcmp(shared.data(), zero.data(), zero.size()) == 0)
    FMI_THROW(ChannelError, "Direct encryption: the peer's key share gives an all-zero secret");

  SessionKeys k;
  k.th = transcript_hash(t);
  std::vector<std::uint8_t> info(lit("FMI direct keys").begin(), lit("FMI direct keys").end());
  info.insert(info.end(), k.th.begin(), k.th.end());
  std::array<std::uint8_t, 32 + 32 + 12 + 12 + 32> okm{};
  std::size_t olen = okm.size();
  PkeyCtx h(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  // An empty salt is HKDF's default (a block of zeros): the keys then rest on the
  // key exchange alone (docs/security.md, "without a secret").
  if (!h || EVP_PKEY_derive_init(h.get()) <= 0 ||
      EVP_PKEY_CTX_set_hkdf_md(h.get(), EVP_sha256()) <= 0 ||
      (!secret.empty() &&
       EVP_PKEY_CTX_set1_hkdf_salt(h.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                                   int(secret.size())) <= 0) ||
      EVP_PKEY_CTX_set1_hkdf_key(h.get(), shared.data(), int(shared.size())) <= 0 ||
      EVP_PKEY_CTX_add1_hkdf_info(h.get(), info.data(), int(info.size())) <= 0 ||
      EVP_PKEY_derive(h.get(), okm.data(), &olen) <= 0 || olen != okm.size())
    fail("HKDF-SHA256");
  OPENSSL_cleanse(shared.data(), shared.size());
  const std::uint8_t* p = okm.data();
  for (auto* a : {&k.key[0], &k.key[1]}) {
    std::memcpy(a->data(), p, 32);
    p += 32;
  }
  for (auto* a : {&k.iv[0], &k.iv[1]}) {
    std::memcpy(a->data(), p, 12);
    p += 12;
  }
  std::memcpy(k.confirm.data(), p, 32);
  OPENSSL_cleanse(okm.data(), okm.size());
  return k;
}

Wire::proto::Mac confirm_mac(const SessionKeys& k, std::uint32_t sender) {
  std::vector<std::uint8_t> m;
  auto s = be32(sender);
  for (Field f : {lit("FMI direct confirm"), Field(s), Field(k.th)}) put_field(m, f);
  Wire::proto::Mac out{};
  unsigned len = 0;
  if (!HMAC(EVP_sha256(), k.confirm.data(), int(k.confirm.size()), m.data(), m.size(), out.data(),
            &len) ||
      len != out.size())
    fail("HMAC-SHA256");
  return out;
}

Aead::Aead(const std::array<std::uint8_t, 32>& key, const std::array<std::uint8_t, 12>& iv)
    : iv_(iv) {
  // Fetched once per direction: the implicit fetch of EVP_aes_256_gcm() would look
  // the algorithm up again on every init. OpenSSL picks AES-NI/VAES code by itself.
  cipher_ = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  ctx_ = EVP_CIPHER_CTX_new();
  if (!cipher_ || !ctx_) {
    EVP_CIPHER_free(cipher_);
    EVP_CIPHER_CTX_free(ctx_);
    fail("AES-256-GCM");
  }
  // The key schedule is computed here, once; each record only sets its nonce.
  // Both directions use EVP_CipherInit_ex so one context can serve either.
  if (EVP_CipherInit_ex(ctx_, cipher_, nullptr, key.data(), nullptr, -1) <= 0) {
    EVP_CIPHER_free(cipher_);
    EVP_CIPHER_CTX_free(ctx_);
    fail("AES-256-GCM key setup");
  }
}

Aead::~Aead() {
  EVP_CIPHER_CTX_free(ctx_);
  EVP_CIPHER_free(cipher_);
}

void Aead::next_nonce(std::uint8_t* nonce) {
  // 2^64 records of one direction are never reached; wrapping would reuse a nonce.
  if (seq_ == ~std::uint64_t(0))
    FMI_THROW(ChannelError, "Direct encryption: sequence number exhausted");
  std::memcpy(nonce, iv_.data(), 12);
  for (int i = 0; i < 8; ++i) nonce[4 + i] ^= std::uint8_t(seq_ >> (56 - 8 * i));
  ++seq_;
}

void Aead::seal(const std::byte* aad, std::size_t aad_len, const std::byte* in, std::size_t n,
                std::byte* out, std::byte* tag) {
  std::uint8_t nonce[12];
  next_nonce(nonce);
  int len = 0;
  auto* o = reinterpret_cast<unsigned char*>(out);
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, 1) <= 0 ||
      EVP_CipherUpdate(ctx_, nullptr, &len, reinterpret_cast<const unsigned char*>(aad),
                       int(aad_len)) <= 0 ||
      (n > 0 &&
       EVP_CipherUpdate(ctx_, o, &len, reinterpret_cast<const unsigned char*>(in), int(n)) <= 0) ||
      EVP_CipherFinal_ex(ctx_, o + n, &len) <= 0 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, int(kTag), tag) <= 0)
    fail("AES-256-GCM seal");
}

bool Aead::open(const std::byte* aad, std::size_t aad_len, std::byte* buf, std::size_t n,
                const std::byte* tag) {
  std::uint8_t nonce[12];
  next_nonce(nonce);
  int len = 0;
  auto* b = reinterpret_cast<unsigned char*>(buf);
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, 0) <= 0 ||
      EVP_CipherUpdate(ctx_, nullptr, &len, reinterpret_cast<const unsigned char*>(aad),
                       int(aad_len)) <= 0 ||
      (n > 0 && EVP_CipherUpdate(ctx_, b, &len, b, int(n)) <= 0) ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, int(kTag), const_cast<std::byte*>(tag)) <= 0)
    fail("AES-256-GCM open");
  return EVP_CipherFinal_ex(ctx_, b + n, &len) > 0;
}

Link::Link(const SessionKeys& k, bool lower)
    : tx(k.key[lower ? 0 : 1], k.iv[lower ? 0 : 1]),
      rx(k.key[lower ? 1 : 0], k.iv[lower ? 1 : 0]),
      txbuf(kHeader + kRecord + kTag) {}

void BodyReader::start(const std::byte* hdr, std::byte* data, std::size_t size) {
  hdr_ = hdr;
  data_ = data;
  size_ = size;
  done_ = 0;
}

int BodyReader::iov(iovec* out) const {
  const std::size_t i = record(), within = done_ - i * (kRecord + kTag);
  const std::size_t n = record_len(size_, i);
  int k = 0;
  if (within < n) out[k++] = {data_ + i * kRecord + within, n - within};
  std::size_t t = within > n ? within - n : 0;
  out[k++] = {const_cast<std::byte*>(tag_) + t, kTag - t};
  return k;
}

bool BodyReader::advance(Aead& rx, std::size_t n) {
  const std::size_t i = record();
  done_ += n;
  const std::size_t end = i * (kRecord + kTag) + record_len(size_, i) + kTag;
  if (done_ < end) return true;
  return rx.open(hdr_, kHeader, data_ + i * kRecord, record_len(size_, i), tag_);
}

void BodyReader::spill(std::size_t n, std::vector<std::byte>& out) const {
  iovec v[2];
  int k = iov(v);
  for (int j = 0; j < k && n > 0; ++j) {
    std::size_t m = std::min(n, v[j].iov_len);
    auto* p = static_cast<std::byte*>(v[j].iov_base);
    out.insert(out.end(), p, p + m);
    n -= m;
  }
}

}  // namespace FMI::Direct::secure
