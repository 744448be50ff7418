// `galaxies status`: hosts, their addresses, nodes per host, link state.
#include <iostream>

#include "base/text.hpp"
#include "commands.hpp"
#include "local_masters.hpp"

namespace galaxies::cli {

void add_client_options(CLI::App& cmd, client_args& args) {
  cmd.add_option("--registry", args.registry, "registry URL (file:PATH)");
  cmd.add_option("--cluster", args.cluster, "cluster name");
  cmd.add_option("--host", args.host, "use the local host whose id starts with this");
  cmd.add_option("--timeout-ms", args.timeout_ms, "how long to wait for answers")
      ->check(CLI::Range(1, 600000));
}

void add_status_command(CLI::App& app, client_args& args) {
  auto* cmd = app.add_subcommand("status", "show the cluster's hosts, nodes and links");
  add_client_options(*cmd, args);
  cmd->add_flag("--json", args.json, "print JSON");
  cmd->add_flag("--watch", args.watch,
                "refresh a table of hosts, workers and links until interrupted, like top");
  cmd->add_option("--interval-ms", args.interval_ms, "--watch: time between refreshes")
      ->check(CLI::Range(100, 60000));
}

int run_status(const client_args& args) {
  if (args.watch) return run_status_watch(args);
  const auto rows = read_rows(args);
  nlohmann::json all = nlohmann::json::array();
  for (const auto& row : rows) {
    nlohmann::json host{{"host", row.id.to_string()},
                        {"address", row.address},
                        {"hostname", row.hostname},
                        {"pid", row.pid}};
    if (is_local(row)) {
      try {
        host["status"] =
            query_status(row, args.cluster, std::chrono::milliseconds(args.timeout_ms));
      } catch (const std::exception& e) {
        host["error"] = e.what();
      }
    }
    all.push_back(host);
  }
  if (args.json) {
    std::cout << all.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return 0;
  }
  // Registry rows and peers' hello records are printed for people: escaped, never raw (a
  // hostname must not be able to move the cursor or recolour the terminal).
  const auto text = [](const nlohmann::json& value) {
    return base::printable(value.is_string() ? value.get<std::string>() : value.dump(), 200);
  };
  std::cout << "cluster '" << args.cluster << "': " << rows.size() << " host(s)\n";
  for (const auto& h : all) {
    std::cout << "host " << text(h["host"]) << "  " << text(h["address"]) << "  pid " << h["pid"]
              << " on " << text(h["hostname"]) << "\n";
    if (h.contains("error")) {
      std::cout << "  (no answer: " << text(h["error"]) << ")\n";
      continue;
    }
    if (!h.contains("status")) {
      std::cout << "  (on another machine: run status there for its details)\n";
      continue;
    }
    const auto& s = h["status"];
    std::cout << "  nodes: " << s["nodes"].size() << "\n";
    for (const auto& n : s["nodes"]) {
      std::cout << "    " << text(n["node"]) << "  pid " << n["pid"] << "  " << text(n["kind"]);
      if (const auto groups = n.value("groups", nlohmann::json::array()); !groups.empty())
        std::cout << "  in " << groups.size() << " group(s)";
      std::cout << "\n";
    }
    if (const auto groups = s.value("groups", nlohmann::json::object()); groups.is_object()) {
      std::cout << "  groups: " << groups.value("count", 0) << " ("
                << groups.value("memberships", 0) << " memberships)";
      // The five largest by name; `--json` has the 32 the master names.
      std::size_t named = 0;
      for (const auto& g : groups.value("largest", nlohmann::json::array())) {
        if (named++ == 5) break;
        std::cout << (named == 1 ? "  largest: " : ", ") << text(g["group"]) << " ("
                  << g.value("members", 0) << ")";
      }
      std::cout << "\n";
    }
    std::cout << "  links: " << s["peers"].size() << "\n";
    for (const auto& p : s["peers"]) {
      std::cout << "    host " << text(p["host"]) << "  " << text(p["address"]) << "  "
                << text(p["state"]);
      if (p.contains("nodes")) std::cout << "  " << p["nodes"] << " node(s)";
      if (p.value("tls", false)) std::cout << "  tls";
      if (p.value("authenticated", false)) std::cout << "  authenticated";
      std::cout << "\n";
    }
  }
  return 0;
}

}  // namespace galaxies::cli
