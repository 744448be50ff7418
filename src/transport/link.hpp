// One connection carrying frames: a reader coroutine that parses every complete frame in its
// buffer, a writer coroutine that sends what is queued in bounded gathered writes (the control
// lane, then the ordered lane, then the sources' lanes in fair turns), and heartbeats. What frame
// handlers queue is written when the reader's delivery ends (write_batch), the writer finishing
// what the socket did not take.
// Cut-through: a frame pushed during a delivery that lies in the delivering reader's buffer (the
// batch says which memory stays put until it ends) is not copied when this link's queues are all
// empty and its writer idle: the link keeps a span to it (borrows it), and the batch's write sends
// it from there. What that write does not take is copied then, as the write in progress. Anything
// that would queue behind borrowed frames, or write without the batch, copies them into their
// lanes first (settle_borrowed), so that the queue's order and its counts are as if they had been
// copied at once. See push() and docs/architecture.md.
// Threading: a link lives on its stream's executor (one thread); every member runs there.
#pragma once

#include <array>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "base/byte_buffer.hpp"
#include "base/clock_grid.hpp"
#include "base/endian.hpp"
#include "base/log_throttle.hpp"
#include "transport/byte_budget.hpp"
#include "transport/close_reason.hpp"
#include "transport/fair_lanes.hpp"
#include "transport/frame_sink.hpp"
#include "transport/local_health.hpp"
#include "transport/path_loss.hpp"
#include "transport/protocol_log.hpp"
#include "transport/stream.hpp"
#include "transport/write_batch.hpp"
#include "wire/control.hpp"
#include "wire/frame.hpp"

namespace galaxies::transport {

struct link_settings {
  std::uint32_t max_frame_size = limits::default_max_frame_size;
  std::size_t max_queue_bytes = limits::default_max_queue_bytes;
  std::size_t read_buffer_size = 64 * 1024;
  // After this many frames delivered from one read, the reader lets the rest of the loop run
  // (timers, other connections) before it goes on: one busy peer cannot starve heartbeats.
  std::size_t max_frames_per_turn = 1024;
  // A write takes at most this many bytes of data (whole frames or, with fair share, a slice of a
  // larger one; without it, one larger frame goes alone), so that control frames queued meanwhile
  // wait for one such write at most.
  std::size_t max_write_chunk = 256 * 1024;
  // Whether frames enqueued for a source lane get that lane (fair_lanes.hpp), and the bytes a
  // lane may send per turn. Off: every lane is the ordered lane.
  bool fair_share = false;
  std::size_t fair_quantum = 16 * 1024;
  // With fair share, a frame larger than this that does not fit its lane's turns (or a write) goes
  // in slices, as `fragment` frames (0: never). Every link reassembles what it receives.
  std::size_t fragment_above = 64 * 1024;
  // Shared by every link of a process, bounding all their queues together; null: no global bound.
  std::shared_ptr<byte_budget> budget = nullptr;
  // When set, the link's warnings (its close, bad input) go through it: a stranger, who can open
  // connections at will, must not be able to flood the log. Shared by all such links.
  std::shared_ptr<base::log_throttle> throttle = nullptr;
  // How late this process's loop runs, judged before blaming a silent peer (local_health.hpp).
  // Shared by every link of a process; null: the link keeps its own.
  std::shared_ptr<local_health> health = nullptr;
  std::string name{};  // for logs: who is at the other end
};

// Counted by the link itself: bytes as the stream took and gave them (TLS records excluded),
// frames as delivered (heartbeats and reassembled fragments each count one; slices do not).
struct link_traffic {
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t frames_in = 0;
  // Bytes of the frames handed to push() and enqueue(), and how many of them were copied into a
  // queue (the rest went to the stream from where they lay: cut-through). Each byte is copied at
  // most once: at once, when the queue was busy, or for the part a write did not take.
  std::uint64_t bytes_queued = 0;
  std::uint64_t bytes_copied = 0;
};

// Whether a stream needs a handshake before frames flow (TLS); test streams have none.
template <class Stream>
concept handshaking_stream = requires(Stream& s) {
  s.is_tls();
};

// Whether a stream can write without waiting (see stream::try_write_some): its link then writes
// in the reader's turn (write_batch); otherwise every write goes through async_write.
template <class Stream>
concept directly_writable_stream = requires(Stream& s, std::span<const asio::const_buffer> buffers,
                                            std::error_code& ec) {
  { s.try_write_some(buffers, ec) } -> std::same_as<std::size_t>;
};

template <class Stream>
class basic_link : public std::enable_shared_from_this<basic_link<Stream>> {
 public:
  using clock = std::chrono::steady_clock;

  basic_link(Stream stream, link_settings settings)
      : stream_(std::move(stream)),
        settings_(std::move(settings)),
        parser_(settings_.max_frame_size),
        lanes_(settings_.fair_quantum, settings_.fair_share ? settings_.fragment_above : 0),
        wake_(stream_.get_executor()),
        resume_(stream_.get_executor()),
        heartbeat_timer_(stream_.get_executor()),
        expiry_(stream_.get_executor()),
        read_buffer_(settings_.read_buffer_size) {
    if (!settings_.health) settings_.health = std::make_shared<local_health>();
  }

  basic_link(const basic_link&) = delete;
  basic_link& operator=(const basic_link&) = delete;

  // Starts reading and writing; frames and the close go to `sink`, which must outlive the link's
  // on_closed call (or call detach() first).
  // A TLS stream shakes hands first; frames queued meanwhile go out after it.
  void start(frame_sink* sink) {
    sink_ = sink;
    last_read_ = last_write_ = clock::now();
    spawn(run(this->shared_from_this()));
  }

  // The sink goes away: no further callbacks.
  void detach() noexcept { sink_ = nullptr; }

