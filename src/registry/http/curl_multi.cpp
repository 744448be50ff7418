#include "registry/http/curl_multi.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <charconv>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "registry/http/curl_library.hpp"

namespace galaxies::registry::http {
namespace {

class category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "http"; }
  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::stream_closed:
        return "the server ended the stream";
      case errc::reply_too_large:
        return "the reply is too large";
      case errc::setup_failed:
        return "the HTTP request could not be set up";
    }
    // Codes from curl exist only once it is loaded; anything else is not ours to name.
    if (const curl_library* lib = curl_if_loaded())
      return lib->easy_strerror(static_cast<CURLcode>(value));
    return "curl error " + std::to_string(value);
  }
};

// The process's open descriptors, or nothing if /proc is unavailable.
std::optional<std::vector<int>> open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return std::nullopt;
  const int own = ::dirfd(dir);
  std::vector<int> fds;
  while (const dirent* entry = ::readdir(dir)) {
    int fd = -1;
    const char* end = entry->d_name + std::strlen(entry->d_name);
    if (std::from_chars(entry->d_name, end, fd).ptr == end && fd >= 0 && fd != own) {
      fds.push_back(fd);
    }
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

void set_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0 && !(flags & FD_CLOEXEC)) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

// curl_multi_init opens a wake-up socketpair without close-on-exec, and offers no hook to change
// that; every worker would inherit it. Mark whatever the call opened.
CURLM* multi_init_cloexec() {
  const auto before = open_fds();
  CURLM* multi = curl().multi_init();
  const auto after = open_fds();
  if (before && after) {
    std::vector<int> opened;
    std::set_difference(after->begin(), after->end(), before->begin(), before->end(),
                        std::back_inserter(opened));
    for (const int fd : opened) set_cloexec(fd);
  }
  return multi;
}

std::string describe_failure(CURLcode code, long os_errno, const char* error_buffer) {
  // "Connection refused" says more than "Couldn't connect to server", the code's own text.
  if (code == CURLE_COULDNT_CONNECT && os_errno != 0) {
    return std::error_code(static_cast<int>(os_errno), std::system_category()).message();
  }
  std::string text = error_buffer;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text.empty() ? curl().easy_strerror(code) : text;
}

}  // namespace

const std::error_category& error_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

std::error_code curl_error(int curl_code) noexcept {
  return {curl_code, error_category()};
}

struct client::request {
  request_id id = 0;
  client* owner = nullptr;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string sent;  // curl reads the body in place
  bool streaming = false;
  std::string received;  // post(): the body so far; stream(): chunks not yet delivered
  bool too_large = false;
  bool finished = false;
  bool delivery_posted = false;
  result outcome;
  data_handler on_data;
  done_handler done;
  char error_buffer[CURL_ERROR_SIZE] = {};
};

struct client::socket_state {
  socket_state(const asio::any_io_executor& executor, int fd, const struct stat& st)
      : descriptor(executor), fd(fd), device(st.st_dev), inode(st.st_ino) {}

  asio::posix::stream_descriptor descriptor;
  int fd;
  // Which file the fd named when we registered it: curl closes its resolver's socketpair itself,
  // so the same number can come back naming another file.
  dev_t device;
  ino_t inode;
  int wanted = 0;  // CURL_POLL_IN / CURL_POLL_OUT bits
  bool reading = false;
  bool writing = false;
  bool closed = false;
};

// libcurl's callbacks with their exact signatures; they only forward to the client.
struct curl_callbacks {
  static int socket(CURL*, curl_socket_t fd, int what, void* self, void*) {
    static_cast<client*>(self)->on_socket(fd, what);
    return 0;
  }
  static int timer(CURLM*, long timeout_ms, void* self) {
    static_cast<client*>(self)->on_timer_request(timeout_ms);
    return 0;
  }
  static std::size_t write(char* data, std::size_t size, std::size_t count, void* req) {
    auto& r = *static_cast<client::request*>(req);
    const std::size_t length = size * count;
    if (r.received.size() + length > r.owner->settings_.max_body) {
      r.too_large = true;
      return 0;  // anything but `length` fails the transfer
    }
    r.received.append(data, length);
    if (r.streaming && length > 0) r.owner->schedule_delivery(r);
    return length;
  }
  static curl_socket_t open(void* self, curlsocktype, curl_sockaddr* address) {
    return static_cast<client*>(self)->open_socket(address->family, address->socktype,
                                                   address->protocol);
  }
  static int close(void* self, curl_socket_t fd) {
    static_cast<client*>(self)->close_socket(fd);
    return 0;
  }
};

client::client(const asio::any_io_executor& executor, settings s)
    : executor_(executor), settings_(s), timer_(executor) {
  const curl_library& lib = curl();  // throws, saying why, when libcurl cannot be loaded
  multi_ = multi_init_cloexec();
  if (!multi_) throw std::runtime_error("curl_multi_init failed");
  lib.multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &curl_callbacks::socket);
  lib.multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  lib.multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &curl_callbacks::timer);
  lib.multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
}

