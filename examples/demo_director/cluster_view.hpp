// The director's picture of the cluster, built only from what the workers print (one JSON event
// per line): who is there, what each worker has seen join and leave, their latest counters, and
// the round trips they measured. Threading: the director's one thread.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace director {

struct worker_record {
  std::string id;     // node id
  std::string label;  // "A2": host label, then the order in which the director first heard of it
  std::string host_label;  // "A"
  std::string host_id;
  int pid = 0;
  bool ready = false;
  bool expected_alive = true;         // false once the director killed it or stopped its host
  bool killed = false;                // by the director, with SIGKILL
  bool disconnected = false;          // it said its connection to its master closed
  std::map<std::string, int> joined;  // node id -> how many nodeJoined it printed (must be 1)
  std::map<std::string, int> left;    // node id -> how many nodeLeft (at most 1)
  std::map<std::string, std::string> left_reason;
  std::map<std::string, long long> joined_t_us, left_t_us;
  std::map<std::string, int> hosts_joined;  // host id -> count
  std::map<std::string, std::string> hosts_left;
  std::map<std::string, long long> host_left_t_us;
  nlohmann::json stats;  // its latest "stats" event
  long long stats_t_us = 0;
};

struct request_sample {
  std::string kind;
  std::string to;  // the node asked
  long long rtt_us = 0;
  long long t_us = 0;
  std::string error;  // empty: answered
};

// A trade offer: a request that stays in flight for 1-3 s while the other player thinks.
struct trade {
  std::string from;  // the offering worker's node id
  std::string to;    // the node asked
  bool done = false;
  std::string outcome;  // "accepted", "declined", or the error's name
  long long done_t_us = 0;
};

class cluster_view {
 public:
  // One line of host `host_label`'s stdout. Returns the event, or null for a line that is not one.
  nlohmann::json on_line(const std::string& host_label, std::string_view line);

  worker_record* find(const std::string& node_id);
  std::string label(const std::string& node_id) const;  // "A2", or the id's first 8 digits
  std::vector<worker_record*> workers();                // in the order they appeared
  std::vector<worker_record*> alive();                  // the ones expected to be running
  std::vector<worker_record*> of_host(const std::string& host_label);
  std::string host_label_of(const std::string& host_id) const;
  std::string address_of(const std::string& host_id) const;

  const std::vector<request_sample>& requests() const { return requests_; }
  // Trades keyed by "offering node id/offer number".
  const std::map<std::string, trade>& trades() const { return trades_; }
  const std::vector<std::string>& anomalies() const { return anomalies_; }
  // A counter from every worker's latest stats, summed (dead workers keep their last numbers).
  std::uint64_t total(const std::string& counter) const;

 private:
  worker_record& record_for(const std::string& id, const std::string& host_label);

  std::vector<worker_record> workers_;  // reserved: pointers stay valid (see record_for)
  std::map<std::string, std::size_t> by_id_;
  std::map<std::string, int> next_number_;  // per host label
  std::map<std::string, std::string> host_labels_, host_addresses_;
  std::vector<request_sample> requests_;
  std::map<std::string, trade> trades_;
  std::vector<std::string> anomalies_;
};

// p in [0, 1] of the answered round trips since `since_us`, in milliseconds; 0 when none. Trades
// are left out: their time is mostly the other player thinking.
double percentile_ms(const std::vector<request_sample>& samples, double p, long long since_us = 0);

}  // namespace director