  // Producers append whole frames to outbound() (the wire encoders do) and then call flush().
  // Check has_room() first: the queue is bounded. This is the ordered lane: with fair lanes on,
  // each write sends all of it that it can before any source lane's data, so a frame here
  // overtakes the source lanes (announce a node here before its frames can follow).
  std::vector<std::byte>& outbound() {
    settle_borrowed();  // whatever is appended here follows them
    return pending_;
  }
  // Changes whenever what outbound() holds is handed to a write (or dropped). A producer that
  // remembers where its last frame lies there may still extend that frame while this stays the
  // same and nothing was appended after it (send_batch, protocol.md §4.2).
  std::uint64_t outbound_round() const noexcept { return outbound_rounds_; }
  // Room under both bounds: this connection's own and the process-wide budget.
  bool has_room(std::size_t bytes) const noexcept {
    const std::size_t queued = queued_bytes();
    if (queued + bytes > settings_.max_queue_bytes) return false;
    return !settings_.budget || settings_.budget->fits(queued + bytes, charged_);
  }
  // Inside a reader's delivery (write_batch), the write is made when the delivery ends; else the
  // writer is woken and writes after the handlers ready now (which may queue more).
  void flush() {
    recharge();
    if (!writer_idle_ || batched_) return;
    if constexpr (directly_writable_stream<Stream>) {
      if (auto* batch = write_batch::current(); batch && batch->add(this, &write_batched)) {
        batched_ = true;
        return;
      }
    }
    wake_.cancel();
  }

  // Queues complete frames in `lane` (0: the ordered lane). Order is kept within a lane; lanes
  // share the link in fair turns (fair_lanes.hpp). The frames are copied, unless they can be
  // written from where they lie (borrow()). False (nothing queued) when closed or full.
  bool enqueue(std::span<const std::byte> frames, fair_lanes::lane_key lane = 0) {
    if (!writable() || !has_room(frames.size())) return false;
    push(frames, lane);
    return true;
  }
  // enqueue() for a caller that has checked writable() and has_room() itself.
  void push(std::span<const std::byte> frames, fair_lanes::lane_key lane = 0) {
    traffic_.bytes_queued += frames.size();
    if (!borrow(frames, lane)) {
      settle_borrowed();
      copy_in(frames, lane);
    }
    flush();
  }
  // Moves what `lane` holds, in order, to the end of the ordered lane: what is enqueued there next
  // follows the lane's frames (a source's departure after its last frames).
  void merge_into_ordered(fair_lanes::lane_key lane) {
    settle_borrowed();
    if (lanes_.move_out(lane, pending_) > 0) flush();
  }
  // Frames written after every other lane has drained, and only then (a goodbye).
  std::vector<std::byte>& final_outbound() {
    settle_borrowed();
    return final_;
  }

  // The control lane: frames that must not wait behind queued data (credit grants, a master's
  // answers). Each write sends what this lane holds first, then the next chunk of data; order
  // within each lane is kept, not between them. The caller has checked has_room().
  std::vector<std::byte>& control_outbound() noexcept { return control_; }
  void enqueue_control(std::span<const std::byte> frame) {
    if (!writable()) return;
    control_.insert(control_.end(), frame.begin(), frame.end());
    flush();
  }

  // Backpressure on the other side: while paused (each pause needs its resume), the link delivers
  // no frame and reads nothing more; what it has read waits in its buffer, and the other side's
  // writes back up into its own queue. A peer kept waiting is not thereby silent: bytes waiting in
  // the socket count as its signs of life (heartbeat_loop).
  void pause_reading() noexcept { ++pauses_; }
  void resume_reading() {
    if (pauses_ > 0 && --pauses_ == 0) resume_.cancel();
  }
  bool reading_paused() const noexcept { return pauses_ > 0; }
  // on_drained() once, the next time the outbound queue falls to `bytes` or below.
  void notify_drained_below(std::size_t bytes) noexcept { drain_mark_ = bytes; }

  bool is_open() const noexcept { return open_; }
  // The lateness the peer's heartbeats reported of its own loop, decayed as ours (§8.1).
  clock::duration reported_lateness(clock::time_point now) const noexcept {
    return settings_.health->peer_excess(peer_lateness_, now);
  }
  bool writable() const noexcept { return open_ && !closing_ && !write_ended_; }
  std::size_t queued_bytes() const noexcept {
    return pending_.size() + control_.size() + writing_.size() - written_ +
           writing_control_.size() + lanes_.queued_bytes() + final_.size() + borrowed_bytes_;
  }
  // How long the write in progress has made no progress (zero when nothing is being written):
  // a peer that stops reading shows here, even while it keeps sending.
  clock::duration write_stalled_for(clock::time_point now) const noexcept {
    return writing_now_ ? now - last_write_progress_ : clock::duration::zero();
  }
  // Round-trip probes (protocol.md §8.2), once the handshake is over: answered from now on, and
  // sent (on the heartbeats' wake-ups) when the peer said it answers them.
  void enable_probes(bool peer_answers) noexcept {
    answer_probes_ = true;
    send_probes_ = peer_answers;
  }
  // The last probe's round trip, and the smoothed one (each sample weighs 1/8, as TCP's srtt):
  // the network and the peer's loop both ways. None before the first reply.
  std::optional<clock::duration> last_round_trip() const noexcept { return last_round_trip_; }
  std::optional<clock::duration> round_trip() const noexcept { return smoothed_round_trip_; }

  // What went through the link so far: for metrics, read on the link's executor.
  const link_traffic& traffic() const noexcept { return traffic_; }
  const std::string& name() const noexcept { return settings_.name; }
  void set_name(std::string name) { settings_.name = std::move(name); }
  // From now until the other side has proved who it is (stop_throttling), warnings about this
  // link go through `throttle`.
  void throttle_logs(std::shared_ptr<base::log_throttle> throttle) noexcept {
    settings_.throttle = std::move(throttle);
  }
  void stop_throttling() noexcept { settings_.throttle = nullptr; }
  Stream& stream() noexcept { return stream_; }
  std::uint32_t max_frame_size() const noexcept { return settings_.max_frame_size; }
  void set_max_frame_size(std::uint32_t value) noexcept {
    settings_.max_frame_size = value;
    parser_.set_max_frame_size(value);
  }

  // Sends a heartbeat after `send_every` without writes; closes with heartbeat_timeout after
  // `silence_limit` without reads. Each side sends at the smaller of both sides' intervals (the
  // hello/welcome carry them), so a peer configured differently is never starved.
  // `peer_lateness`: the peer's hello or welcome's `lateness` record (§8.1). Nonzero, it asked
  // for heartbeats that say how late this process runs (older peers refuse a heartbeat with a
  // body), and is its max_stretch, which bounds how far apart ours may go while we run late.
  // From now on the stream's reads drain (stream::drain_reads): an end of stream they miss shows
  // at the link's next write, which the heartbeats make sure comes (close_at_write_error).
  void enable_heartbeats(std::chrono::milliseconds send_every,
                         std::chrono::milliseconds silence_limit, std::uint32_t peer_lateness = 0) {
    if (send_every.count() <= 0 || silence_limit.count() <= 0 || !open_ ||
        heartbeat_interval_.count() > 0)
      return;
    heartbeat_interval_ = send_every;
    silence_limit_ = silence_limit;
    peer_lateness_record_ = peer_lateness;
    if constexpr (requires { stream_.drain_reads(true); }) stream_.drain_reads(true);
    spawn(heartbeat_loop(this->shared_from_this()));
  }

