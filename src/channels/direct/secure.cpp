#include "channels/direct/secure.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#ifdef FMI_WITH_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <span>
#include <string_view>

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
  const std::uint8_t lc[1] = {t.lower_cipher}, hc[1] = {t.higher_cipher};
  for (Field f :
       {lit("FMI direct v2"),
        Field(reinterpret_cast<const std::uint8_t*>(t.comm.data()), t.comm.size()), Field(lo),
        Field(hi), Field(ls), Field(hs), Field(t.lower_nonce), Field(t.higher_nonce),
        Field(t.lower_share), Field(t.higher_share), Field(lc), Field(hc)})
    put_field(m, f);
  std::array<std::uint8_t, 32> h{};
  unsigned len = 0;
  if (!EVP_Digest(m.data(), m.size(), h.data(), &len, EVP_sha256(), nullptr)) fail("SHA-256");
  return h;
}

constexpr std::uint8_t kForced = 0x80;

// Whether OpenSSL's AES-GCM runs on AES instructions here (and carry-less
// multiplication for GHASH): without them ChaCha20-Poly1305 is several times faster.
bool has_aes_instructions() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul");
#elif defined(__aarch64__)
  const unsigned long hw = ::getauxval(AT_HWCAP);
  return (hw & HWCAP_AES) && (hw & HWCAP_PMULL);
#else
  return false;
#endif
}

}  // namespace

const char* name(Cipher c) {
  return c == Cipher::chacha20_poly1305 ? "chacha20-poly1305" : "aes-256-gcm";
}

std::uint8_t local_cipher() {
  // FMI_DIRECT_AES picks the code of AES-256-GCM (secure.h Impl); checked here with
  // the cipher, before any connection, so that a typo does not go unnoticed.
  if (const char* a = std::getenv("FMI_DIRECT_AES");
      a && *a && std::strcmp(a, "openssl") != 0 && std::strcmp(a, "ipsec-mb") != 0)
    FMI_THROW(ConfigError, "FMI_DIRECT_AES='", a,
              "' must be openssl or ipsec-mb (or unset: ipsec-mb where the CPU has VAES)");
  const char* v = std::getenv("FMI_DIRECT_CIPHER");
  if (!v || !*v)
    return std::uint8_t(has_aes_instructions() ? Cipher::aes_256_gcm : Cipher::chacha20_poly1305);
  for (Cipher c : {Cipher::aes_256_gcm, Cipher::chacha20_poly1305})
    if (std::strcmp(v, name(c)) == 0) return std::uint8_t(c) | kForced;
  FMI_THROW(ConfigError, "FMI_DIRECT_CIPHER='", v,
            "' must be aes-256-gcm or chacha20-poly1305 (or unset: chosen by the CPU)");
}

std::optional<Cipher> agree(std::uint8_t own, std::uint8_t peer, std::string& why) {
  auto known = [](std::uint8_t b) {
    const std::uint8_t c = b & ~kForced;
    return c == std::uint8_t(Cipher::aes_256_gcm) || c == std::uint8_t(Cipher::chacha20_poly1305);
  };
  if (!known(peer)) {
    why = "it asks for an unknown cipher (byte " + std::to_string(unsigned(peer)) + ")";
    return std::nullopt;
  }
  const auto mine = Cipher(own & ~kForced), theirs = Cipher(peer & ~kForced);
  const bool mine_forced = own & kForced, theirs_forced = peer & kForced;
  if (mine == theirs) return mine;
  if (mine_forced && theirs_forced) {
    why = std::string("it forces ") + name(theirs) + " and this peer " + name(mine) +
          " (FMI_DIRECT_CIPHER must be the same for every function, or unset)";
    return std::nullopt;
  }
  if (mine_forced) return mine;
  if (theirs_forced) return theirs;
  return Cipher::chacha20_poly1305;
}

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

