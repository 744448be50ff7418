// The director's script (run), its event pump, and the checks at the start and the end. The faults
// it injects are in director_faults.cpp, what it tells along the way in director_story.cpp.
#include "director.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "director_helpers.hpp"

namespace director {
namespace {

volatile std::sig_atomic_t interrupt_requested = 0;
extern "C" void on_interrupt(int) {
  interrupt_requested = 1;
}

struct interrupted_error : std::runtime_error {
  interrupted_error() : std::runtime_error("interrupted") {}
};

}  // namespace

demo::demo(director_options opts)
    : opts_(std::move(opts)), start_(std::chrono::steady_clock::now()) {
  if (!std::filesystem::is_regular_file(opts_.game_server))
    throw std::runtime_error("no game_server program at '" + opts_.game_server +
                             "' (build it: scripts/build.sh game_server, or pass --game-server)");
  if (opts_.work_dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/galaxies-demo.XXXXXX";
    if (!::mkdtemp(templ.data()))
      throw std::runtime_error("cannot create a directory like " + templ);
    opts_.work_dir = templ;
  } else {
    std::filesystem::create_directories(opts_.work_dir);
  }
  if (!opts_.registry_url.empty()) {
    registry_url_ = opts_.registry_url;
    cluster_ = "demo-" + std::to_string(::getpid());
    registry_text_ =
        fmt::format("{} (given with --registry-url; cluster {})", registry_url_, cluster_);
  } else if (opts_.registry == "file") {
    registry_url_ = "file:" + opts_.work_dir + "/registry";
    registry_text_ = "the file " + opts_.work_dir + "/registry";
  } else if (opts_.registry != "etcd" && opts_.registry != "redis") {
    throw std::invalid_argument("unknown --registry '" + opts_.registry +
                                "': use file, etcd or redis");
  }  // etcd, redis: start_registry() starts the server and sets both
  events_file_ = std::fopen((opts_.work_dir + "/events.jsonl").c_str(), "w");
}

demo::~demo() {
  if (events_file_) std::fclose(events_file_);
}

double demo::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void demo::say(const std::string& text) const {
  fmt::print("[{:5.1f}s] {}\n", elapsed(), text);
  std::fflush(stdout);
}

void demo::phase(const std::string& text) const {
  fmt::print("\n[{:5.1f}s] === {} ===\n", elapsed(), text);
  std::fflush(stdout);
}

void demo::fail(const std::string& what, const std::string& detail) {
  failures_.push_back(what);
  say("FAILED: " + what);
  if (!detail.empty()) fmt::print("{}\n", detail);
}

// ---------------------------------------------------------------------------------------------
// The event pump: every wait goes through here, so the cluster is always being listened to.

void demo::pump(std::chrono::milliseconds max_wait) {
  if (interrupt_requested && !stopping_) throw interrupted_error();
  std::vector<pollfd> fds;
  std::vector<host_process*> owners;
  for (auto& h : hosts_)
    if (h->stdout_fd() >= 0) {
      fds.push_back({h->stdout_fd(), POLLIN, 0});
      owners.push_back(h.get());
    }
  const int n = ::poll(fds.data(), fds.size(), static_cast<int>(max_wait.count()));
  if (n < 0 && errno != EINTR) throw std::runtime_error("poll failed");
  for (std::size_t i = 0; n > 0 && i < fds.size(); ++i) {
    if (fds[i].revents == 0) continue;
    host_process* h = owners[i];
    h->read_lines([&](std::string_view line) {
      if (events_file_) fmt::print(events_file_, "{} {}\n", h->label(), line);
      if (opts_.verbose) fmt::print("    {} | {}\n", h->label(), line);
      const auto event = view_.on_line(h->label(), line);
      if (!event.is_null()) on_event(event);
    });
  }
  for (auto& h : hosts_) h->reap();
}

bool demo::hosts_alive(const std::string& during) {
  if (store_ && !store_reported_ && store_->exited()) {
    store_reported_ = true;
    fail(fmt::format("the private {} (pid {}) exited unexpectedly ({}) during: {}",
                     store_->program(), store_pid_, describe_wait_status(store_->wait_status()),
                     during),
         fmt::format("the end of its log {}:\n{}", store_->log_path().string(),
                     tail_of_file(store_->log_path().string(), 10)));
    return false;
  }
  for (auto& h : hosts_) {
    if (!h->exited() || stopped_hosts_.contains(h->label())) continue;
    stopped_hosts_.insert(h->label());  // reported once
    const std::string log = opts_.work_dir + "/host-" + h->label() + ".log";
    fail(fmt::format("host {}'s master exited unexpectedly ({}) during: {}", h->label(),
                     describe_wait_status(h->wait_status()), during),
         fmt::format("the end of its log {}:\n{}", log, tail_of_file(log, 10)));
    return false;
  }
  return true;
}

bool demo::wait_for(const std::string& what, double timeout_s, const std::function<bool()>& done,
                    const std::function<std::string()>& explain, bool required) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (!done()) {
    if (!hosts_alive("waiting until " + what)) return false;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      if (required) fail(fmt::format("not within {:g} s: {}; {}", timeout_s, what, explain()));
      return false;
    }
    pump(std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(left),
                    std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
  }
  return true;
}

