#include "registry/redis/redis_scan.hpp"

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include "base/limits.hpp"

namespace galaxies::registry::redis {
namespace {

constexpr const char* scan_count = "100";
constexpr std::size_t mget_batch = 500;
// A cluster has a handful of hosts; this many keys means a runaway writer or a wrong prefix, and
// reading them all would make every reconcile unbounded.
constexpr std::size_t max_keys = 100000;

struct scan_state {
  scan_state(connection& c, const layout& l, scan_handler d)
      : conn(&c), where(l), done(std::move(d)) {}

  connection* conn;
  layout where;
  scan_handler done;
  std::set<std::string> found;  // SCAN may return a key more than once
  std::vector<std::string> keys;
  std::size_t next_batch = 0;
  parsed_rows out;

  void finish(std::error_code ec, const std::string& detail) {
    auto handler = std::move(done);  // the last use of this state: the handler may end it all
    handler(ec, detail, ec ? parsed_rows{} : std::move(out));
  }
};

void fetch_batch(const std::shared_ptr<scan_state>& state);

void scan_page_from(const std::shared_ptr<scan_state>& state, const std::string& cursor) {
  state->conn->command({"SCAN", cursor, "MATCH", state->where.scan_pattern(), "COUNT", scan_count},
                       [state](std::error_code ec, const std::string& detail, reply value) {
                         if (ec) return state->finish(ec, detail);
                         auto page = parse_scan_page(value);
                         if (!page) {
                           return state->finish(errc::unexpected_reply,
                                                "redis " + state->conn->where().endpoint() +
                                                    ": unexpected SCAN reply");
                         }
                         state->found.insert(page->keys.begin(), page->keys.end());
                         if (state->found.size() > max_keys) {
                           return state->finish(errc::unexpected_reply,
                                                "redis " + state->conn->where().endpoint() +
                                                    ": more than " + std::to_string(max_keys) +
                                                    " keys match " + state->where.scan_pattern());
                         }
                         if (page->cursor != "0") return scan_page_from(state, page->cursor);
                         state->keys.assign(state->found.begin(), state->found.end());
                         fetch_batch(state);
                       });
}

void fetch_batch(const std::shared_ptr<scan_state>& state) {
  const bool enough = state->out.rows.size() > limits::max_registry_hosts;
  if (enough || state->next_batch >= state->keys.size()) {
    return state->finish({}, {});  // parse_rows sorted
  }
  const auto first = state->next_batch;
  const auto last = std::min(state->keys.size(), first + mget_batch);
  state->next_batch = last;
  std::vector<std::string> args{"MGET"};
  args.insert(args.end(), state->keys.begin() + first, state->keys.begin() + last);
  state->conn->command(std::move(args), [state, first, last](std::error_code ec,
                                                             const std::string& detail,
                                                             reply value) {
    if (ec) return state->finish(ec, detail);
    const std::vector<std::string> batch(state->keys.begin() + first, state->keys.begin() + last);
    if (!parse_rows(state->where, batch, value, state->out)) {
      return state->finish(errc::unexpected_reply,
                           "redis " + state->conn->where().endpoint() + ": unexpected MGET reply");
    }
    fetch_batch(state);
  });
}

}  // namespace

void scan_rows(connection& conn, const layout& where, scan_handler done) {
  auto state = std::make_shared<scan_state>(conn, where, std::move(done));
  scan_page_from(state, "0");
}

}  // namespace galaxies::registry::redis
