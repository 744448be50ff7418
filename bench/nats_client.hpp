// Thin RAII over the libnats C client, for the NATS peer only.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

namespace galaxies::bench::nats {

inline void check(natsStatus s, const std::string& what) {
  if (s != NATS_OK) throw std::runtime_error("nats: " + what + ": " + natsStatus_GetText(s));
}

struct connection_deleter {
  void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct subscription_deleter {
  void operator()(natsSubscription* s) const {
    natsSubscription_Unsubscribe(s);
    natsSubscription_Destroy(s);
  }
};
struct options_deleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
struct message_deleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using connection = std::unique_ptr<natsConnection, connection_deleter>;
using subscription = std::unique_ptr<natsSubscription, subscription_deleter>;
using message = std::unique_ptr<natsMsg, message_deleter>;

// A connection to nats://127.0.0.1:PORT; a refused one is tried again until `patience` passed.
// `send_asap`: every publish is written at once (for round trips) instead of being buffered for
// the client's flusher thread, which otherwise adds about a millisecond per hop.
connection connect(int port, std::chrono::milliseconds patience, bool send_asap = false);

// An asynchronous subscription with no pending limit in the client (a limit would drop messages
// and so measure the limit, not the system).
subscription subscribe(natsConnection* nc, const std::string& subject, natsMsgHandler handler,
                       void* closure);

// Answers each message on `subject` with its own payload (the probe and the echo).
subscription echo(natsConnection* nc, const std::string& subject);

// Asks `subject` (answered by echo() on the other server) until it answers: once it does, every
// subscription made before that echo on the same connection is known on the other side of the
// route too (the route carries interest in order).
void wait_for_interest(natsConnection* nc, const std::string& subject,
                       std::chrono::milliseconds patience);

}  // namespace galaxies::bench::nats
