// `galaxies status`: hosts, their addresses, nodes per host, link state.
#include <iostream>

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
}

int run_status(const client_args& args) {
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
    std::cout << all.dump(2) << "\n";
    return 0;
  }
  std::cout << "cluster '" << args.cluster << "': " << rows.size() << " host(s)\n";
  for (const auto& h : all) {
    std::cout << "host " << h["host"].get<std::string>() << "  " << h["address"].get<std::string>()
              << "  pid " << h["pid"] << " on " << h["hostname"].get<std::string>() << "\n";
    if (h.contains("error")) {
      std::cout << "  (no answer: " << h["error"].get<std::string>() << ")\n";
      continue;
    }
    if (!h.contains("status")) {
      std::cout << "  (on another machine: run status there for its details)\n";
      continue;
    }
    const auto& s = h["status"];
    std::cout << "  nodes: " << s["nodes"].size() << "\n";
    for (const auto& n : s["nodes"])
      std::cout << "    " << n["node"].get<std::string>() << "  pid " << n["pid"] << "  "
                << n["kind"].get<std::string>() << "\n";
    std::cout << "  links: " << s["peers"].size() << "\n";
    for (const auto& p : s["peers"]) {
      std::cout << "    host " << p["host"].get<std::string>() << "  "
                << p["address"].get<std::string>() << "  " << p["state"].get<std::string>();
      if (p.contains("nodes")) std::cout << "  " << p["nodes"] << " node(s)";
      std::cout << "\n";
    }
  }
  return 0;
}

}  // namespace galaxies::cli
