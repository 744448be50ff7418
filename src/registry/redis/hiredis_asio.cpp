#include "registry/redis/hiredis_asio.hpp"

#include <hiredis/async.h>

#include <asio/post.hpp>
#include <system_error>

namespace galaxies::registry::redis {
namespace {

// Counts a call into hiredis, so that a free requested meanwhile waits until hiredis returns.
class in_call {
 public:
  explicit in_call(int& depth) : depth_(depth) { ++depth_; }
  ~in_call() { --depth_; }
  in_call(const in_call&) = delete;
  in_call& operator=(const in_call&) = delete;

 private:
  int& depth_;
};

}  // namespace

std::shared_ptr<hiredis_asio> hiredis_asio::attach(redisAsyncContext* context,
                                                   const asio::any_io_executor& executor,
                                                   detached_handler on_detached) {
  if (context == nullptr || context->ev.data != nullptr || context->c.fd < 0) return nullptr;
  auto self = std::make_shared<hiredis_asio>(executor, context, std::move(on_detached));
  std::error_code ec;
  self->fd_.assign(context->c.fd, ec);
  if (ec) {
    self->context_ = nullptr;
    return nullptr;
  }
  context->ev.data = self.get();
  context->ev.addRead = &hiredis_asio::add_read;
  context->ev.delRead = &hiredis_asio::del_read;
  context->ev.addWrite = &hiredis_asio::add_write;
  context->ev.delWrite = &hiredis_asio::del_write;
  context->ev.cleanup = &hiredis_asio::cleanup;
  return self;
}

hiredis_asio::hiredis_asio(const asio::any_io_executor& executor, redisAsyncContext* context,
                           detached_handler on_detached)
    : fd_(executor), context_(context), on_detached_(std::move(on_detached)) {}

hiredis_asio::~hiredis_asio() {
  // Only reachable with a live context if a posted free was dropped (the io_context went away
  // first): free it now rather than leak the fd. Nothing else runs on the executor any more.
  if (context_ != nullptr && depth_ == 0) {
    on_detached_ = nullptr;
    redisAsyncFree(context_);  // calls cleanup, which releases the fd
  }
  if (fd_.is_open()) fd_.release();  // never close hiredis's fd
}

void hiredis_asio::free_context() {
  if (context_ == nullptr) return;
  if (in_hiredis()) {
    asio::post(fd_.get_executor(), [self = shared_from_this()] { self->free_context(); });
    return;
  }
  redisAsyncFree(context_);  // runs cleanup before it returns: context_ is null afterwards
}

void hiredis_asio::add_read(void* self) {
  auto* events = static_cast<hiredis_asio*>(self);
  events->want_read_ = true;
  events->arm_read();
}

void hiredis_asio::del_read(void* self) {
  // A pending wait cannot be withdrawn alone; its completion sees want_read_ false and ignores it.
  static_cast<hiredis_asio*>(self)->want_read_ = false;
}

void hiredis_asio::add_write(void* self) {
  auto* events = static_cast<hiredis_asio*>(self);
  events->want_write_ = true;
  events->arm_write();
}

void hiredis_asio::del_write(void* self) {
  static_cast<hiredis_asio*>(self)->want_write_ = false;
}

void hiredis_asio::cleanup(void* self) {
  static_cast<hiredis_asio*>(self)->on_cleanup();
}

void hiredis_asio::arm_read() {
  if (read_armed_ || context_ == nullptr) return;
  read_armed_ = true;
  // async_wait re-arms the descriptor in epoll (EPOLL_CTL_MOD), so data that arrived before the
  // wait started is still reported: the wait behaves level-triggered, as hiredis expects.
  fd_.async_wait(asio::posix::stream_descriptor::wait_read,
                 [self = shared_from_this()](std::error_code ec) {
                   self->read_armed_ = false;
                   if (ec || self->context_ == nullptr || !self->want_read_) return;
                   in_call guard(self->depth_);
                   // May free the context (EOF, error): cleanup then nulls context_. While the
                   // connection lives, hiredis asks for the next read itself (addRead).
                   redisAsyncHandleRead(self->context_);
                 });
}

void hiredis_asio::arm_write() {
  if (write_armed_ || context_ == nullptr) return;
  write_armed_ = true;
  fd_.async_wait(asio::posix::stream_descriptor::wait_write,
                 [self = shared_from_this()](std::error_code ec) {
                   self->write_armed_ = false;
                   if (ec || self->context_ == nullptr || !self->want_write_) return;
                   in_call guard(self->depth_);
                   // The first writable event also completes a non-blocking connect.
                   redisAsyncHandleWrite(self->context_);
                 });
}

void hiredis_asio::on_cleanup() {
  // hiredis is freeing the context: it will close the fd right after this returns. Release it so
  // Asio neither closes it nor keeps watching it; pending waits complete with operation_aborted.
  auto* context = context_;
  context_ = nullptr;
  want_read_ = want_write_ = false;
  if (fd_.is_open()) fd_.release();
  if (context != nullptr) {
    context->ev.data = nullptr;
    if (auto on_detached = std::move(on_detached_)) on_detached(*context);
  }
}

}  // namespace galaxies::registry::redis
