// The Direct channel: TCP connections between functions, opened by hole punching
// through the rendezvous server (mesh.h). See docs/direct.md.
//
// Each message on a connection is a 16-byte header (tag u64, payload length u64,
// both big-endian) followed by the payload. The receiver knows what it expects and
// checks both fields, so a peer that sends another operation or another size is
// reported (PeerError naming both) instead of silently corrupting the stream.
// With encryption (default) the payload travels as sealed records after the
// header (channels/direct/secure.h).
#pragma once

#include <sys/uio.h>

#include <memory>
#include <vector>

#include "channels/common/tag_matcher.h"
#include "channels/direct/config.h"
#include "channels/direct/mesh.h"
#include "fmi/channel.h"

namespace FMI::Comm {

class DirectChannel final : public PeerToPeerChannel {
 public:
  /// `cfg` holds checked values (descriptor.cpp checks them).
  explicit DirectChannel(DirectConfig cfg);
  ~DirectChannel() override;

  void init(const ChannelContext& ctx) override;
  void finalize() noexcept override;
  std::chrono::milliseconds max_timeout() const override { return cfg_.max_timeout; }

  void send(Utils::peer_num dest, ConstBytes data, Tag tag, Utils::Deadline deadline) override;
  void recv(Utils::peer_num src, Bytes out, Tag tag, Utils::Deadline deadline) override;
  void sendrecv(Utils::peer_num dest, ConstBytes data, Utils::peer_num src, Bytes out, Tag tag,
                Utils::Deadline deadline) override;
  void connect_all(Utils::Deadline deadline) override;

  /// The local endpoint registered with the server (tests, logs).
  std::string local_endpoint() const;
  /// How many other peers this channel has an open connection to (tests, logs).
  unsigned connected_peers() const;

  struct Transfer;

 private:
  void check_peer(Utils::peer_num p, const char* op) const;
  void open_mesh_for(Tag tag, Utils::Deadline deadline);
  void ensure(std::initializer_list<Utils::peer_num> peers, Utils::Deadline deadline,
              const char* op);
  bool step(Transfer& t);
  [[noreturn]] void lose(Utils::peer_num peer, const std::string& why, const char* hint);
  void run(std::span<Transfer> ts, Utils::Deadline deadline, const char* op);
  void self_recv(Bytes out, Tag tag);
  ssize_t read_stream(Utils::peer_num peer, int fd, struct iovec* iov, int n);
  void check_park_budget(const Transfer& t, Tag got, std::uint64_t len);
  void start_parking(Transfer& t, Tag got, std::uint64_t len);
  void finish_parking_if_done(Transfer& t);
  bool park_step(Transfer& t);
  bool take_parked(Utils::peer_num src, Bytes out, Tag tag);
  void prepare(Transfer& t);
  [[noreturn]] void mismatch(Transfer& t, Tag got, std::uint64_t len);
  // Encrypted connections (channels/direct/secure.h).
  bool sealed_send(Transfer& t);
  bool sealed_recv(Transfer& t);
  bool sealed_park_step(Transfer& t);
  [[noreturn]] void io_failed(Transfer& t, ssize_t r);
  [[noreturn]] void forged(Utils::peer_num peer, Tag tag, std::size_t record);

  DirectConfig cfg_;
  std::chrono::microseconds spin_;  // busy-retry before blocking in poll
  Direct::RelayMode relay_;
  ChannelContext ctx_;
  bool initialised_ = false;
  std::unique_ptr<Direct::Mesh> mesh_;
  bool meshed_ = false;  // the full mesh was opened (before the first collective)
  // Messages that arrived while a receive waited for another tag, and messages a
  // peer sent to itself (source = own id), matched later by (source, tag).
  TagMatcher matcher_;
  // Per source peer: stream bytes read past the end of a message that was parked.
  std::vector<std::vector<std::byte>> pending_;
  std::vector<pollfd> fds_;  // reused across calls
};

}  // namespace FMI::Comm
