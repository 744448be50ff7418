// galaxies: run a host, look at a cluster, send a request, measure.
#include <iostream>

#include "commands.hpp"

int main(int argc, char** argv) {
  using namespace galaxies::cli;
  CLI::App app{"galaxies: one application, many processes, many hosts"};
  app.require_subcommand(1);
  host_args host;
  client_args status;
  client_args events;
  request_args request;
  bench_args bench;
  add_host_command(app, host);
  add_status_command(app, status);
  add_events_command(app, events);
  add_request_command(app, request);
  add_bench_command(app, bench);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("host")) return run_host(argc, argv, host);
    if (app.got_subcommand("status")) return run_status(status);
    if (app.got_subcommand("events")) return run_events(events);
    if (app.got_subcommand("request")) return run_request(request);
    return run_bench(argc, argv, app, bench);
  } catch (const std::exception& e) {
    std::cerr << "galaxies: error: " << e.what() << "\n";
    return 1;
  }
}
