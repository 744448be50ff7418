#include "local_masters.hpp"

#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <filesystem>
#include <functional>
#include <stdexcept>

#include "host/registry_factory.hpp"
#include "wire/control.hpp"
#include "wire/frame.hpp"

namespace galaxies::cli {
namespace {

std::string this_hostname() {
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

std::vector<registry::host_record> read_rows(const client_args& args) {
  asio::io_context io;
  const std::string url =
      args.registry.empty() ? host::default_registry_url(args.cluster) : args.registry;
  auto reg = host::make_registry(io.get_executor(), url, args.cluster);
  std::error_code error;
  std::vector<registry::host_record> rows;
  bool done = false;
  reg->read([&](std::error_code ec, std::vector<registry::host_record> r) {
    error = ec;
    rows = std::move(r);
    done = true;
  });
  io.run_for(std::chrono::milliseconds(args.timeout_ms));
  if (!done)
    throw std::runtime_error("the registry " + reg->describe() + " did not answer in time");
  if (error)
    throw std::runtime_error("cannot read the registry " + reg->describe() + ": " +
                             error.message());
  return rows;
}

bool is_local(const registry::host_record& row) {
  std::error_code ec;
  return row.hostname == this_hostname() && !row.unix_path.empty() &&
         std::filesystem::is_socket(row.unix_path, ec);
}

registry::host_record pick_local_master(const std::vector<registry::host_record>& rows,
                                        const client_args& args) {
  for (const auto& row : rows)
    if (is_local(row) && row.id.to_string().starts_with(args.host)) return row;
  if (!args.host.empty())
    throw std::runtime_error("no host whose id starts with '" + args.host +
                             "' runs on this machine");
  throw std::runtime_error("no host of cluster '" + args.cluster +
                           "' runs on this machine (start one with: galaxies host)");
}

void observe(const registry::host_record& row, const std::string& cluster,
             const std::function<void(std::vector<std::byte>&)>& ask, const frame_handler& on_frame,
             std::optional<std::chrono::milliseconds> timeout) {
  asio::io_context io;
  asio::local::stream_protocol::socket socket(io);
  std::vector<std::byte> out;
  wire::hello h;
  h.role = wire::role::observer;
  h.sender = uuid::random();
  h.target = row.id.value();
  h.pid = static_cast<std::uint32_t>(::getpid());
  h.cluster = cluster;
  wire::append_hello(out, h);
  ask(out);

  std::vector<std::byte> in;
  std::string error;
  bool done = false;
  // A master's frames are bounded by its max_frame_size; an observer holds one at a time.
  const wire::frame_parser parser;
  std::array<std::byte, 65536> chunk;
  std::function<void()> read_more = [&] {
    socket.async_read_some(asio::buffer(chunk), [&](std::error_code ec, std::size_t n) {
      if (ec) {
        error = "the master closed the connection: " + ec.message();
        return;
      }
      in.insert(in.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
      while (true) {
        const auto r = parser.parse(in);
        if (r.state == wire::parse_result::status::error) {
          error = "bad answer from the master: " + r.error.message();
          return;
        }
        if (r.state == wire::parse_result::status::need_more) return read_more();
        if (r.frame.header.type == wire::frame_type::refuse) {
          wire::refuse why;
          wire::decode_refuse(r.frame, why);
          error = std::string("refused: ") + wire::to_string(why.code) + ": " + why.text;
          return;
        }
        if (!on_frame(r.frame)) {
          done = true;
          io.stop();
          return;
        }
        in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(r.frame.header.total()));
      }
    });
  };
  socket.async_connect(
      asio::local::stream_protocol::endpoint(row.unix_path), [&](std::error_code ec) {
        if (ec) {
          error = "cannot connect to " + row.unix_path + ": " + ec.message();
          return;
        }
        asio::async_write(socket, asio::buffer(out), [&](std::error_code ec, std::size_t) {
          if (ec) error = "cannot write to the master: " + ec.message();
        });
        read_more();
      });
  if (timeout)
    io.run_for(*timeout);
  else
    io.run();
  if (!error.empty()) throw std::runtime_error(error);
  if (!done) throw std::runtime_error("host " + row.id.to_string() + " did not answer in time");
}

// A blocking exchange bounded by `timeout`: connect, hello, welcome, ask, answer.
nlohmann::json query_status(const registry::host_record& row, const std::string& cluster,
                            std::chrono::milliseconds timeout) {
  nlohmann::json result;
  observe(
      row, cluster, [](std::vector<std::byte>& out) { wire::append_status_request(out); },
      [&](const wire::frame_view& frame) {
        if (frame.header.type != wire::frame_type::status_reply) return true;
        result = nlohmann::json::parse(wire::status_json(frame), nullptr, false);
        return false;
      },
      timeout);
  if (result.is_discarded()) throw std::runtime_error("the master's status is not valid JSON");
  return result;
}

}  // namespace galaxies::cli
