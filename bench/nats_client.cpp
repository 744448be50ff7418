#include "nats_client.hpp"

#include <thread>

namespace galaxies::bench::nats {
namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;

void echo_back(natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
  const message owned(m);
  if (const char* reply = natsMsg_GetReply(m))
    natsConnection_Publish(nc, reply, natsMsg_GetData(m), natsMsg_GetDataLength(m));
}

}  // namespace

connection connect(int port, std::chrono::milliseconds patience, bool send_asap) {
  const std::string url = "nats://127.0.0.1:" + std::to_string(port);
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "options");
  const std::unique_ptr<natsOptions, options_deleter> options(raw);
  check(natsOptions_SetURL(raw, url.c_str()), "options");
  check(natsOptions_SetSendAsap(raw, send_asap), "options");
  const auto give_up = clock::now() + patience;
  for (;;) {
    natsConnection* nc = nullptr;
    const natsStatus s = natsConnection_Connect(&nc, raw);
    if (s == NATS_OK) return connection(nc);
    if (s != NATS_NO_SERVER || clock::now() > give_up) check(s, "connect to " + url);
    std::this_thread::sleep_for(10ms);
  }
}

subscription subscribe(natsConnection* nc, const std::string& subject, natsMsgHandler handler,
                       void* closure) {
  natsSubscription* sub = nullptr;
  check(natsConnection_Subscribe(&sub, nc, subject.c_str(), handler, closure),
        "subscribe " + subject);
  subscription owned(sub);
  check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits");
  return owned;
}

subscription echo(natsConnection* nc, const std::string& subject) {
  auto sub = subscribe(nc, subject, echo_back, nullptr);
  check(natsConnection_FlushTimeout(nc, 5000), "flush");
  return sub;
}

void wait_for_interest(natsConnection* nc, const std::string& subject,
                       std::chrono::milliseconds patience) {
  const auto give_up = clock::now() + patience;
  for (;;) {
    natsMsg* reply = nullptr;
    const natsStatus s = natsConnection_RequestString(&reply, nc, subject.c_str(), "probe", 100);
    if (s == NATS_OK) {
      natsMsg_Destroy(reply);
      return;
    }
    if (clock::now() > give_up) check(s, "no answer across the route on " + subject);
    std::this_thread::sleep_for(10ms);
  }
}

}  // namespace galaxies::bench::nats
