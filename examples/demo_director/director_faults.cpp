// The faults the demo injects, and what it checks each time: a worker killed with SIGKILL (every
// other worker sees it leave, requests pending with it fail at once, its respawn joins) and a host
// stopped with SIGTERM (its workers and the host leave, seen by all; its master exits 0).
#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <map>

#include "director.hpp"
#include "director_helpers.hpp"

namespace director {

bool demo::kill_worker() {
  // A moment when players of host A's workers have trades pending: the kill then shows that
  // requests to a dead node fail at once, rather than waiting for their deadline.
  auto pending_to = [&](const std::string& id) {
    std::set<std::string> keys;
    for (const auto& [key, tr] : view_.trades())
      if (tr.to == id && !tr.done) keys.insert(key);
    return keys;
  };
  worker_record* victim = nullptr;
  auto choose = [&] {
    victim = nullptr;
    std::size_t most = 0;
    for (auto* w : view_.of_host("A"))
      if (w->expected_alive && w->ready && (!victim || pending_to(w->id).size() > most)) {
        victim = w;
        most = pending_to(w->id).size();
      }
    return victim && most > 0;
  };
  wait_for(
      "trades are pending with a worker of host A", 5, choose, [] { return ""; }, false);
  if (!victim) {
    fail("no worker of host A to kill");
    return false;
  }
  const auto pending = pending_to(victim->id);
  std::set<std::string> before;
  for (auto* w : view_.workers()) before.insert(w->id);

  phase(fmt::format(
      "killing worker {} (pid {}) with SIGKILL: no goodbye, only its master sees it exit",
      victim->label, victim->pid));
  const long long kill_us = now_us();
  victim->expected_alive = false;
  victim->killed = true;
  ++killed_;
  ::kill(victim->pid, SIGKILL);

  const std::string id = victim->id;
  auto others = view_.alive();
  auto all_saw_leave = [&] {
    return std::all_of(others.begin(), others.end(), [&](auto* o) { return o->left.contains(id); });
  };
  auto missing = [&] {
    std::vector<worker_record*> m;
    for (auto* o : others)
      if (!o->left.contains(id)) m.push_back(o);
    return "not seen by " + labels_of(m);
  };
  if (!wait_for("every other worker sees " + victim->label + " leave", 10, all_saw_leave, missing))
    return false;
  double first = 1e9, last = 0;
  std::set<std::string> reasons;
  for (auto* o : others) {
    first = std::min(first, ms_between(kill_us, o->left_t_us[id]));
    last = std::max(last, ms_between(kill_us, o->left_t_us[id]));
    reasons.insert(o->left_reason[id]);
  }
  say(fmt::format(
      "nodeLeft({}) seen by all {} other workers, {:.1f} to {:.1f} ms after the kill (reason: {})",
      victim->label, others.size(), first, last, join(reasons)));
  passed(fmt::format("nodeLeft({}) seen by all {} other workers ({:.0f} ms)", victim->label,
                     others.size(), last));
  if (!check_pending_trades(victim->label, pending, kill_us)) return false;
  return wait_respawn(before, kill_us);
}

bool demo::check_pending_trades(const std::string& victim, const std::set<std::string>& pending,
                                long long kill_us) {
  if (pending.empty()) {
    say("(no trade happened to be pending with " + victim + ")");
    return true;
  }
  auto all_done = [&] {
    return std::all_of(pending.begin(), pending.end(),
                       [&](const auto& k) { return view_.trades().at(k).done; });
  };
  if (!wait_for("the trades pending with " + victim + " end", 8, all_done,
                [] { return "still pending"; }))
    return false;
  std::map<std::string, int> outcomes;
  double last = 0;
  for (const auto& k : pending) {
    const trade& tr = view_.trades().at(k);
    ++outcomes[tr.outcome];
    last = std::max(last, ms_between(kill_us, tr.done_t_us));
  }
  std::string list;
  for (const auto& [o, n] : outcomes)
    list += fmt::format("{}{} {}", list.empty() ? "" : ", ", n, o);
  say(fmt::format(
      "{} trade offer(s) to {}'s players were pending: {}, all within {:.1f} ms of the kill "
      "(their deadline was 10 s)",
      pending.size(), victim, list, last));
  // node_left is the contract; an answer that was already on its way may still arrive first.
  const int bad = static_cast<int>(pending.size()) - outcomes["node_left"] - outcomes["accepted"] -
                  outcomes["declined"];
  if (bad > 0) {
    fail(fmt::format("{} request(s) pending with {} did not fail with node_left: {}", bad, victim,
                     list));
    return false;
  }
  passed(fmt::format("{} request(s) pending with {} failed at once with node_left",
                     outcomes["node_left"], victim));
  return true;
}

bool demo::wait_respawn(const std::set<std::string>& before, long long kill_us) {
  // The master respawns the slot: a new process, so a new node that everyone must see join.
  worker_record* respawn = nullptr;
  auto respawned = [&] {
    for (auto* w : view_.of_host("A")) {
      if (before.contains(w->id) || !w->ready) continue;
      std::vector<worker_record*> all = view_.alive();
      if (!all_see_each_other(all, static_cast<std::size_t>(opts_.hosts))) return false;
      respawn = w;
      return true;
    }
    return false;
  };
  if (!wait_for("host A respawns the worker and every worker sees it join", 15, respawned,
                [] { return std::string("no new worker of host A seen by all"); }))
    return false;
  double last = 0;
  for (auto* o : view_.alive())
    if (o != respawn) last = std::max(last, ms_between(kill_us, o->joined_t_us[respawn->id]));
  const std::size_t others = view_.alive().size() - 1;
  say(fmt::format(
      "host A's master respawned the worker as {} (pid {}), a new node: nodeJoined({}) seen by "
      "all {} other workers {:.0f} ms after the kill (restart backoff: 100 ms)",
      respawn->label, respawn->pid, respawn->label, others, last));
  passed(fmt::format("the respawned {} was seen joining by all {} other workers", respawn->label,
                     others));
  return true;
}

bool demo::stop_host() {
  host_process* host = hosts_.back().get();
  const std::string label = host->label();
  auto leaving = view_.of_host(label);
  std::erase_if(leaving, [](auto* w) { return !w->expected_alive; });
  const std::string host_id = leaving.empty() ? "" : leaving.front()->host_id;
  phase(fmt::format(
      "stopping host {} (master pid {}) with SIGTERM: a graceful stop of its {} workers", label,
      host->pid(), leaving.size()));
  for (auto* w : leaving) w->expected_alive = false;
  stopped_with_host_ += leaving.size();
  stopped_hosts_.insert(label);
  const long long stop_us = now_us();
  host->signal(SIGTERM);

  auto remaining = view_.alive();
  auto missing = [&] {
    for (auto* o : remaining) {
      if (!o->hosts_left.contains(host_id))
        return o->label + " has not seen host " + label + " leave";
      for (auto* w : leaving)
        if (!o->left.contains(w->id)) return o->label + " has not seen " + w->label + " leave";
    }
    return std::string();
  };
  if (!wait_for(
          "every remaining worker sees host " + label + " and its workers leave", 15,
          [&] { return missing().empty(); }, missing))
    return false;
  double nodes_last = 0, host_last = 0;
  std::set<std::string> reasons, host_reasons;
  for (auto* o : remaining) {
    for (auto* w : leaving) {
      nodes_last = std::max(nodes_last, ms_between(stop_us, o->left_t_us[w->id]));
      reasons.insert(o->left_reason[w->id]);
    }
    host_last = std::max(host_last, ms_between(stop_us, o->host_left_t_us[host_id]));
    host_reasons.insert(o->hosts_left[host_id]);
  }
  say(fmt::format("{} left (reason: {}), seen by all {} remaining workers within {:.0f} ms",
                  labels_of(leaving), join(reasons), remaining.size(), nodes_last));
  say(fmt::format("hostLeft({}) seen by all {} remaining workers within {:.0f} ms (reason: {})",
                  label, remaining.size(), host_last, join(host_reasons)));
  passed(fmt::format("{} and host {} were seen leaving by all {} remaining workers",
                     labels_of(leaving), label, remaining.size()));
  if (!wait_for(
          "host " + label + "'s master exits", 15, [&] { return host->exited(); },
          [] { return std::string("it is still running"); }))
    return false;
  say(fmt::format("host {}'s master exited ({}) {:.0f} ms after SIGTERM", label,
                  describe_wait_status(host->wait_status()), ms_between(stop_us, now_us())));
  if (host->wait_status() != 0) {
    fail("host " + label + "'s master did not exit with status 0");
    return false;
  }
  return true;
}

}  // namespace director
