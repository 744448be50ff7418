# The web view's files, compiled into the library: a build step writes web_assets.cpp
# (find_web_asset, monitor/web_assets.hpp) from them, so that editing one rebuilds the library.
# Included by src/CMakeLists.txt once the monitor layer is defined. Plain files, no npm
# packages: nothing is fetched to build them.
set(GALAXIES_WEB_FILES index.html app.js style.css)

set(galaxies_web_dir ${CMAKE_CURRENT_LIST_DIR})
set(galaxies_web_output ${CMAKE_CURRENT_BINARY_DIR}/web_assets.cpp)
set(galaxies_web_inputs ${GALAXIES_WEB_FILES})
list(TRANSFORM galaxies_web_inputs PREPEND ${galaxies_web_dir}/)
string(JOIN "," galaxies_web_list ${GALAXIES_WEB_FILES})
add_custom_command(
  OUTPUT ${galaxies_web_output}
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${galaxies_web_dir} -DFILES=${galaxies_web_list}
          -DOUTPUT=${galaxies_web_output} -P ${PROJECT_SOURCE_DIR}/cmake/EmbedFiles.cmake
  DEPENDS ${galaxies_web_inputs} ${PROJECT_SOURCE_DIR}/cmake/EmbedFiles.cmake
  COMMENT "Embedding the web view (src/monitor/web)"
  VERBATIM)
target_sources(galaxies_monitor PRIVATE ${galaxies_web_output})
