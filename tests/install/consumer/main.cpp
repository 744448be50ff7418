// An application of an installed galaxies: a host whose workers answer "echo". `--probe` exits at
// once, after touching enough of the library to prove that it links and runs.

// Before any header: Asio's own guess for this macro depends on what was included first. Seeing
// it here proves the package handed the application the library's Asio configuration.
#if !defined(ASIO_HAS_STD_ALIGNED_ALLOC)
#error "the galaxies package did not pass its Asio definitions (see cmake/FindAsio.cmake)"
#endif

#include <galaxies/galaxies.hpp>
#include <galaxies/json.hpp>
#include <iostream>
#include <string_view>

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "--probe") {
    const auto id = galaxies::node_id::random();
    const auto parsed = galaxies::node_id::parse(id.to_string());
    const auto payload = galaxies::to_bytes(nlohmann::json{{"node", id.to_string()}});
    const bool ok =
        parsed && *parsed == id && galaxies::parse_json(payload)["node"] == id.to_string();
    std::cout << "galaxies consumer probe: "
              << galaxies::make_error_code(galaxies::errc::overloaded).message() << ", "
              << galaxies::to_string(galaxies::leave_reason::graceful) << ", "
              << (ok ? "ok" : "FAILED") << "\n";
    return ok ? 0 : 1;
  }
  galaxies::options opts;
  opts.workers = 1;
  return galaxies::run(argc, argv, opts, [](galaxies::node& n) {
    n.on("echo", [](const galaxies::message& m, galaxies::responder r) { r.reply(m.payload); });
  });
}