  // How long a process of this machine has waited for a core, as a running total
  // (process::cpu_wait); nullopt when not known (any more).
  using cpu_wait_probe = std::function<std::optional<clock::duration>()>;
  // For a peer on this machine: the link's deadlines (expire_after) and heartbeat silences
  // forgive what `probe`'s process waits for a core meanwhile (local_health::forgive_cpu_wait).
  // That is the peer's own process where it is known (a spawned worker, a worker's master), or
  // this one, which shares the peer's cores. Set before either starts, or again between them
  // (a host link learns its peer's pid in the handshake, before its heartbeats start).
  void forgive_peer_cpu_wait(cpu_wait_probe probe) { peer_cpu_wait_ = std::move(probe); }

  // The counters of the TCP connection under this link (read_tcp_path); nullopt when unknown.
  using path_probe = std::function<std::optional<tcp_path_sample>()>;
  // For a host link: a silence while the path loses packets and the peer's kernel still answers
  // is given up to local_health's max_loss_multiplier x its limit (path_loss.hpp). The probe is
  // read every limits::path_sample_interval, at each verdict, and at a close for silence (logged).
  void forgive_path_loss(path_probe probe) { path_probe_ = std::move(probe); }

  // Closes with `reason` unless cancel_expiry() comes first (handshake deadlines).
  void expire_after(clock::duration after, close_reason reason) {
    expiry_length_ = after;
    expiry_started_ = clock::now();
    expiry_waited_at_start_ = peer_cpu_waited();
    expiry_stretched_ = false;
    arm_expiry(expiry_started_ + after, reason, ++expiry_generation_);
  }
  void cancel_expiry() {
    ++expiry_generation_;
    expiry_.cancel();
  }

