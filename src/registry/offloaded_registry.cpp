#include "registry/offloaded_registry.hpp"

#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <exception>
#include <utility>

namespace galaxies::registry {

offloaded_registry::offloaded_registry(const asio::any_io_executor& caller, const factory& make)
    : caller_(caller),
      keep_running_(io_.get_executor()),
      backend_(make(io_.get_executor())),
      description_(backend_->describe()),
      thread_([this] { run_thread(); }) {}

offloaded_registry::~offloaded_registry() {
  *alive_ = false;
  started_work_ = {};
  // Handlers the backend leaves queued are destroyed with io_, unrun; they hold only copies.
  asio::post(io_, [this] {
    backend_.reset();
    io_.stop();
  });
  keep_running_.reset();
  thread_.join();
}

void offloaded_registry::run_thread() {
  for (;;) {
    try {
      io_.run();
      return;
    } catch (...) {
      asio::post(caller_, [alive = alive_, error = std::current_exception()] {
        if (*alive) std::rethrow_exception(error);
      });
    }
  }
}

asio::any_io_executor offloaded_registry::tracked_caller() const {
  return asio::prefer(caller_, asio::execution::outstanding_work.tracked);
}

void offloaded_registry::on_thread(std::function<void(const asio::any_io_executor&)> call) {
  asio::post(io_, [work = tracked_caller(), alive = alive_, call = std::move(call)] {
    try {
      call(work);
    } catch (...) {
      asio::post(work, [alive, error = std::current_exception()] {
        if (*alive) std::rethrow_exception(error);
      });
    }
  });
}

void offloaded_registry::start(const host_record& self, view_handler on_view,
                               health_handler on_health) {
  started_work_ = tracked_caller();
  // The handlers themselves stay the caller's: they run only there, through these. (An empty
  // one stays empty: the backend may skip what nobody listens to.)
  view_handler view;
  if (on_view)
    view = [caller = caller_, alive = alive_,
            handler = std::make_shared<view_handler>(std::move(on_view))](
               const std::vector<host_record>& rows) {
      asio::post(caller, [alive, handler, rows] {
        if (*alive) (*handler)(rows);
      });
    };
  health_handler health;
  if (on_health)
    health = [caller = caller_, alive = alive_,
              handler = std::make_shared<health_handler>(std::move(on_health))](
                 std::error_code ec, const std::string& detail) {
      asio::post(caller, [alive, handler, ec, detail] {
        if (*alive) (*handler)(ec, detail);
      });
    };
  on_thread([this, self, view = std::move(view), health = std::move(health)](auto&) mutable {
    backend_->start(self, std::move(view), std::move(health));
  });
}

void offloaded_registry::remove_stale(const host_id& stale, std::string_view address) {
  on_thread([this, stale, address = std::string(address)](auto&) {
    backend_->remove_stale(stale, address);
  });
}

void offloaded_registry::read(read_handler done) {
  on_thread([this, alive = alive_, done = std::make_shared<read_handler>(std::move(done))](
                const asio::any_io_executor& work) {
    backend_->read([work, alive, done](std::error_code ec, std::vector<host_record> rows) {
      asio::post(work, [alive, done, ec, rows = std::move(rows)]() mutable {
        if (*alive && *done) (*done)(ec, std::move(rows));
      });
    });
  });
}

void offloaded_registry::stop(std::function<void()> done) {
  on_thread([this, alive = alive_, done = std::make_shared<std::function<void()>>(std::move(done))](
                const asio::any_io_executor& work) {
    backend_->stop([this, work, alive, done] {
      asio::post(work, [this, alive, done] {
        if (!*alive) return;
        started_work_ = {};
        if (*done) (*done)();
      });
    });
  });
}

}  // namespace galaxies::registry