#ifdef FMI_WITH_IPSEC_MB
namespace {
// One ipsec-mb manager per process, made on first use: its direct GCM functions keep
// all state in the key and context the caller passes (the manager only holds the
// code chosen for this CPU), so every connection and thread shares it. Null when the
// CPU lacks VAES/VPCLMULQDQ (then OpenSSL's AES-NI code is as fast) or
// FMI_DIRECT_AES=openssl asks for OpenSSL. Never freed: a connection may still be
// sealing in another thread while the process exits.
IMB_MGR* vaes_manager() {
  static IMB_MGR* const mgr = []() -> IMB_MGR* {
    const char* e = std::getenv("FMI_DIRECT_AES");
    if (e && std::string_view(e) == "openssl") return nullptr;
    IMB_MGR* m = alloc_mb_mgr(0);
    if (!m) return nullptr;
    init_mb_mgr_auto(m, nullptr);
    const std::uint64_t need = IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ;
    if (imb_get_errno(m) != 0 || m->used_arch != IMB_ARCH_AVX512 || (m->features & need) != need) {
      free_mb_mgr(m);
      return nullptr;
    }
    return m;
  }();
  return mgr;
}
}  // namespace

struct Aead::Vaes {
  gcm_key_data key;  // the expanded key and GHASH powers (aligned by its type)
  gcm_context_data ctx;
};
#else
struct Aead::Vaes {};
#endif

Aead::Aead(Cipher c, const std::array<std::uint8_t, 32>& key,
           const std::array<std::uint8_t, 12>& iv, Impl impl)
    : iv_(iv) {
#ifdef FMI_WITH_IPSEC_MB
  if (c == Cipher::aes_256_gcm && impl == Impl::fastest && vaes_manager()) {
    vaes_ = std::make_unique<Vaes>();
    IMB_AES256_GCM_PRE(vaes_manager(), key.data(), &vaes_->key);
    return;
  }
#else
  (void)impl;
#endif
  // Fetched once per direction: the implicit fetch of EVP_aes_256_gcm() would look
  // the algorithm up again on every init. OpenSSL picks AES-NI/VAES code by itself.
  cipher_ = EVP_CIPHER_fetch(
      nullptr, c == Cipher::chacha20_poly1305 ? "ChaCha20-Poly1305" : "AES-256-GCM", nullptr);
  ctx_ = EVP_CIPHER_CTX_new();
  if (!cipher_ || !ctx_) {
    EVP_CIPHER_free(cipher_);
    EVP_CIPHER_CTX_free(ctx_);
    fail(name(c));
  }
  // The key schedule is computed here, once; each record only sets its nonce.
  // Both directions use EVP_CipherInit_ex so one context can serve either.
  if (EVP_CipherInit_ex(ctx_, cipher_, nullptr, key.data(), nullptr, -1) <= 0) {
    EVP_CIPHER_free(cipher_);
    EVP_CIPHER_CTX_free(ctx_);
    fail("AEAD key setup");
  }
}

Aead::~Aead() {
  if (vaes_) OPENSSL_cleanse(vaes_.get(), sizeof *vaes_);
  EVP_CIPHER_CTX_free(ctx_);
  EVP_CIPHER_free(cipher_);
}

const char* Aead::impl() const { return vaes_ ? "ipsec-mb" : "OpenSSL"; }

void Aead::next_nonce(std::uint8_t* nonce) {
  // 2^64 records of one direction are never reached; wrapping would reuse a nonce.
  if (seq_ == ~std::uint64_t(0))
    FMI_THROW(ChannelError, "Direct encryption: sequence number exhausted");
  std::memcpy(nonce, iv_.data(), 12);
  for (int i = 0; i < 8; ++i) nonce[4 + i] ^= std::uint8_t(seq_ >> (56 - 8 * i));
  ++seq_;
}

void Aead::begin(const std::byte* aad, std::size_t aad_len, bool sealing) {
  std::uint8_t nonce[12];
  next_nonce(nonce);
#ifdef FMI_WITH_IPSEC_MB
  if (vaes_) {
    sealing_ = sealing;
    IMB_AES256_GCM_INIT(vaes_manager(), &vaes_->key, &vaes_->ctx, nonce,
                        reinterpret_cast<const std::uint8_t*>(aad), aad_len);
    return;
  }
#endif
  int len = 0;
  if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, nonce, sealing ? 1 : 0) <= 0 ||
      EVP_CipherUpdate(ctx_, nullptr, &len, reinterpret_cast<const unsigned char*>(aad),
                       int(aad_len)) <= 0)
    fail("AEAD record start");
}

