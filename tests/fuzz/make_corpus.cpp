// Writes the seed corpus of rendezvous_fuzz: one valid frame of every message type
// (with and without the optional authentication fields), each prefixed with the
// chunk-size byte the fuzz target reads first.
//
//   make_corpus OUTPUT_DIR      (scripts/fuzz.sh runs it; the result is committed
//                                in tests/fuzz/corpus/rendezvous/)
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "wire/protocol.h"

namespace proto = FMI::Wire::proto;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  proto::Endpoint v4;
  v4.addr = {10, 0, 0, 7};
  v4.port = 40000;
  proto::Endpoint v6;
  v6.v6 = true;
  v6.addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  v6.port = 10000;
  proto::Proof proof;
  for (std::size_t i = 0; i < proof.nonce.size(); ++i) {
    proof.nonce[i] = std::uint8_t(i);
    proof.mac[i] = std::uint8_t(0xff - i);
  }
  proto::Nonce nonce = proof.nonce;
  proto::Table table;
  table.peers = {{v4, v4, 1}, {v6, v6, 2}, {v4, v6, 0xffffffffffffffffULL}};

  std::vector<std::pair<std::string, proto::Message>> seeds = {
      {"register", proto::Register{"comm", 1, 4, 42, v4}},
      {"register_v6", proto::Register{"c", 0, 1, 7, v6}},
      {"register_auth", proto::Register{"comm", 3, 4, 42, v4, proof}},
      {"registered", proto::Registered{v4}},
      {"registered_v6", proto::Registered{v6}},
      {"table", table},
      {"error", proto::ErrorMsg{proto::ErrorCode::auth_failed, "authentication failed"}},
      {"relay", proto::Relay{"comm", 0, 1, 5, 6}},
      {"relay_auth", proto::Relay{"comm", 2, 1, 5, 6, proof}},
      {"relay_ready", proto::RelayReady{}},
      {"challenge", proto::Challenge{false, {}}},
      {"challenge_auth", proto::Challenge{true, nonce}},
      {"hello", proto::Hello{"comm", 2, 99, false, nonce}},
      {"hello_auth", proto::Hello{"comm", 2, 99, true, nonce}},
      {"hello_encrypted", proto::Hello{"comm", 2, 99, true, nonce, proto::KeyShare{7}}},
      {"decide_accept", proto::Decide{true}},
      {"decide_reject", proto::Decide{false}},
      {"proof", proto::PeerProof{proof.mac}},
  };
  std::vector<std::byte> all;
  for (const auto& [name, m] : seeds) {
    auto frame = proto::encode(m);
    std::ofstream f(std::string(argv[1]) + "/" + name, std::ios::binary);
    char chunk = 7;  // fuzz input byte 0: chunk size of the streaming mode
    f.write(&chunk, 1);
    f.write(reinterpret_cast<const char*>(frame.data()), std::streamsize(frame.size()));
    all.insert(all.end(), frame.begin(), frame.end());
  }
  // A whole handshake as one stream (several frames back to back).
  std::ofstream f(std::string(argv[1]) + "/stream_all", std::ios::binary);
  char chunk = 3;
  f.write(&chunk, 1);
  f.write(reinterpret_cast<const char*>(all.data()), std::streamsize(all.size()));
  return 0;
}
