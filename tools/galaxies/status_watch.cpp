// `galaxies status --watch`: the local masters' hosts, workers and links, refreshed in place like
// top, with rates from the difference between two refreshes.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "base/text.hpp"
#include "commands.hpp"
#include "local_masters.hpp"

namespace galaxies::cli {
namespace {

using json = nlohmann::json;
using clock = std::chrono::steady_clock;

std::string text(const json& j, const char* key, std::size_t max = 40) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return "-";
  return base::printable(it->is_string() ? it->get<std::string>() : it->dump(), max);
}

std::uint64_t count(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

const json& list(const json& j, const char* key) {
  static const json empty = json::array();
  const auto it = j.find(key);
  return it != j.end() && it->is_array() ? *it : empty;
}

std::string human_bytes(double bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  std::size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(units)) {
    bytes /= 1024;
    ++unit;
  }
  char out[32];
  std::snprintf(out, sizeof out, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return out;
}

std::string human_rate(double per_second) {
  char out[32];
  if (per_second >= 1e6)
    std::snprintf(out, sizeof out, "%.2fM", per_second / 1e6);
  else if (per_second >= 1e3)
    std::snprintf(out, sizeof out, "%.1fk", per_second / 1e3);
  else
    std::snprintf(out, sizeof out, "%.0f", per_second);
  return out;
}

// Counters seen at the last refresh, per (host, peer or pid, counter).
struct previous {
  std::map<std::string, std::uint64_t> values;
  clock::time_point at;
};

class table {
 public:
  explicit table(const previous& before, previous& now, double seconds)
      : before_(before), now_(now), seconds_(seconds) {}

  // Per second since the last refresh; "-" on the first.
  std::string rate(const std::string& key, std::uint64_t value, bool bytes) {
    now_.values[key] = value;
    const auto it = before_.values.find(key);
    if (it == before_.values.end() || seconds_ <= 0 || value < it->second) return "-";
    const double r = static_cast<double>(value - it->second) / seconds_;
    return bytes ? human_bytes(r) + "/s" : human_rate(r) + "/s";
  }

 private:
  const previous& before_;
  previous& now_;
  double seconds_;
};

void print_host(std::ostream& out, const json& s, table& t) {
  const std::string host = text(s, "host", 36);
  out << "host " << host.substr(0, 8) << "  " << text(s, "address") << "  pid " << text(s, "pid")
      << "  " << text(s, "hostname") << "  queued " << human_bytes(double(count(s, "queued_bytes")))
      << "  dropped " << count(s.value("counters", json::object()), "dropped") << "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-5s %-8s %-10s %-8s %12s %12s %12s %10s\n", "SLOT", "PID",
                "STATE", "RESTARTS", "IN", "OUT", "OUT BYTES", "QUEUED");
  out << line;
  std::map<std::uint64_t, const json*> node_by_pid;
  for (const auto& n : list(s, "nodes")) node_by_pid[count(n, "pid")] = &n;
  for (const auto& w : list(s, "workers")) {
    const auto pid = count(w, "pid");
    const auto it = node_by_pid.find(pid);
    const json none = json::object();
    const json& n = it == node_by_pid.end() ? none : *it->second;
    const std::string key = host + "/worker/" + std::to_string(pid);
    std::snprintf(line, sizeof line, "  %-5s %-8s %-10s %-8s %12s %12s %12s %10s\n",
                  text(w, "slot").c_str(), pid ? std::to_string(pid).c_str() : "-",
                  text(w, "state").c_str(), text(w, "restarts").c_str(),
                  t.rate(key + "/in", count(n, "frames_in"), false).c_str(),
                  t.rate(key + "/out", count(n, "frames_out"), false).c_str(),
                  t.rate(key + "/bytes", count(n, "bytes_out"), true).c_str(),
                  human_bytes(double(count(n, "queued_bytes"))).c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "  %-9s %-21s %-17s %6s %12s %12s %12s %10s %8s\n", "LINK TO",
                "ADDRESS", "STATE", "NODES", "IN", "OUT", "IN BYTES", "QUEUED", "RTT");
  out << line;
  for (const auto& p : list(s, "peers")) {
    const std::string peer = text(p, "host", 36);
    const std::string key = host + "/link/" + peer;
    const bool linked = p.value("state", "") == "linked";
    std::snprintf(line, sizeof line, "  %-9s %-21s %-17s %6s %12s %12s %12s %10s %8s\n",
                  peer.substr(0, 8).c_str(), text(p, "address", 21).c_str(),
                  text(p, "state", 17).c_str(), linked ? text(p, "nodes").c_str() : "-",
                  linked ? t.rate(key + "/in", count(p, "frames_in"), false).c_str() : "-",
                  linked ? t.rate(key + "/out", count(p, "frames_out"), false).c_str() : "-",
                  linked ? t.rate(key + "/bytes", count(p, "bytes_in"), true).c_str() : "-",
                  linked ? human_bytes(double(count(p, "queued_bytes"))).c_str() : "-",
                  p.contains("rtt_us") ? (std::to_string(count(p, "rtt_us")) + "us").c_str() : "-");
    out << line;
  }
}

}  // namespace

int run_status_watch(const client_args& args) {
  previous before;
  for (;;) {
    const auto rows = read_rows(args);
    previous now;
    now.at = clock::now();
    const double seconds =
        before.values.empty() ? 0 : std::chrono::duration<double>(now.at - before.at).count();
    table t(before, now, seconds);
    std::ostringstream out;
    out << "cluster '" << base::printable(args.cluster, 64) << "': " << rows.size()
        << " host(s); every " << args.interval_ms << " ms (Ctrl-C to stop)\n\n";
    for (const auto& row : rows) {
      if (!is_local(row)) {
        out << "host " << row.id.to_string().substr(0, 8) << "  "
            << base::printable(row.address, 64) << "  (on another machine)\n\n";
        continue;
      }
      try {
        print_host(out, query_status(row, args.cluster, std::chrono::milliseconds(args.timeout_ms)),
                   t);
      } catch (const std::exception& e) {
        out << "host " << row.id.to_string().substr(0, 8)
            << "  (no answer: " << base::printable(e.what(), 200) << ")\n";
      }
      out << "\n";
    }
    // Home and clear, then the whole frame in one write: no flicker between refreshes.
    std::cout << "\x1b[H\x1b[2J" << out.str() << std::flush;
    before = std::move(now);
    std::this_thread::sleep_for(std::chrono::milliseconds(args.interval_ms));
  }
}

}  // namespace galaxies::cli