client::~client() {
  *alive_ = false;
  for (auto& [id, r] : requests_) detach(*r);
  requests_.clear();
  // Closes the cached connections, through close_socket: their descriptors are released first.
  curl().multi_cleanup(multi_);
  for (auto& [fd, s] : sockets_) {
    s->closed = true;
    s->descriptor.release();
  }
  sockets_.clear();
}

client::request_id client::post(const std::string& url, std::string body,
                                std::chrono::milliseconds timeout, done_handler done) {
  return start(url, std::move(body), timeout, nullptr, std::move(done));
}

client::request_id client::stream(const std::string& url, std::string body, data_handler on_data,
                                  done_handler done) {
  return start(url, std::move(body), std::chrono::milliseconds(0), std::move(on_data),
               std::move(done));
}

client::request_id client::start(const std::string& url, std::string body,
                                 std::chrono::milliseconds timeout, data_handler on_data,
                                 done_handler done) {
  auto owned = std::make_unique<request>();
  request& r = *owned;
  r.id = next_id_++;
  r.owner = this;
  r.sent = std::move(body);
  r.streaming = static_cast<bool>(on_data);
  r.on_data = std::move(on_data);
  r.done = std::move(done);
  requests_.emplace(r.id, std::move(owned));

  const curl_library& lib = curl();
  r.easy = lib.easy_init();
  if (!r.easy) {
    fail_later(r, errc::setup_failed, "curl_easy_init failed");
    return r.id;
  }
  r.headers = lib.slist_append(r.headers, "Content-Type: application/json");
  r.headers = lib.slist_append(r.headers, "Expect:");  // no 100-continue round trip
  CURL* e = r.easy;
  CURLcode code = CURLE_OK;
  const auto set = [&](CURLoption option, auto value) {
    if (code == CURLE_OK) code = lib.easy_setopt(e, option, value);
  };
  set(CURLOPT_URL, url.c_str());
  set(CURLOPT_POST, 1L);
  set(CURLOPT_POSTFIELDS, r.sent.data());
  set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.sent.size()));
  set(CURLOPT_HTTPHEADER, r.headers);
  set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
#if LIBCURL_VERSION_NUM >= 0x075500
  set(CURLOPT_PROTOCOLS_STR, "http");
#endif
  set(CURLOPT_NOSIGNAL, 1L);  // no SIGALRM around name resolution in a process that has threads
  set(CURLOPT_PROXY, "");     // a registry on the LAN is never reached through $http_proxy
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout.count()));
  if (!r.streaming) {
    set(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(1, timeout.count())));
  } else {
    set(CURLOPT_TCP_KEEPALIVE, 1L);
    set(CURLOPT_TCP_KEEPIDLE, static_cast<long>(settings_.keepalive_idle.count()));
    set(CURLOPT_TCP_KEEPINTVL, static_cast<long>(settings_.keepalive_interval.count()));
  }
  set(CURLOPT_WRITEFUNCTION, &curl_callbacks::write);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&r));
  set(CURLOPT_PRIVATE, static_cast<void*>(&r));
  set(CURLOPT_ERRORBUFFER, r.error_buffer);
  set(CURLOPT_OPENSOCKETFUNCTION, &curl_callbacks::open);
  set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
  set(CURLOPT_CLOSESOCKETFUNCTION, &curl_callbacks::close);
  set(CURLOPT_CLOSESOCKETDATA, static_cast<void*>(this));
  if (code != CURLE_OK) {
    detach(r);
    fail_later(r, curl_error(code), lib.easy_strerror(code));
    return r.id;
  }
  if (const CURLMcode mc = lib.multi_add_handle(multi_, e); mc != CURLM_OK) {
    detach(r);
    fail_later(r, errc::setup_failed, lib.multi_strerror(mc));
  }
  return r.id;
}

bool client::cancel(request_id id) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) return false;
  detach(*it->second);
  requests_.erase(it);
  return true;
}

void client::fail_later(request& r, std::error_code ec, std::string detail) {
  r.outcome.ec = ec;
  r.outcome.detail = std::move(detail);
  r.finished = true;
  schedule_delivery(r);
}

void client::detach(request& r) {
  const curl_library& lib = curl();
  if (r.easy) {
    // Never called from inside a curl callback: see the header.
    lib.multi_remove_handle(multi_, r.easy);
    lib.easy_cleanup(r.easy);
    r.easy = nullptr;
  }
  lib.slist_free_all(r.headers);
  r.headers = nullptr;
}

void client::schedule_delivery(request& r) {
  if (r.delivery_posted) return;
  r.delivery_posted = true;
  asio::post(executor_, [this, alive = alive_, id = r.id] {
    if (*alive) deliver(id);
  });
}

void client::deliver(request_id id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;  // cancelled
  request* r = it->second.get();
  r->delivery_posted = false;
  if (r->streaming && !r->received.empty()) {
    const std::string chunk = std::exchange(r->received, std::string());
    const auto on_data = r->on_data;  // a copy: the handler may cancel or destroy
    const auto alive = alive_;
    on_data(chunk);
    if (!*alive) return;
    it = requests_.find(id);
    if (it == requests_.end()) return;
    r = it->second.get();
  }
  if (!r->finished || r->delivery_posted) return;
  auto done = std::move(r->done);
  auto outcome = std::move(r->outcome);
  requests_.erase(it);
  if (done) done(std::move(outcome));
}

