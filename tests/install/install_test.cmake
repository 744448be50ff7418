# cmake -P script: installs the build tree into a scratch prefix, builds the consumer against it
# twice (find_package, then plain pkg-config) and runs both binaries' --probe.
# In: BUILD_DIR CONFIG CONSUMER_DIR WORK_DIR CXX GENERATOR PKG_CONFIG (empty: no pkg-config), and
# CXX_FLAGS: the project's CMAKE_CXX_FLAGS, which the consumer needs too (a sanitizer build's
# instrumented libgalaxies only links into an instrumented program).
cmake_minimum_required(VERSION 3.25)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_test: ${what} failed (${rc}); scratch files kept in ${WORK_DIR}\n"
                        "command: ${ARGN}\n${out}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
run_step("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix} ${config_args})

# 1. find_package(galaxies), from this prefix only.
run_step("configuring the consumer"
         ${CMAKE_COMMAND} -S ${CONSUMER_DIR} -B ${WORK_DIR}/cmake-build -G "${GENERATOR}"
         -DCMAKE_CXX_COMPILER=${CXX} "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_PREFIX_PATH=${prefix}
         -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
file(STRINGS ${WORK_DIR}/cmake-build/CMakeCache.txt found_dir REGEX "^galaxies_DIR:")
string(REGEX REPLACE "^galaxies_DIR:[A-Z]*=" "" found_dir "${found_dir}")
cmake_path(IS_PREFIX prefix "${found_dir}" NORMALIZE from_prefix)
if(NOT from_prefix)
  message(FATAL_ERROR "install_test: find_package used ${found_dir}, not the scratch prefix")
endif()
run_step("building the consumer with CMake" ${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run_step("running the CMake-built consumer" ${WORK_DIR}/cmake-build/galaxies_consumer --probe)
message(STATUS "find_package consumer: ${step_output}")

# 2. pkg-config, with a plain compiler command line.
if(NOT PKG_CONFIG)
  message(STATUS "install_test: skipped: pkg-config not found (the find_package part passed)")
  file(REMOVE_RECURSE ${WORK_DIR})
  return()
endif()
file(GLOB_RECURSE pc_files ${prefix}/*/galaxies.pc)
list(LENGTH pc_files pc_count)
if(NOT pc_count EQUAL 1)
  message(FATAL_ERROR "install_test: expected one installed galaxies.pc, found: ${pc_files}")
endif()
cmake_path(GET pc_files PARENT_PATH pc_dir)
cmake_path(GET pc_dir PARENT_PATH lib_dir)
run_step("pkg-config" ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${pc_dir}
         ${PKG_CONFIG} --cflags --libs galaxies)
string(STRIP "${step_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
separate_arguments(cxx_flags UNIX_COMMAND "${CXX_FLAGS}")
run_step("building the consumer with pkg-config flags"
         ${CXX} -std=c++20 ${cxx_flags} ${CONSUMER_DIR}/main.cpp ${pc_flags} -o ${WORK_DIR}/pc_consumer)
# A shared libgalaxies is found at run time through the scratch prefix.
run_step("running the pkg-config-built consumer"
         ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${lib_dir} ${WORK_DIR}/pc_consumer --probe)
message(STATUS "pkg-config consumer: ${step_output}")

file(REMOVE_RECURSE ${WORK_DIR})
