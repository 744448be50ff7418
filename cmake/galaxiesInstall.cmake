# Install rules for the library: headers, the library, a CMake package (find_package(galaxies)
# gives galaxies::galaxies) and a pkg-config file. Included from src/CMakeLists.txt.
include(CMakePackageConfigHelpers)

set(GALAXIES_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/galaxies)

install(TARGETS galaxies EXPORT galaxiesTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/galaxies DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(EXPORT galaxiesTargets NAMESPACE galaxies:: DESTINATION ${GALAXIES_CMAKE_DIR})

# The pkg-config modules the library links privately: a backend left out of the build
# (GALAXIES_WITH_REDIS) is no dependency of the package either.
set(GALAXIES_PC_PRIVATE_MODULES spdlog)
if(GALAXIES_WITH_REDIS)
  list(APPEND GALAXIES_PC_PRIVATE_MODULES hiredis)
endif()
list(APPEND GALAXIES_PC_PRIVATE_MODULES cpp-httplib)
list(JOIN GALAXIES_PC_PRIVATE_MODULES " " GALAXIES_PC_REQUIRES_PRIVATE)

# A static archive carries none of its dependencies: the package must find spdlog for the link.
get_target_property(_galaxies_type galaxies TYPE)
if(_galaxies_type STREQUAL "STATIC_LIBRARY")
  set(GALAXIES_STATIC ON)
else()
  set(GALAXIES_STATIC OFF)
endif()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/galaxiesConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/galaxiesConfig.cmake
                              INSTALL_DESTINATION ${GALAXIES_CMAKE_DIR})
# 0.x: a minor release may break the API.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/galaxiesConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/galaxiesConfig.cmake
              ${PROJECT_BINARY_DIR}/galaxiesConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindAsio.cmake
        DESTINATION ${GALAXIES_CMAKE_DIR})

# pkg-config. Paths are relative to the .pc file (${pcfiledir}), so that the package stays right
# under any `cmake --install --prefix`; absolute install dirs are used as they are.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(GALAXIES_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _galaxies_up "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
  string(REGEX REPLACE "/$" "" _galaxies_up "${_galaxies_up}")
  set(GALAXIES_PC_PREFIX "\${pcfiledir}/${_galaxies_up}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(GALAXIES_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  set(GALAXIES_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(GALAXIES_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(GALAXIES_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()

# The definitions FindAsio.cmake gives Asio::Asio, read from the target so that the two cannot
# drift apart: library and application share Asio's inline functions and must configure it alike.
set(GALAXIES_PC_CFLAGS "-I\${includedir}")
if(NOT Asio_INCLUDE_DIR STREQUAL "/usr/include")
  string(APPEND GALAXIES_PC_CFLAGS " -I${Asio_INCLUDE_DIR}")
endif()
get_target_property(_galaxies_asio_defs Asio::Asio INTERFACE_COMPILE_DEFINITIONS)
foreach(def IN LISTS _galaxies_asio_defs)
  string(APPEND GALAXIES_PC_CFLAGS " -D${def}")
endforeach()
string(APPEND GALAXIES_PC_CFLAGS " -pthread")

if(GALAXIES_STATIC)
  # Plain `pkg-config --libs` (without --static) must be enough to link the static archive, so its
  # private libraries go into Libs; each dependency's own module says what they are.
  set(_galaxies_private_libs)
  find_package(PkgConfig QUIET)
  foreach(module IN LISTS GALAXIES_PC_PRIVATE_MODULES ITEMS openssl)
    string(MAKE_C_IDENTIFIER "GALAXIES_PC_${module}" prefix)
    if(PKG_CONFIG_FOUND)
      pkg_check_modules(${prefix} QUIET ${module})
    endif()
    if(NOT ${prefix}_FOUND)
      # Without the module, the library names Debian uses.
      set(_fallback_spdlog -lspdlog -lfmt)
      set(_fallback_hiredis -lhiredis)
      set(_fallback_cpp-httplib -lcpp-httplib)
      set(_fallback_openssl -lssl -lcrypto)
      list(APPEND _galaxies_private_libs ${_fallback_${module}})
      continue()
    endif()
    foreach(dir IN LISTS ${prefix}_LIBRARY_DIRS)
      if(NOT dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
        list(APPEND _galaxies_private_libs "-L${dir}")
      endif()
    endforeach()
    list(TRANSFORM ${prefix}_LIBRARIES PREPEND "-l" OUTPUT_VARIABLE _module_libs)
    list(APPEND _galaxies_private_libs ${_module_libs} ${${prefix}_LDFLAGS_OTHER})
  endforeach()
  list(APPEND _galaxies_private_libs -pthread)
  if(CMAKE_DL_LIBS)
    list(APPEND _galaxies_private_libs -l${CMAKE_DL_LIBS})
  endif()
  list(REMOVE_DUPLICATES _galaxies_private_libs)
  list(JOIN _galaxies_private_libs " " _galaxies_private_libs)
  set(GALAXIES_PC_LIBS "-L\${libdir} -lgalaxies ${_galaxies_private_libs}")
else()
  set(GALAXIES_PC_LIBS "-L\${libdir} -lgalaxies -pthread")
endif()

configure_file(${PROJECT_SOURCE_DIR}/cmake/galaxies.pc.in ${PROJECT_BINARY_DIR}/galaxies.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/galaxies.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
