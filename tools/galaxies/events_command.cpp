// `galaxies events`: the cluster's membership events as a master sees them, as they happen.
#include <csignal>
#include <ctime>
#include <iostream>

#include "base/text.hpp"
#include "commands.hpp"
#include "local_masters.hpp"
#include "wire/control.hpp"

namespace galaxies::cli {
namespace {

std::string utc_time(std::int64_t ms) {
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03dZ", static_cast<int>(ms % 1000));
  return std::string(text) + millis;
}

// A master's text is printed for people: escaped, never raw.
std::string field(const nlohmann::json& e, const char* key, std::size_t max = 200) {
  const auto it = e.find(key);
  if (it == e.end()) return {};
  return base::printable(it->is_string() ? it->get<std::string>() : it->dump(), max);
}

std::string human_line(const nlohmann::json& e) {
  std::string line = utc_time(e.value("time_ms", std::int64_t{0})) + "  " + field(e, "event");
  const std::string node = field(e, "node");
  if (!node.empty()) line += "  node " + node.substr(0, 8) + " (pid " + field(e, "pid") + ")";
  line += "  host " + field(e, "host").substr(0, 8);
  if (e.contains("reason")) line += "  " + field(e, "reason");
  if (e.contains("exit")) line += ": " + field(e, "exit");
  return line;
}

}  // namespace

void add_events_command(CLI::App& app, client_args& args) {
  auto* cmd = app.add_subcommand(
      "events", "print the cluster's membership events as they happen (until interrupted)");
  add_client_options(*cmd, args);
  cmd->add_flag("--json", args.json, "one JSON object per line");
}

int run_events(const client_args& args) {
  const auto rows = read_rows(args);
  const auto master = pick_local_master(rows, args);
  // Ctrl-C and SIGTERM end the process as they normally do: nothing is left to clean up.
  observe(
      master, args.cluster, [](std::vector<std::byte>& out) { wire::append_watch_request(out); },
      [&](const wire::frame_view& frame) {
        if (frame.header.type != wire::frame_type::watch_event) return true;
        const auto e = nlohmann::json::parse(wire::status_json(frame), nullptr, false);
        if (!e.is_object()) throw std::runtime_error("the master sent an event that is not JSON");
        if (e.value("event", "") == "watching") {
          // On stderr in both modes: stdout carries events only.
          std::cerr << "watching host " << field(e, "host") << " of cluster '"
                    << base::printable(args.cluster, 64) << "' after its event " << field(e, "seq")
                    << " (Ctrl-C to stop)" << std::endl;
          return true;
        }
        if (args.json)
          std::cout << e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        else
          std::cout << human_line(e) << "\n";
        std::cout.flush();
        return true;
      },
      std::nullopt);
  return 0;
}

}  // namespace galaxies::cli