bool demo::play_until(double t) {
  quiet_ = false;
  next_story_at_ = elapsed() + 0.3;
  while (elapsed() < t && hosts_alive("the game")) {
    pump(std::chrono::milliseconds(100));
    tell_room_moves();
    if (elapsed() >= next_traffic_at_) tell_traffic();
  }
  quiet_ = true;
  return elapsed() >= t;
}

// ---------------------------------------------------------------------------------------------
// The phases

bool demo::start_registry() {
  if (!registry_url_.empty()) return true;  // a file, or a registry given with --registry-url
  const bool etcd = opts_.registry == "etcd";
  const std::string name = etcd ? "etcd" : "Redis";
  phase(
      fmt::format("starting a private {} server on 127.0.0.1 (free ports) for the registry", name));
  const std::string program = etcd ? "etcd" : "redis-server";
  if (galaxies::stores::find_on_path(program).empty()) {
    fail(
        fmt::format("could not start the private {} server: {} is not installed (not on PATH); "
                    "scripts/setup.sh installs it (Debian package {})",
                    name, program, etcd ? "etcd-server" : "redis-server"));
    return false;
  }
  galaxies::stores::store_settings settings;
  settings.log_path = opts_.work_dir + "/" + program + ".log";
  settings.check_interrupt = [] {
    if (interrupt_requested) throw interrupted_error();
  };
  try {
    if (etcd)
      store_ = std::make_unique<galaxies::stores::etcd_server>(std::move(settings));
    else
      store_ = std::make_unique<galaxies::stores::redis_server>(std::vector<std::string>{},
                                                                std::move(settings));
  } catch (const interrupted_error&) {
    throw;
  } catch (const std::exception& e) {
    const std::string why = e.what();
    const auto nl = why.find('\n');
    fail(fmt::format("could not start the private {} server: {}", name, why.substr(0, nl)),
         nl == std::string::npos ? "" : why.substr(nl + 1));
    return false;
  }
  store_->keep_dir(opts_.keep);
  store_pid_ = store_->pid();
  registry_url_ = store_->url();
  registry_text_ = fmt::format("{} at {} (a private {} started for this demo, pid {})", name,
                               registry_url_, store_->program(), store_pid_);
  say(fmt::format("{} is ready at {} after {:.1f} s: {} pid {}, data in {}, log {}", name,
                  registry_url_, std::chrono::duration<double>(store_->ready_after()).count(),
                  store_->program(), store_pid_, store_->dir().string(),
                  store_->log_path().string()));
  return true;
}

void demo::stop_registry() {
  if (!store_) return;
  if (store_->exited()) {
    hosts_alive("the end");  // reports an unexpected exit, if it has not been reported yet
    return;
  }
  store_reported_ = true;  // from now on, its exit is expected
  say(fmt::format("stopping the private {} (pid {}) with SIGTERM", store_->program(), store_pid_));
  if (!store_->stop())
    fail(fmt::format("the private {} (pid {}) did not exit on SIGTERM: killed", store_->program(),
                     store_pid_));
}

bool demo::start_cluster() {
  phase(
      fmt::format("starting {} hosts x {} workers of game_server on 127.0.0.1 (free ports); the "
                  "registry is {}",
                  opts_.hosts, opts_.workers, registry_text_));
  // One host after the other, each once the previous one is up: every start is a join.
  for (int i = 0; i < opts_.hosts; ++i) {
    const std::string label(1, static_cast<char>('A' + i));
    const std::vector<std::string> argv{opts_.game_server,
                                        "--name",
                                        label,
                                        "--workers",
                                        std::to_string(opts_.workers),
                                        "--registry",
                                        registry_url_,
                                        "--cluster",
                                        cluster_,
                                        "--listen",
                                        "127.0.0.1:0",
                                        "--unix",
                                        opts_.work_dir + "/" + label + ".sock",
                                        "--output",
                                        "json"};
    hosts_.push_back(
        std::make_unique<host_process>(label, argv, opts_.work_dir + "/host-" + label + ".log"));
    const std::size_t expected = static_cast<std::size_t>((i + 1) * opts_.workers);
    auto up = [&] {
      auto all = view_.workers();
      return all.size() >= expected && all_see_each_other(all, static_cast<std::size_t>(i + 1));
    };
    auto explain = [&] {
      auto all = view_.workers();
      for (auto* w : all)
        for (auto* o : all)
          if (o != w && !w->joined.contains(o->id))
            return w->label + " has not seen " + o->label + " join";
      return fmt::format("{} of {} workers ready", all.size(), expected);
    };
    if (!wait_for("host " + label + " is up and every worker sees every other", 40, up, explain))
      return false;
  }
  const std::size_t n = view_.workers().size();
  say(fmt::format(
      "cluster formed: each of the {} workers has seen the {} others join, and the {} hosts", n,
      n - 1, opts_.hosts));
  passed(fmt::format("the cluster formed: each of {} workers saw the {} others join", n, n - 1));
  return true;
}

