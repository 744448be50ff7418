// `galaxies request NODE CMD PAYLOAD`: join a local master as a node, send one request, print the
// reply (stdout, exit 0) or the typed error (stderr, exit 2).
#include <asio/io_context.hpp>
#include <iostream>

#include "commands.hpp"
#include "galaxies/node.hpp"
#include "local_masters.hpp"

namespace galaxies::cli {

void add_client_options(CLI::App& cmd, client_args& args);

void add_request_command(CLI::App& app, request_args& args) {
  auto* cmd = app.add_subcommand("request", "send one request to a node and print the reply");
  add_client_options(*cmd, args);
  cmd->add_option("node", args.node, "the target node's id")->required();
  cmd->add_option("command", args.command, "the command")->required();
  cmd->add_option("payload", args.payload, "the payload (text)");
}

int run_request(const request_args& args) {
  const auto target = node_id::parse(args.node);
  if (!target) throw std::invalid_argument("'" + args.node + "' is not a node id (a UUID)");
  const auto row = pick_local_master(read_rows(args), args);

  asio::io_context io;
  node::attach_options opts;
  opts.unix_path = row.unix_path;
  opts.cluster = args.cluster;
  auto self = node::attach(io, opts);
  int exit_code = 3;
  std::string failure = "no answer in time";
  self->on_disconnected([&](std::error_code, std::string_view why) {
    if (exit_code == 3) failure = "disconnected: " + std::string(why);
  });
  self->on_ready([&] {
    self->request(*target, args.command, as_bytes(args.payload),
                  std::chrono::milliseconds(args.timeout_ms), [&](std::error_code ec, bytes reply) {
                    if (ec) {
                      failure = ec.message();
                      exit_code = 2;
                    } else {
                      std::cout << as_text(reply) << "\n";
                      exit_code = 0;
                    }
                    // No io.stop(): the loop runs out of work once the goodbye is written.
                    self->stop();
                  });
  });
  io.run_for(std::chrono::milliseconds(args.timeout_ms) + std::chrono::seconds(2));
  if (exit_code != 0) std::cerr << "galaxies: request failed: " << failure << "\n";
  return exit_code == 3 ? 2 : exit_code;
}

}  // namespace galaxies::cli