void Aead::update(const std::byte* in, std::size_t n, std::byte* out) {
#ifdef FMI_WITH_IPSEC_MB
  if (vaes_) {
    auto* o = reinterpret_cast<std::uint8_t*>(out);
    auto* i = reinterpret_cast<const std::uint8_t*>(in);
    if (n == 0) return;
    if (sealing_)
      IMB_AES256_GCM_ENC_UPDATE(vaes_manager(), &vaes_->key, &vaes_->ctx, o, i, n);
    else
      IMB_AES256_GCM_DEC_UPDATE(vaes_manager(), &vaes_->key, &vaes_->ctx, o, i, n);
    return;
  }
#endif
  int len = 0;
  if (n > 0 && EVP_CipherUpdate(ctx_, reinterpret_cast<unsigned char*>(out), &len,
                                reinterpret_cast<const unsigned char*>(in), int(n)) <= 0)
    fail("AEAD update");
}

void Aead::seal_final(std::byte* tag) {
#ifdef FMI_WITH_IPSEC_MB
  if (vaes_) {
    IMB_AES256_GCM_ENC_FINALIZE(vaes_manager(), &vaes_->key, &vaes_->ctx,
                                reinterpret_cast<std::uint8_t*>(tag), kTag);
    return;
  }
#endif
  // Both ciphers are stream ciphers: the final call writes no bytes, only the tag.
  unsigned char none[32];
  int len = 0;
  if (EVP_CipherFinal_ex(ctx_, none, &len) <= 0 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, int(kTag), tag) <= 0)
    fail("AEAD seal");
}

bool Aead::open_final(const std::byte* tag) {
#ifdef FMI_WITH_IPSEC_MB
  if (vaes_) {
    std::uint8_t want[kTag];
    IMB_AES256_GCM_DEC_FINALIZE(vaes_manager(), &vaes_->key, &vaes_->ctx, want, kTag);
    return CRYPTO_memcmp(want, tag, kTag) == 0;  // in constant time
  }
#endif
  unsigned char none[32];
  int len = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, int(kTag), const_cast<std::byte*>(tag)) <= 0)
    fail("AEAD open");
  return EVP_CipherFinal_ex(ctx_, none, &len) > 0;
}

void Aead::seal(const std::byte* aad, std::size_t aad_len, const std::byte* in, std::size_t n,
                std::byte* out, std::byte* tag) {
  begin(aad, aad_len, true);
  update(in, n, out);
  seal_final(tag);
}

bool Aead::open(const std::byte* aad, std::size_t aad_len, std::byte* buf, std::size_t n,
                const std::byte* tag) {
  begin(aad, aad_len, false);
  update(buf, n, buf);
  return open_final(tag);
}

Link::Link(const SessionKeys& k, bool lower, Impl impl)
    : tx(k.cipher, k.key[lower ? 0 : 1], k.iv[lower ? 0 : 1], impl),
      rx(k.cipher, k.key[lower ? 1 : 0], k.iv[lower ? 1 : 0], impl),
      txbuf(new std::byte[kTxBuf]) {}

void BodyWriter::start(const std::byte* hdr, const std::byte* data, std::size_t size) {
  hdr_ = hdr;
  data_ = data;
  size_ = size;
  record_ = within_ = 0;
  begun_ = false;
}

std::size_t BodyWriter::produce(Aead& tx, std::byte* out, std::size_t room, std::size_t want) {
  if (done() || room < kTag) return 0;
  const std::size_t len = record_len(size_, record_);
  const std::size_t n = std::min({len - within_, want, room - kTag});
  if (n == 0 && within_ < len) return 0;
  if (!begun_) {
    tx.begin(hdr_, kHeader, true);
    begun_ = true;
  }
  tx.update(data_ + record_ * kRecord + within_, n, out);
  within_ += n;
  if (within_ < len) return n;
  tx.seal_final(out + n);
  ++record_;
  within_ = 0;
  begun_ = false;
  return n + kTag;
}

void BodyReader::start(const std::byte* hdr, std::byte* data, std::size_t size) {
  hdr_ = hdr;
  data_ = data;
  size_ = size;
  done_ = 0;
  begun_ = false;
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
  const std::size_t i = record(), within = done_ - i * (kRecord + kTag);
  const std::size_t len = record_len(size_, i);
  if (!begun_) {
    rx.begin(hdr_, kHeader, false);
    begun_ = true;
  }
  // Decrypted while it is still in the cache, and while the next bytes are on the
  // way; the tag of the record is checked when it is in (iov() ends there).
  if (within < len) {
    std::byte* p = data_ + i * kRecord + within;
    rx.update(p, std::min(n, len - within), p);
  }
  done_ += n;
  if (done_ < i * (kRecord + kTag) + len + kTag) return true;
  begun_ = false;
  return rx.open_final(tag_);
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