bool demo::check_agreement() {
  // Fresh stats (workers print them every second) from every running worker, all with one view.
  const long long since = now_us();
  auto alive = view_.alive();
  std::set<std::string> expected;
  for (auto* w : alive) expected.insert(w->id);
  auto disagreeing = [&]() -> std::string {
    for (auto* w : alive) {
      if (w->stats_t_us <= since) return w->label + " has not reported since";
      const auto ids = w->stats.value("view", std::vector<std::string>{});
      if (std::set<std::string>(ids.begin(), ids.end()) != expected)
        return fmt::format("{} sees {} nodes, not {}", w->label, ids.size(), expected.size());
    }
    return "";
  };
  if (!wait_for(
          "the running workers agree on who is in the cluster", 10,
          [&] { return disagreeing().empty(); }, disagreeing))
    return false;
  say(fmt::format("all {} running workers agree on the cluster: {}", alive.size(),
                  labels_of(alive)));
  passed(fmt::format("the {} survivors agree on the cluster", alive.size()));
  return true;
}

void demo::check_exactly_once() {
  const std::size_t before = failures_.size();
  std::size_t events = 0;
  for (auto* w : view_.workers()) {
    for (const auto& [id, n] : w->joined) {
      events += static_cast<std::size_t>(n);
      if (n != 1) fail(fmt::format("{} saw nodeJoined({}) {} times", w->label, view_.label(id), n));
    }
    for (const auto& [id, n] : w->left) {
      events += static_cast<std::size_t>(n);
      if (n != 1) fail(fmt::format("{} saw nodeLeft({}) {} times", w->label, view_.label(id), n));
      if (!w->joined.contains(id))
        fail(fmt::format("{} saw nodeLeft({}) without nodeJoined", w->label, view_.label(id)));
    }
  }
  for (const auto& a : view_.anomalies()) fail("event contract broken: " + a);
  if (failures_.size() == before) {
    passed(fmt::format("each of {} nodeJoined/nodeLeft events came exactly once", events));
    passed("no message arrived before its sender's nodeJoined or after its nodeLeft");
  }
}

bool demo::stop_everything() {
  stopping_ = true;
  std::vector<host_process*> running;
  for (auto& h : hosts_)
    if (!h->exited()) {
      running.push_back(h.get());
      stopped_hosts_.insert(h->label());
      for (auto* w : view_.of_host(h->label())) w->expected_alive = false;
      h->signal(SIGTERM);
    }
  if (running.empty()) return true;
  std::string names;
  for (auto* h : running) names += (names.empty() ? "" : ", ") + h->label();
  say((running.size() == 1 ? "stopping host " : "stopping hosts ") + names + " with SIGTERM");
  auto all_exited = [&] {
    return std::all_of(running.begin(), running.end(), [](auto* h) { return h->exited(); });
  };
  bool ok = wait_for("every host's master exits", 15, all_exited,
                     [] { return "a master is still running"; });
  for (auto* h : running) {
    if (!h->exited()) {
      h->signal(SIGKILL);
    } else if (h->wait_status() != 0) {
      fail(fmt::format("host {}'s master ended with {}", h->label(),
                       describe_wait_status(h->wait_status())));
      ok = false;
    }
  }
  // Workers go with their master: a pipe closes when the last process holding it has exited.
  auto pipes_closed = [&] {
    return std::all_of(hosts_.begin(), hosts_.end(), [](auto& h) { return h->stdout_fd() < 0; });
  };
  ok = wait_for("every worker exits after its master", 10, pipes_closed,
                [] { return "a worker still holds its host's stdout"; }) &&
       ok;
  if (ok) {
    say("every master exited with status 0, and every worker with its master");
    passed("every master exited with status 0 and no worker outlived it");
  }
  return ok;
}

int demo::run() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;  // no SA_RESTART: poll returns at once with EINTR
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  try {
    if (!start_registry()) return verdict();
    bool ok = start_cluster() && play_until(opts_.kill_at) && kill_worker() &&
              play_until(std::max(opts_.stop_at, elapsed() + 3)) && stop_host() &&
              play_until(std::max(opts_.end_at, elapsed() + 3));
    phase("the end: do the survivors agree? then everything stops");
    if (ok) check_agreement();
  } catch (const interrupted_error&) {
    phase("interrupted: stopping every host");
    stop_everything();
    stop_registry();
    fmt::print("logs kept in {}\n", opts_.work_dir);
    return 130;
  }
  running_at_end_ = view_.alive().size();
  stop_everything();
  stop_registry();
  check_exactly_once();  // over everything, the leaves of the last stop included
  phase("summary");
  summary();
  return verdict();
}

}  // namespace director
