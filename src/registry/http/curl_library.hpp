// libcurl, loaded on first use (dlopen) instead of by every process at exec.
//
// Every galaxies process is the application's own program: its master and each of its workers.
// Only a master whose registry is etcd ever speaks HTTP, yet linked the usual way libcurl and the
// two dozen libraries it pulls in (GnuTLS, Kerberos, LDAP, SSH, ...) are mapped and relocated by
// every worker when it starts: 9.6 M instructions of each start, about half of it
// (bench/RESULTS.md), on the machine's cores exactly when a host starts its workers. systemd
// loads its optional libraries the same way.
//
// The headers are curl's own (its types and constants); the functions are reached through this
// table. Threading: curl() may be called from any thread; the table never changes once loaded.
#pragma once

#include <curl/curl.h>

namespace galaxies::registry::http {

struct curl_library {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
  decltype(&::curl_multi_init) multi_init;
  decltype(&::curl_multi_setopt) multi_setopt;
  decltype(&::curl_multi_add_handle) multi_add_handle;
  decltype(&::curl_multi_remove_handle) multi_remove_handle;
  decltype(&::curl_multi_socket_action) multi_socket_action;
  decltype(&::curl_multi_info_read) multi_info_read;
  decltype(&::curl_multi_cleanup) multi_cleanup;
  decltype(&::curl_multi_strerror) multi_strerror;
};

// The library, loaded and curl_global_init'ed on the first call (once per process, never
// unloaded). Throws std::runtime_error saying what is missing (the library, a function, or
// curl_global_init's failure); every later call throws the same.
const curl_library& curl();

// The library if curl() has loaded it, else nullptr: for describing codes that came from curl.
const curl_library* curl_if_loaded() noexcept;

}  // namespace galaxies::registry::http
