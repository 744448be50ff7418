#include "registry/http/curl_library.hpp"

#include <dlfcn.h>

#include <atomic>
#include <stdexcept>
#include <string>

namespace galaxies::registry::http {
namespace {

// The ABI's soname since libcurl 7.16 (Debian's libcurl4 package).
constexpr const char* soname = "libcurl.so.4";

std::atomic<const curl_library*> loaded{nullptr};

template <typename Function>
void bind(void* handle, const char* name, Function& out) {
  void* symbol = ::dlsym(handle, name);
  if (!symbol) {
    throw std::runtime_error(std::string(soname) + " has no " + name +
                             " (libcurl older than 7.74?)");
  }
  out = reinterpret_cast<Function>(symbol);
}

curl_library load() {
  // RTLD_LOCAL: curl's symbols stay out of the global scope, where they could satisfy (or
  // shadow) another library's. RTLD_NOW: a missing dependency fails here, once, with a message.
  void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = ::dlerror();
    throw std::runtime_error(std::string("the etcd registry needs libcurl, and ") + soname +
                             " could not be loaded (" + (why ? why : "no reason given") +
                             "); on Debian: apt-get install libcurl4");
  }
  curl_library lib{};
  bind(handle, "curl_global_init", lib.global_init);
  bind(handle, "curl_easy_init", lib.easy_init);
  bind(handle, "curl_easy_setopt", lib.easy_setopt);
  bind(handle, "curl_easy_getinfo", lib.easy_getinfo);
  bind(handle, "curl_easy_cleanup", lib.easy_cleanup);
  bind(handle, "curl_easy_strerror", lib.easy_strerror);
  bind(handle, "curl_slist_append", lib.slist_append);
  bind(handle, "curl_slist_free_all", lib.slist_free_all);
  bind(handle, "curl_multi_init", lib.multi_init);
  bind(handle, "curl_multi_setopt", lib.multi_setopt);
  bind(handle, "curl_multi_add_handle", lib.multi_add_handle);
  bind(handle, "curl_multi_remove_handle", lib.multi_remove_handle);
  bind(handle, "curl_multi_socket_action", lib.multi_socket_action);
  bind(handle, "curl_multi_info_read", lib.multi_info_read);
  bind(handle, "curl_multi_cleanup", lib.multi_cleanup);
  bind(handle, "curl_multi_strerror", lib.multi_strerror);
  // curl_global_init is not reentrant with itself: once per process, before the first handle.
  if (const CURLcode code = lib.global_init(CURL_GLOBAL_DEFAULT); code != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init failed: ") + lib.easy_strerror(code));
  }
  return lib;
}

}  // namespace

const curl_library& curl() {
  // A static's initialiser runs once even with threads; one that throws runs again next time,
  // and fails the same way.
  static const curl_library* const lib = [] {
    static const curl_library table = load();
    loaded.store(&table, std::memory_order_release);
    return &table;
  }();
  return *lib;
}

const curl_library* curl_if_loaded() noexcept {
  return loaded.load(std::memory_order_acquire);
}

}  // namespace galaxies::registry::http
