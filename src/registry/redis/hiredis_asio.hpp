// Drives one hiredis 0.14 async context from an Asio executor: hiredis asks for read and write
// readiness through its ev hooks (addRead/delRead/addWrite/delWrite/cleanup) and we answer with
// async_wait on a stream_descriptor wrapping the context's fd. No extra thread.
//
// Ownership: hiredis owns the fd and closes it in redisFree; the descriptor is release()d (never
// closed) when hiredis calls cleanup, which it does on every free, whether hiredis frees the
// context itself (an I/O or protocol error inside redisAsyncHandleRead/Write) or we call
// free_context(). After cleanup the context pointer is gone: attached() turns false.
//
// Threading: everything on the executor. The adapter is held by shared_ptr: pending waits keep
// it alive until they complete, after the context itself may be gone.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>

struct redisAsyncContext;

namespace galaxies::registry::redis {

class hiredis_asio : public std::enable_shared_from_this<hiredis_asio> {
 public:
  // Called from inside hiredis's free, once, while the context is still readable (err, errstr):
  // the last moment to look at it.
  using detached_handler = std::function<void(const redisAsyncContext&)>;

  // Installs the hooks on `context` (which must have none yet and a valid fd). Returns null if
  // the fd cannot be watched; the caller still owns the context then.
  static std::shared_ptr<hiredis_asio> attach(redisAsyncContext* context,
                                              const asio::any_io_executor& executor,
                                              detached_handler on_detached);

  hiredis_asio(const asio::any_io_executor& executor, redisAsyncContext* context,
               detached_handler on_detached);
  ~hiredis_asio();
  hiredis_asio(const hiredis_asio&) = delete;
  hiredis_asio& operator=(const hiredis_asio&) = delete;

  bool attached() const noexcept { return context_ != nullptr; }
  redisAsyncContext* context() const noexcept { return context_; }
  // True while hiredis is running on our stack (inside redisAsyncHandleRead/Write): freeing the
  // context then would pull it from under hiredis.
  bool in_hiredis() const noexcept { return depth_ > 0; }

  // Frees the context (redisAsyncFree: pending callbacks run with a null reply, then cleanup).
  // From inside hiredis the free is posted; by then hiredis may have freed the context itself,
  // which cleanup tells us, so it is never freed twice.
  void free_context();
  // Drops the detached handler: its owner is going away.
  void forget_owner() { on_detached_ = nullptr; }

 private:
  static void add_read(void* self);
  static void del_read(void* self);
  static void add_write(void* self);
  static void del_write(void* self);
  static void cleanup(void* self);

  void arm_read();
  void arm_write();
  void on_cleanup();

  asio::posix::stream_descriptor fd_;
  redisAsyncContext* context_;
  detached_handler on_detached_;
  bool want_read_ = false;
  bool want_write_ = false;
  bool read_armed_ = false;
  bool write_armed_ = false;
  int depth_ = 0;
};

}  // namespace galaxies::registry::redis
