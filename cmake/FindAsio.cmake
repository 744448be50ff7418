# Debian's libasio-dev (standalone Asio, header-only) ships no CMake package; this finds it.
# Defines Asio::Asio.
find_path(Asio_INCLUDE_DIR NAMES asio.hpp)
if(Asio_INCLUDE_DIR AND EXISTS "${Asio_INCLUDE_DIR}/asio/version.hpp")
  file(STRINGS "${Asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line
       REGEX "^#define ASIO_VERSION [0-9]+")
  string(REGEX REPLACE "^#define ASIO_VERSION ([0-9]+).*" "\\1" _asio_version "${_asio_version_line}")
  math(EXPR _major "${_asio_version} / 100000")
  math(EXPR _minor "${_asio_version} / 100 % 1000")
  math(EXPR _patch "${_asio_version} % 100")
  set(Asio_VERSION "${_major}.${_minor}.${_patch}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Asio REQUIRED_VARS Asio_INCLUDE_DIR VERSION_VAR Asio_VERSION)
if(Asio_FOUND AND NOT TARGET Asio::Asio)
  find_package(Threads REQUIRED)
  add_library(Asio::Asio INTERFACE IMPORTED)
  set_target_properties(Asio::Asio PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${Asio_INCLUDE_DIR}")
  # Standalone Asio, C++20 coroutines; the two macros let clang-based tools see co_await support.
  #
  # ASIO_HAS_STD_ALIGNED_ALLOC=1: Asio 1.22 decides it from _GLIBCXX_HAVE_ALIGNED_ALLOC, which is
  # defined only once some libstdc++ header was included before Asio's config.hpp. The choice thus
  # differed per translation unit, and its inline asio::aligned_new/aligned_delete (one copy kept
  # per program) could pair ::operator new with std::free: AddressSanitizer's alloc-dealloc-mismatch.
  # Defined for everyone, every TU of the library and of its applications agrees. We force it on
  # rather than off (ASIO_DISABLE_STD_ALIGNED_ALLOC) because "off" makes aligned_new ignore the
  # alignment it is asked for, while std::aligned_alloc (C++17, glibc) honours it.
  target_compile_definitions(Asio::Asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED
                             ASIO_HAS_CO_AWAIT=1 ASIO_HAS_STD_COROUTINE=1
                             ASIO_HAS_STD_ALIGNED_ALLOC=1)
  target_link_libraries(Asio::Asio INTERFACE Threads::Threads)
endif()
mark_as_advanced(Asio_INCLUDE_DIR)