void client::collect_finished() {
  int left = 0;
  while (CURLMsg* msg = curl().multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    const CURLcode code = msg->data.result;
    char* owner = nullptr;
    curl().easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &owner);
    // finish() removes the handle, which invalidates msg: everything needed is read above.
    if (owner) finish(*reinterpret_cast<request*>(owner), code);
  }
}

void client::finish(request& r, int curl_code) {
  const auto code = static_cast<CURLcode>(curl_code);
  long status = 0;
  long os_errno = 0;
  const curl_library& lib = curl();
  lib.easy_getinfo(r.easy, CURLINFO_RESPONSE_CODE, &status);
  lib.easy_getinfo(r.easy, CURLINFO_OS_ERRNO, &os_errno);
  r.outcome.status = status;
  if (r.too_large) {
    r.outcome.ec = errc::reply_too_large;
    r.outcome.detail = "reply larger than " + std::to_string(settings_.max_body) + " bytes";
  } else if (code != CURLE_OK) {
    r.outcome.ec = curl_error(code);
    r.outcome.detail = describe_failure(code, os_errno, r.error_buffer);
  } else if (r.streaming) {
    r.outcome.ec = errc::stream_closed;
    r.outcome.detail = "the server ended the stream";
  }
  if (!r.streaming) r.outcome.body = std::exchange(r.received, std::string());
  detach(r);
  r.finished = true;
  schedule_delivery(r);
}

int client::open_socket(int family, int type, int protocol) {
  const int fd = ::socket(family, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  forget(fd);  // a registration left under this number names a file that is gone
  return fd;
}

void client::close_socket(int fd) {
  forget(fd);  // release before close: Asio must not outlive the fd it watches
  ::close(fd);
}

void client::forget(int fd) {
  const auto it = sockets_.find(fd);
  if (it == sockets_.end()) return;
  it->second->closed = true;
  it->second->descriptor.release();  // cancels our waits; curl keeps the fd
  sockets_.erase(it);
}

void client::on_socket(int fd, int what) {
  if (what == CURL_POLL_REMOVE) return forget(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return forget(fd);
  auto it = sockets_.find(fd);
  if (it != sockets_.end() && (it->second->device != st.st_dev || it->second->inode != st.st_ino)) {
    forget(fd);
    it = sockets_.end();
  }
  if (it == sockets_.end()) {
    // Sockets curl opens without open_socket (its resolver's socketpair) get close-on-exec here,
    // on this thread, so no spawn can come between.
    set_cloexec(fd);
    auto s = std::make_shared<socket_state>(executor_, fd, st);
    std::error_code ec;
    s->descriptor.assign(fd, ec);
    if (ec) return;  // curl's own timeout ends the transfer
    it = sockets_.emplace(fd, std::move(s)).first;
  }
  it->second->wanted = what;
  arm(it->second);
}

void client::arm(const std::shared_ptr<socket_state>& s) {
  using asio::posix::stream_descriptor;
  if ((s->wanted & CURL_POLL_IN) && !s->reading) {
    s->reading = true;
    s->descriptor.async_wait(stream_descriptor::wait_read,
                             [this, alive = alive_, s](std::error_code ec) {
                               s->reading = false;
                               if (!*alive || s->closed || ec == asio::error::operation_aborted) {
                                 return;
                               }
                               on_ready(s, CURL_CSELECT_IN, ec);
                             });
  }
  if ((s->wanted & CURL_POLL_OUT) && !s->writing) {
    s->writing = true;
    s->descriptor.async_wait(stream_descriptor::wait_write,
                             [this, alive = alive_, s](std::error_code ec) {
                               s->writing = false;
                               if (!*alive || s->closed || ec == asio::error::operation_aborted) {
                                 return;
                               }
                               on_ready(s, CURL_CSELECT_OUT, ec);
                             });
  }
}

void client::on_ready(const std::shared_ptr<socket_state>& s, int select, std::error_code ec) {
  // A wait that curl no longer wants (it switched from reading to writing) is simply dropped.
  const int wanted_bit = select == CURL_CSELECT_IN ? CURL_POLL_IN : CURL_POLL_OUT;
  if (!(s->wanted & wanted_bit)) return;
  int running = 0;
  curl().multi_socket_action(multi_, s->fd, ec ? CURL_CSELECT_ERR : select, &running);
  collect_finished();
  if (!s->closed) arm(s);
}

void client::on_timer_request(long timeout_ms) {
  if (timeout_ms < 0) {
    timer_.cancel();
    return;
  }
  // Even a zero timeout goes through the timer: curl must not be re-entered from its callback.
  timer_.expires_after(std::chrono::milliseconds(timeout_ms));
  timer_.async_wait([this, alive = alive_](std::error_code ec) {
    if (!*alive || ec) return;
    on_timeout();
  });
}

void client::on_timeout() {
  int running = 0;
  curl().multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  collect_finished();
}

}  // namespace galaxies::registry::http