  // Closes at once: queued frames are dropped.
  void close(close_reason reason, std::error_code error = {},
             clock::duration silence_limit = clock::duration::zero()) {
    if (!open_) return;
    const auto now = clock::now();
    const link_state_at_close state{.since_read = now - last_read_,
                                    .since_write = now - last_write_,
                                    .queued_bytes = queued_bytes(),
                                    .write_stalled = write_stalled_for(now),
                                    .silence_limit = silence_limit,
                                    .path = reason == close_reason::heartbeat_timeout && path_probe_
                                                ? path_probe_()
                                                : std::nullopt};
    open_ = false;
    closing_ = false;
    std::error_code ignored;
    stream_.close(ignored);
    drop_outbound();
    wake_.cancel();
    resume_.cancel();
    heartbeat_timer_.cancel();
    expiry_.cancel();
    log_close(settings_.name, reason, error, settings_.throttle.get(), &state);
    // Posted, so that a sink closing its link from inside on_frame is never re-entered.
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), reason, error] {
      if (auto* sink = std::exchange(self->sink_, nullptr)) sink->on_closed(reason, error);
    });
  }

  // Stops delivering frames, writes what is queued (a goodbye or refuse, typically), then closes;
  // `within` bounds how long a peer that does not read can hold us.
  void close_after_flush(close_reason reason,
                         clock::duration within = std::chrono::milliseconds(1000)) {
    if (!open_ || closing_) return;
    // Nothing can be written any more (end_writing).
    if (write_ended_) return close(reason);
    settle_borrowed();  // the writer writes them, not the batch
    closing_ = true;
    closing_reason_ = reason;
    expire_after(within, reason);
    flush();
  }

 private:
  using tuple_awaitable_t = asio::experimental::as_tuple_t<asio::use_awaitable_t<>>;

  // Every coroutine of a link ends here: an exception (from the sink, or a bug) closes this one
  // connection with its reason, logged; it never vanishes and never leaves a half-dead link.
  void spawn(asio::awaitable<void> work) {
    asio::co_spawn(stream_.get_executor(), std::move(work),
                   [self = this->shared_from_this()](std::exception_ptr failure) {
                     if (failure) self->fail(failure);
                   });
  }

  void fail(std::exception_ptr failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      log_internal_error(settings_.name, e.what());
    } catch (...) {
      log_internal_error(settings_.name, "unknown exception");
    }
    close(close_reason::internal_error);
  }

  asio::awaitable<void> run([[maybe_unused]] std::shared_ptr<basic_link> self) {
    if constexpr (handshaking_stream<Stream>) {
      if (stream_.is_tls()) {
        auto [ec] =
            co_await stream_.async_handshake(asio::experimental::as_tuple(asio::use_awaitable));
        if (!open_) co_return;
        if (ec) {
          close(close_reason::tls_failed, ec);
          co_return;
        }
      }
    }
    spawn(read_loop(self));
    spawn(write_loop(self));
  }

  // Keeps the process-wide budget charged with exactly what this link holds.
  void recharge() noexcept {
    const std::size_t now_held = open_ ? queued_bytes() : 0;
    if (settings_.budget) settings_.budget->recharge(charged_, now_held);
    charged_ = now_held;
  }

  asio::awaitable<void> wait_while_paused() {
    while (pauses_ > 0 && open_) {
      resume_.expires_at(clock::time_point::max());
      co_await resume_.async_wait(tuple_awaitable_t{});
    }
  }

  asio::awaitable<void> read_loop([[maybe_unused]] std::shared_ptr<basic_link> self) {
    constexpr tuple_awaitable_t use_tuple;
    while (open_) {
      co_await wait_while_paused();
      if (!open_) co_return;
      make_room_for_read();
      auto [ec, n] = co_await stream_.async_read_some(
          asio::buffer(read_buffer_.data() + read_end_, read_buffer_.size() - read_end_),
          use_tuple);
      if (!open_) co_return;
      if (ec) {
        if (closing_ && ec == asio::error::eof) co_return;  // the writer finishes the close
        close_at_read_error(ec);
        co_return;
      }
      read_end_ += n;
      traffic_.bytes_in += n;
      last_read_ = clock::now();
      if (closing_) {
        read_begin_ = read_end_ = 0;  // closing: what the peer still sends is ignored
        continue;
      }
      for (auto more = deliver_frames(); more != delivery::done; more = deliver_frames()) {
        if (more == delivery::paused)
          co_await wait_while_paused();
        else
          co_await asio::post(stream_.get_executor(), asio::use_awaitable);
        if (!open_) co_return;
      }
    }
  }

  // The end of the stream between frames is the peer's close; inside a frame, a truncated frame.
  void close_at_read_error(std::error_code ec) {
    const bool clean = ec == asio::error::eof && read_begin_ == read_end_;
    close(clean                    ? close_reason::eof
          : ec == asio::error::eof ? close_reason::protocol_error
                                   : close_reason::io_error,
          clean ? std::error_code{} : ec);
  }

  // With draining reads, whether the peer's end came with its last bytes, unseen by the reader
  // (draining_buffer.hpp); a plain read always sees it.
  bool end_missed() {
    if constexpr (requires { stream_.end_of_stream_waiting(); })
      return stream_.end_of_stream_waiting();
    else
      return false;
  }

  // A write failed. EPIPE is how an end the reader missed shows (a Unix peer closed, or a TCP peer
  // reset the connection after its FIN), and it is reported as the reader would have reported it.
  // Other errors (a reset without FIN, a timeout) stay i/o errors, whatever a peek would say once
  // the write has taken the socket's error.
  // On rings the end can be known before the reader has taken or delivered the peer's last
  // frames: the reader delivers them and then ends the connection itself (end_writing).
  void close_at_write_error(std::error_code ec) {
    if (ec == asio::error::broken_pipe && end_missed())
      return close_at_read_error(asio::error::eof);
    if constexpr (requires { stream_.end_left_to_reader(); }) {
      if (ec == asio::error::broken_pipe && stream_.end_left_to_reader()) return end_writing();
    }
    close(close_reason::io_error, ec);
  }

  // The writer stops for good while the reader goes on. Nothing is accepted any more and what is
  // queued is dropped, as at a close (the peer is gone; its departure tells the senders), so that
  // the queue neither holds the shared budget nor keeps the links held back on it paused until
  // the reader gets to the end: one of them may be what keeps this reader paused.
  void end_writing() {
    write_ended_ = true;
    writing_.clear();  // the writer has finished with it
    written_ = 0;
    drop_outbound();
    if (drain_mark_) report_drained();
  }

  void drop_outbound() {
    pending_.clear();
    ++outbound_rounds_;
    release_borrowed();
    control_.clear();
    lanes_.clear();
    final_.clear();
    recharge();
  }

  enum class delivery { done, turn_over, paused };

  // Hands the complete frames in the buffer to the sink, at most max_frames_per_turn of them and
  // none while paused; says why it stopped. What they queue on any link is written as it returns,
  // from this buffer where they lie in it: it is compacted only after.
  delivery deliver_frames() {
    bool compact_after = false;
    delivery result;
    {
      const write_batch batch(
          std::span<const std::byte>(read_buffer_.data() + read_begin_, read_end_ - read_begin_));
      result = deliver_batch(compact_after);
    }
    if (compact_after) compact();
    return result;
  }

  delivery deliver_batch(bool& compact_after) {
    for (std::size_t delivered = 0; open_ && !closing_; ++delivered) {
      if (pauses_ > 0) return delivery::paused;
      if (delivered == settings_.max_frames_per_turn) return delivery::turn_over;
      const auto result = parser_.parse(
          std::span<const std::byte>(read_buffer_.data() + read_begin_, read_end_ - read_begin_));
      if (result.state == wire::parse_result::status::frame) {
        read_begin_ += result.frame.header.total();
        if (result.frame.header.type == wire::frame_type::fragment)
          assemble(result.frame);
        else
          deliver(result.frame);
        continue;
      }
      if (result.state == wire::parse_result::status::error) {
        violation(result.error, std::span<const std::byte>(read_buffer_.data() + read_begin_,
                                                           read_end_ - read_begin_));
        return delivery::done;
      }
      // The parser has validated the header (needed <= max_frame_size); the buffer grows as the
      // bytes arrive (make_room_for_read), never up front on a header's word alone.
      compact_after = result.needed > read_buffer_.size() - read_begin_;
      return delivery::done;
    }
    return delivery::done;
  }

  // Heartbeats belong to the link: what one says of its sender's lateness (protocol.md §8.1) is
  // kept for judging that sender's silences; the sink never sees them.
  // So are probes, once enabled (before, they reach the sink, which refuses them).
  void deliver(const wire::frame_view& frame) {
    ++traffic_.frames_in;
    switch (frame.header.type) {
      case wire::frame_type::heartbeat:
        if (const auto reported = wire::decode_heartbeat(frame); reported > 0)
          settings_.health->note_peer(peer_lateness_, std::chrono::milliseconds(reported),
                                      clock::now());
        return;
      case wire::frame_type::probe:
        if (!answer_probes_) break;
        // Unanswered when our queue is full: a peer that stops reading only loses its sample.
        if (writable() && has_room(wire::header_size + 8)) {
          wire::append_probe_reply(control_, wire::decode_probe_token(frame));
          flush();
        }
        return;
      case wire::frame_type::probe_reply:
        if (!send_probes_) break;
        note_probe_reply(wire::decode_probe_token(frame));
        return;
      default:
        break;
    }
    if (sink_) sink_->on_frame(frame);
  }

  // Only the reply to the probe outstanding counts: a late, repeated or invented one is ignored.
  void note_probe_reply(std::uint64_t token) noexcept {
    if (token == 0 || token != probe_token_) return;
    probe_token_ = 0;
    const auto sample = clock::now() - probe_sent_at_;
    last_round_trip_ = sample;
    smoothed_round_trip_ = smoothed_round_trip_
                               ? *smoothed_round_trip_ + (sample - *smoothed_round_trip_) / 8
                               : sample;
  }

  void send_probe(clock::time_point now) {
    next_probe_ = now + limits::probe_interval;
    if (!writable() || !has_room(wire::header_size + 8)) return;
    probe_token_ = ++probes_sent_;
    probe_sent_at_ = now;
    wire::append_probe(control_, probe_token_);
    flush();
  }

  void violation(std::error_code error, std::span<const std::byte> bytes) {
    log_protocol_violation(settings_.name, error, bytes, settings_.throttle.get());
    close(close_reason::protocol_error, error);
  }

  // A slice of a larger frame (protocol.md §2.1): the first starts with the frame's header, which
  // is checked at once (size within max_frame_size, known type); the slices must add up to that
  // size exactly; the whole is then parsed and delivered like any frame. One frame at a time.
  void assemble(const wire::frame_view& fragment) {
    const auto slice = fragment.body();
    if (assembly_.empty()) {
      const auto head = parser_.parse(slice);
      if (head.state == wire::parse_result::status::error)
        return violation(head.error, fragment.bytes);
      // A whole frame, or not even a header, in a first slice: not what a sender does.
      if (head.state == wire::parse_result::status::frame || head.needed == 0)
        return violation(wire::decode_error::bad_body, fragment.bytes);
      assembly_needed_ = head.needed;
    } else if (assembly_.size() + slice.size() > assembly_needed_) {
      return violation(wire::decode_error::bad_body, fragment.bytes);
    }
    assembly_.insert(assembly_.end(), slice.begin(), slice.end());
    if (assembly_.size() < assembly_needed_) return;
    const auto whole = parser_.parse(assembly_);
    if (whole.state != wire::parse_result::status::frame ||
        whole.frame.header.type == wire::frame_type::fragment)
      return violation(whole.state == wire::parse_result::status::error
                           ? whole.error
                           : make_error_code(wire::decode_error::bad_body),
                       assembly_);
    deliver(whole.frame);
    assembly_.clear();
    if (assembly_.capacity() > 4 * settings_.read_buffer_size) assembly_.shrink_to_fit();
  }

  void make_room_for_read() {
    if (read_begin_ == read_end_) {
      read_begin_ = read_end_ = 0;
      if (read_buffer_.size() > 4 * settings_.read_buffer_size)
        read_buffer_.reallocate(settings_.read_buffer_size, 0, 0);  // a large frame's room back
    }
    const std::size_t free_tail = read_buffer_.size() - read_end_;
    if (read_begin_ > 0 && free_tail < read_buffer_.size() / 4) compact();
    if (read_end_ == read_buffer_.size()) {
      read_buffer_.reallocate(read_buffer_.size() * 2, read_begin_, read_end_);
      read_end_ -= read_begin_;
      read_begin_ = 0;
    }
  }

  void compact() {
    if (read_begin_ == 0) return;
    std::copy(read_buffer_.data() + read_begin_, read_buffer_.data() + read_end_,
              read_buffer_.data());
    read_end_ -= read_begin_;
    read_begin_ = 0;
  }

  // The writer: one gathered write at a time (prepare_write), asynchronously, and between them an
  // idle wait for flush(). While it is idle, a write batch may write for it (write_now): what the
  // socket did not take then, or the error it gave, is left prepared for the writer to finish.
  asio::awaitable<void> write_loop([[maybe_unused]] std::shared_ptr<basic_link> self) {
    constexpr tuple_awaitable_t use_tuple;
    while (open_) {
      if (!write_ready_ && !prepare_write()) {
        if (closing_) {
          close(closing_reason_);
          co_return;
        }
        writer_idle_ = true;
        wake_.expires_at(clock::time_point::max());
        co_await wake_.async_wait(use_tuple);
        writer_idle_ = false;
        if (open_ && std::exchange(drained_, false)) report_drained();
        continue;
      }
      std::error_code ec = std::exchange(write_error_, {});
      if (!ec) {
        writing_now_ = true;
        last_write_progress_ = clock::now();
        // The write operation keeps a copy of its buffer sequence and walks it generically: two
        // buffers (the common case) go as an array, which Asio handles without either cost.
        std::size_t n = 0;
        if (gather_.size() <= 2) {
          std::tie(ec, n) = co_await asio::async_write(stream_, gathered_pair(),
                                                       progress_tracker{this}, use_tuple);
        } else {
          std::tie(ec, n) =
              co_await asio::async_write(stream_, std::span<const asio::const_buffer>(gather_),
                                         progress_tracker{this}, use_tuple);
        }
        traffic_.bytes_out += n;
      }
      write_finished();
      if (!open_) co_return;
      if (drain_reached() && !report_drained()) co_return;
      if (ec) {
        close_at_write_error(ec);
        co_return;
      }
      last_write_ = clock::now();
    }
  }

  // Fills gather_ with the next write: control frames first, then at most one chunk of data.
  // False when nothing is queued (the final frames come only after everything else).
  bool prepare_write() {
    settle_borrowed();  // only a batch's write sends them from where they lie
    if (written_ == writing_.size()) {
      // Everything queued so far in the ordered lane is this round's; producers fill the other
      // buffer.
      writing_.clear();
      written_ = 0;
      std::swap(pending_, writing_);
      ++outbound_rounds_;
    }
    if (writing_.empty() && control_.empty() && lanes_.empty()) {
      if (final_.empty()) return false;
      std::swap(final_, writing_);
    }
    std::swap(control_, writing_control_);
    write_end_ = next_chunk_end();
    gather_.clear();
    gather(writing_control_);
    gather(std::span<const std::byte>(writing_.data() + written_, write_end_ - written_));
    // The source lanes only once all of the ordered lane is in this write: a node announced
    // there must be known before its frames arrive.
    const std::size_t ordered = write_end_ - written_;
    if (write_end_ == writing_.size() && pending_.empty() && !lanes_.empty() &&
        ordered < settings_.max_write_chunk) {
      pieces_.clear();
      lanes_.take(settings_.max_write_chunk - ordered, pieces_);
      for (const auto& piece : pieces_) gather(piece);
    }
    write_ready_ = true;
    return true;
  }

  std::array<asio::const_buffer, 2> gathered_pair() {
    gather_.resize(2);
    return {gather_[0], gather_[1]};
  }

  // The prepared write is over (made whole, or failed): its bytes leave the queue.
  void write_finished() {
    write_ready_ = false;
    writing_now_ = false;
    writing_control_.clear();
    written_ = write_end_;
    lanes_.written();
    release_borrowed();
    recharge();
  }

  bool drain_reached() const noexcept { return drain_mark_ && queued_bytes() <= *drain_mark_; }
  // Tells the sink the queue has drained to its mark; false when that closed the link.
  bool report_drained() {
    drain_mark_.reset();
    if (sink_) sink_->on_drained();
    return open_;
  }

  static void write_batched(void* link) noexcept {
    auto& self = *static_cast<basic_link*>(link);
    try {
      self.write_now();
    } catch (...) {
      self.fail(std::current_exception());
    }
  }

  // A write batch's turn: while the writer is idle (else it is writing, and takes the queue
  // next), writes what the socket takes now. The writer is woken for anything left to it: the
  // rest of the write or of the queue, an error to report, a drained queue (never reported from
  // here, which may be inside a frame handler's caller), or the close after the flush.
  void write_now() {
    batched_ = false;
    if (!open_) return;  // close() dropped what it had borrowed
    if (!writer_idle_ || closing_ || write_error_) settle_borrowed();  // the writer's then
    if (!writer_idle_) return;
    if (!borrowed_.empty()) {
      write_borrowed_now();
    } else if (!closing_ && !write_error_ && (write_ready_ || prepare_write())) {
      write_prepared_now();
    }
    if (write_ready_ || closing_ || drained_ || queued_bytes() > 0) wake_.cancel();
  }

  // ---- cut-through: frames written from the batch's memory, copied only if they must wait ----

  // Keeps a span to `frames` instead of a copy, when the batch's write will send them before
  // anything else can queue behind them: they lie in memory the batch keeps stable, this link is
  // in the batch with an idle writer and nothing queued but control frames (which go first), and
  // they and what was borrowed before fit one write (max_write_chunk; with fair share, a frame
  // that could go in slices never borrows). TLS writes only through its writer: never.
  bool borrow(std::span<const std::byte> frames, fair_lanes::lane_key lane) {
    if constexpr (!directly_writable_stream<Stream>) {
      return false;
    } else {
      if constexpr (handshaking_stream<Stream>) {
        if (stream_.is_tls()) return false;
      }
      const std::size_t largest =
          settings_.fair_share && settings_.fragment_above > 0
              ? std::min(settings_.fragment_above, settings_.max_write_chunk)
              : settings_.max_write_chunk;
      if (frames.size() > largest || borrowed_bytes_ + frames.size() > settings_.max_write_chunk)
        return false;
      if (!writable() || !writer_idle_ || write_ready_ || write_error_) return false;
      if (borrowed_.empty() &&
          (!pending_.empty() || written_ != writing_.size() || !lanes_.empty() || !final_.empty()))
        return false;
      auto* batch = write_batch::current();
      if (!batch || !batch->holds_stable(frames)) return false;
      if (!batched_) {
        if (!batch->add(this, &write_batched)) return false;
        batched_ = true;
      }
      // One read's frames lie back to back: a run of them is one piece of the write.
      if (!borrowed_.empty() && borrowed_.back().lane == lane &&
          borrowed_.back().bytes.data() + borrowed_.back().bytes.size() == frames.data()) {
        auto& last = borrowed_.back().bytes;
        last = std::span<const std::byte>(last.data(), last.size() + frames.size());
      } else {
        borrowed_.push_back({frames, lane});
      }
      borrowed_bytes_ += frames.size();
      return true;
    }
  }

  // Copies frames into `lane`'s queue.
  void copy_in(std::span<const std::byte> frames, fair_lanes::lane_key lane) {
    traffic_.bytes_copied += frames.size();
    if (lane == 0 || !settings_.fair_share) {
      pending_.insert(pending_.end(), frames.begin(), frames.end());
    } else {
      auto& out = lanes_.buffer(lane);
      out.insert(out.end(), frames.begin(), frames.end());
      lanes_.appended(frames.size());
    }
  }

  // The borrowed frames join their lanes, in order, as push() would have queued them: borrowing
  // started on an empty queue, and nothing but control frames was queued since.
  void settle_borrowed() {
    if (borrowed_.empty()) return;
    for (const auto& b : borrowed_) copy_in(b.bytes, b.lane);
    release_borrowed();
  }

  // Forgets the borrowed frames: written, copied, or dropped with the queue (close).
  void release_borrowed() noexcept {
    borrowed_.clear();
    borrowed_bytes_ = 0;
  }

  // The batch's write: the control lane, then the borrowed frames, as prepare_write would have
  // gathered them from their lanes. What the stream does not take (or all of it, on would_block
  // or an error) is copied into writing_, the write in progress, before the batch's memory moves.
  void write_borrowed_now() {
    writing_.clear();
    written_ = write_end_ = 0;
    std::swap(control_, writing_control_);
    gather_.clear();
    gather(writing_control_);
    for (const auto& b : borrowed_) gather(b.bytes);
    write_ready_ = true;
    write_prepared_now();
    if (!write_ready_) return;  // all written (write_finished released them)
    // gather_ holds what is left, a suffix: the control lane's rest, if any, then the borrowed
    // frames' rest, which is copied.
    const std::size_t left = asio::buffer_size(gather_);
    const std::size_t control_left = left > borrowed_bytes_ ? left - borrowed_bytes_ : 0;
    std::size_t skip = control_left;
    for (const auto& piece : gather_) {
      const std::size_t in_control = std::min(skip, piece.size());
      skip -= in_control;
      const auto* at = static_cast<const std::byte*>(piece.data());
      writing_.insert(writing_.end(), at + in_control, at + piece.size());
    }
    traffic_.bytes_copied += writing_.size();
    release_borrowed();
    write_end_ = writing_.size();
    gather_.clear();
    gather(std::span<const std::byte>(writing_control_).last(control_left));
    gather(writing_);
    recharge();
  }

  void write_prepared_now() {
    std::error_code ec;
    const std::size_t n =
        gather_.size() <= 2
            ? stream_.try_write_some(gathered_pair(), ec)
            : stream_.try_write_some(std::span<const asio::const_buffer>(gather_), ec);
    if (ec == asio::error::would_block || ec == asio::error::interrupted) return;
    if (ec) {
      write_error_ = ec;  // reported by the writer, as its own write's would be
      return;
    }
    traffic_.bytes_out += n;
    last_write_progress_ = clock::now();
    if (n < asio::buffer_size(gather_)) {
      skip_written(n);
      writing_now_ = true;  // the writer goes on with the rest; a stall shows from now
      return;
    }
    write_finished();
    last_write_ = last_write_progress_;
    if (drain_reached()) drained_ = true;
  }

  // Drops the first `n` bytes (fewer than all) of the prepared write.
  void skip_written(std::size_t n) {
    auto first = gather_.begin();
    for (; n >= first->size(); ++first) n -= first->size();
    *first += n;
    gather_.erase(gather_.begin(), first);
  }

  void gather(std::span<const std::byte> bytes) {
    if (!bytes.empty()) gather_.emplace_back(bytes.data(), bytes.size());
  }

  // Where the next write's data ends: at a frame boundary, max_write_chunk bytes on at most
  // (further only for one frame larger than that). Walking headers costs a load per frame, and
  // only when more than a chunk is queued.
  std::size_t next_chunk_end() const noexcept {
    const std::size_t end = writing_.size();
    if (end - written_ <= settings_.max_write_chunk) return end;
    std::size_t at = written_;
    do {
      at += std::size_t{base::load_le<std::uint32_t>(writing_.data() + at)} + 4;
    } while (at < end && at - written_ < settings_.max_write_chunk);
    return std::min(at, end);
  }

  void arm_expiry(clock::time_point at, close_reason reason, std::uint64_t armed) {
    expiry_.expires_at(at);
    expiry_.async_wait([self = this->shared_from_this(), reason, armed](std::error_code ec) {
      // cancel() cannot recall a handler already queued with success (the deadline passed in the
      // same turn as the cancel): only a deadline still current closes.
      if (!ec && armed == self->expiry_generation_) self->on_expiry(reason, armed);
    });
  }

  void on_expiry(close_reason reason, std::uint64_t armed) {
    if (expiry_waited_at_start_) {
      if (const auto waited = peer_cpu_waited()) {
        const auto due = expiry_started_ +
                         settings_.health->forgive_cpu_wait(expiry_length_, expiry_length_,
                                                            *waited - *expiry_waited_at_start_);
        if (due - clock::now() >= std::chrono::milliseconds(1)) {
          if (!std::exchange(expiry_stretched_, true)) settings_.health->note_deadline_stretched();
          return arm_expiry(due, reason, armed);
        }
      }
    }
    close(reason);
  }

  std::optional<clock::duration> peer_cpu_waited() const {
    if (!peer_cpu_wait_) return std::nullopt;
    return peer_cpu_wait_();
  }

  // Sleeps until the next thing to do, a heartbeat due (heartbeat_due) or the silence limit
  // reached, never on a fixed tick: on a busy machine every wake-up costs.
  asio::awaitable<void> heartbeat_loop([[maybe_unused]] std::shared_ptr<basic_link> self) {
    constexpr tuple_awaitable_t use_tuple;
    // How soon to look again at a silence past its limit, or at a heartbeat held back by writes.
    const auto recheck = std::max<clock::duration>(
        std::min(heartbeat_interval_, silence_limit_) / 4, std::chrono::milliseconds(1));
    local_health& health = *settings_.health;
    bool forgiven = false;  // this silence has already been forgiven once (counted, logged)
    while (open_) {
      const auto before = clock::now();
      auto check_at = last_read_ + silence_limit_;
      if (check_at <= before) check_at = before + recheck;
      auto send_at = heartbeat_due();
      if (send_at <= before) send_at = before + recheck;
      heartbeat_timer_.expires_at(std::min(check_at, send_at));
      co_await heartbeat_timer_.async_wait(use_tuple);
      if (!open_) co_return;
      const auto now = clock::now();
      health.timer_fired(heartbeat_timer_.expiry(), now);
      if (path_probe_ && now >= next_path_sample_) sample_path(now);
      const auto silent = now - last_read_;
      // A silence half its limit long is watched: from then on, what the peer waits for a core
      // is forgiven (forgive_peer_cpu_wait).
      if (peer_cpu_wait_ && silent >= silence_limit_ / 2 && silence_watched_ != last_read_) {
        silence_watched_ = last_read_;
        silence_waited_at_ = peer_cpu_waited();
      }
      if (silent <= silence_limit_) {
        forgiven = false;
      } else {
        // Bytes already waiting in the socket prove the peer alive: it is this process that was
        // slow to read (descheduled, stopped, or a long handler). Never blame the peer for that.
        // (Waiting bytes mean the reader's completion is queued, or the reader is paused for
        // backpressure: either way the wait is ours.)
        std::error_code ec;
        if (stream_.available(ec) > 0 && !ec) continue;
        // An EOF or error that arrived during the same stall counts no bytes, but its completion
        // may be queued behind this one: let it run first, so that a peer that exited is
        // reported as closed (with its reason), not as silent.
        co_await asio::post(stream_.get_executor(), asio::use_awaitable);
        if (!open_) co_return;
        const auto later = clock::now();
        if (later - last_read_ > silence_limit_) {
          // A peer that has closed is silent: when its end came unseen, that is the reason.
          if (end_missed()) {
            close_at_read_error(asio::error::eof);
            co_return;
          }
          // While this loop itself runs late, so probably do its peers: judge by the stretched
          // limit (bounded), and say so once per silence.
          auto limit = health.silence_limit(silence_limit_, later,
                                            health.peer_excess(peer_lateness_, later));
          auto why = stretch_reason::lateness;
          if (silence_waited_at_ && silence_watched_ == last_read_) {
            if (const auto waited = peer_cpu_waited()) {
              const auto forgiven_wait =
                  health.forgive_cpu_wait(limit, silence_limit_, *waited - *silence_waited_at_);
              if (forgiven_wait > limit) why = stretch_reason::peer_cpu_wait;
              limit = forgiven_wait;
            }
          }
          if (later - last_read_ > limit && path_probe_) {
            if (const auto sample = sample_path(later)) {
              const auto forgiven_loss = health.forgive_path_loss(
                  limit, silence_limit_, later - last_read_, *sample,
                  path_loss_.lossy_within(limits::path_loss_memory, later));
              if (forgiven_loss > limit) why = stretch_reason::path_loss;
              limit = forgiven_loss;
            }
          }
          if (later - last_read_ > limit) {
            close(close_reason::heartbeat_timeout, {}, limit);
            co_return;
          }
          if (!std::exchange(forgiven, true)) note_forgiven(later, limit, why);
        }
      }
      const bool probe_due = send_probes_ && now >= next_probe_;
      if (now >= heartbeat_due() && queued_bytes() == 0 && !closing_) {
        // A probe proves us alive as a heartbeat does: on an idle link it takes a heartbeat's
        // place, so that probing adds no segment of ours (on a lossy link, a stream with fewer
        // segments in flight keeps TCP's linear retransmissions), unless the heartbeat has our
        // lateness to tell.
        const auto lateness = health.excess_lateness(now);
        if (probe_due && !(peer_reads_lateness() && lateness > clock::duration::zero()))
          send_probe(now);
        else
          append_heartbeat(lateness, now);
        last_write_ = now;
        flush();
      } else if (probe_due && now >= next_probe_ + limits::probe_interval) {
        send_probe(now);  // a busy link, where no heartbeat comes due
      }
    }
  }

  // An interval after the last write, on the machine-wide grid (base/clock_grid.hpp): the idle
  // links of every process on a machine send at the same instants, and a master reads dozens of
  // peers' heartbeats per wake-up. Peers on other machines see them as often as before.
  // Further apart while this process runs late, for a peer that hears how late (§8.1).
  clock::time_point heartbeat_due() const noexcept {
    const auto spacing =
        peer_reads_lateness()
            ? settings_.health->heartbeat_spacing(
                  heartbeat_interval_, settings_.health->peer_excess(told_lateness_, last_write_),
                  peer_lateness_record_)
            : heartbeat_interval_;
    return base::next_period(last_write_, spacing);
  }

  void append_heartbeat(clock::duration our_lateness, clock::time_point now) {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(our_lateness).count();
    if (!peer_reads_lateness() || ms <= 0) {
      wire::append_heartbeat(outbound());
      return;
    }
    const auto told = std::min<std::int64_t>(ms, std::numeric_limits<std::uint32_t>::max());
    wire::append_heartbeat(outbound(), static_cast<std::uint32_t>(told));
    // Kept as the peer keeps it (the same decay), so our spacing follows its limit.
    settings_.health->note_peer(told_lateness_, std::chrono::milliseconds(told), now);
  }

  // Reads the connection's counters into path_loss_; the sample, or nullopt when unknown.
  std::optional<tcp_path_sample> sample_path(clock::time_point now) {
    next_path_sample_ = now + limits::path_sample_interval;
    auto sample = path_probe_();
    if (sample) path_loss_.note(*sample, now);
    return sample;
  }

  void note_forgiven(clock::time_point now, clock::duration limit, stretch_reason why) {
    if (why == stretch_reason::path_loss) settings_.health->note_loss_stretched();
    std::uint64_t suppressed = 0;
    if (!settings_.health->note_stretched(now, suppressed)) return;
    const local_health& health = *settings_.health;
    log_stretched_silence(settings_.name, now - last_read_, silence_limit_, limit, why,
                          health.excess_lateness(now), health.peer_excess(peer_lateness_, now),
                          suppressed);
  }

  // asio::transfer_all, noting each partial write as progress (see write_stalled_for).
  struct progress_tracker {
    basic_link* link;
    std::size_t operator()(const std::error_code& ec, std::size_t transferred) const {
      if (transferred != 0) link->last_write_progress_ = clock::now();
      return asio::transfer_all()(ec, transferred);
    }
  };

  Stream stream_;
  link_settings settings_;
  link_traffic traffic_;
  wire::frame_parser parser_;
  frame_sink* sink_ = nullptr;

  bool open_ = true;
  bool closing_ = false;
  close_reason closing_reason_ = close_reason::local;
  bool write_ended_ = false;  // end_writing()

  std::vector<std::byte> pending_;          // frames queued by producers
  std::uint64_t outbound_rounds_ = 0;       // outbound_round()
  std::vector<std::byte> control_;          // the control lane (enqueue_control)
  std::vector<std::byte> writing_;          // this round's data, written a chunk at a time
  std::size_t written_ = 0;                 // bytes of writing_ already written
  std::vector<std::byte> writing_control_;  // the control frames of the write in progress
  fair_lanes lanes_;                        // the sources' lanes (enqueue with a lane)
  std::vector<std::byte> final_;            // after everything else (final_outbound)
  std::vector<asio::const_buffer> gather_;  // the write in progress
  std::size_t write_end_ = 0;               // where its data ends in writing_
  bool write_ready_ = false;                // gather_ holds a write not yet (wholly) made
  std::error_code write_error_;             // the batch's write of gather_ failed with it
  bool batched_ = false;                    // a write batch holds this link (flush)
  bool drained_ = false;                    // a batch's write reached drain_mark_: to report
  std::vector<fair_lanes::piece> pieces_;   // its data from the sources' lanes
  struct borrowed_frames {
    std::span<const std::byte> bytes;  // in the write batch's stable memory
    fair_lanes::lane_key lane;
  };
  std::vector<borrowed_frames> borrowed_;  // pushed, not copied: the batch's write sends them
  std::size_t borrowed_bytes_ = 0;
  bool writing_now_ = false;
  clock::time_point last_write_progress_;
  std::size_t charged_ = 0;  // bytes this link has charged to settings_.budget
  bool writer_idle_ = false;
  asio::steady_timer wake_;  // the idle writer waits on it; cancel() wakes it
  std::optional<std::size_t> drain_mark_;
  unsigned pauses_ = 0;
  asio::steady_timer resume_;  // the paused reader waits on it; cancel() resumes it

  bool answer_probes_ = false;
  bool send_probes_ = false;
  std::uint64_t probes_sent_ = 0;
  std::uint64_t probe_token_ = 0;  // the probe awaiting its reply; 0: none
  clock::time_point probe_sent_at_{};
  clock::time_point next_probe_{};
  std::optional<clock::duration> last_round_trip_;
  std::optional<clock::duration> smoothed_round_trip_;

  std::chrono::milliseconds heartbeat_interval_{0};
  // The peer's lateness record: nonzero, it reads our lateness, and is its max_stretch (our
  // heartbeats thin to half of that at most).
  std::uint32_t peer_lateness_record_ = 0;
  bool peer_reads_lateness() const noexcept { return peer_lateness_record_ != 0; }
  decaying_peak peer_lateness_;  // what the peer's heartbeats said of its own lateness
  decaying_peak told_lateness_;  // what ours said of this process's
  std::chrono::milliseconds silence_limit_{0};
  asio::steady_timer heartbeat_timer_;
  asio::steady_timer expiry_;
  std::uint64_t expiry_generation_ = 0;  // bumped by every expire_after and cancel_expiry
  clock::duration expiry_length_{};
  clock::time_point expiry_started_{};
  std::optional<clock::duration> expiry_waited_at_start_;  // the peer's CPU wait then
  bool expiry_stretched_ = false;                          // counted once per deadline
  cpu_wait_probe peer_cpu_wait_;
  path_probe path_probe_;
  path_loss_memory path_loss_;
  clock::time_point next_path_sample_{};
  clock::time_point silence_watched_{};               // the last_read_ of the silence watched
  std::optional<clock::duration> silence_waited_at_;  // the peer's CPU wait when watching began
  clock::time_point last_read_;
  clock::time_point last_write_;

  std::vector<std::byte> assembly_;  // the slices of a fragmented frame so far
  std::size_t assembly_needed_ = 0;  // its size
  byte_buffer read_buffer_;
  std::size_t read_begin_ = 0;  // first unparsed byte
  std::size_t read_end_ = 0;    // one past the last byte read
};

using link = basic_link<stream>;
extern template class basic_link<stream>;

}  // namespace galaxies::transport
