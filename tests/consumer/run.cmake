# The install_consumer test: installs the build tree into a scratch prefix,
# then configures, builds and runs tests/consumer against it, the way a user
# would. Any failing step fails the test.
#
#   cmake -DBUILD_DIR=<tcpactor build> -DWORK_DIR=<scratch dir>
#         [-DCXX_COMPILER=...] [-DCXX_FLAGS=...] [-DBUILD_TYPE=...]
#         -P tests/consumer/run.cmake

cmake_minimum_required(VERSION 3.16)

foreach(var BUILD_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "run.cmake: -D${var}=... is required")
  endif()
endforeach()
get_filename_component(source_dir "${CMAKE_CURRENT_LIST_DIR}" ABSOLUTE)
set(prefix "${WORK_DIR}/prefix")
set(consumer_build "${WORK_DIR}/build")
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

function(step name)
  message(STATUS "install_consumer: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: '${name}' failed (${rc})")
  endif()
endfunction()

# Start clean: a stale prefix or cache could hide a missing install rule.
file(REMOVE_RECURSE "${prefix}" "${consumer_build}")

step("install" "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${prefix}")

foreach(f include/tcpactor/all.hpp bin/tcpactor-echo)
  if(NOT EXISTS "${prefix}/${f}")
    message(FATAL_ERROR "install_consumer: ${prefix}/${f} was not installed")
  endif()
endforeach()
file(GLOB config "${prefix}/lib*/cmake/tcpactor/tcpactorConfig.cmake")
if(NOT config)
  message(FATAL_ERROR "install_consumer: no tcpactorConfig.cmake in ${prefix}")
endif()
# The private transport headers must stay private.
file(GLOB_RECURSE leaked "${prefix}/include/*asio*" "${prefix}/include/*transport*")
if(leaked)
  message(FATAL_ERROR "install_consumer: private headers installed: ${leaked}")
endif()

# The systemd unit: systemd-analyze verify, with the paths moved into the
# scratch prefix (the unit names the configured prefix). systemd-analyze
# exits 0 even for a unit it had to ignore lines of, so any output fails.
set(unit "${prefix}/lib/systemd/system/tcpactor-echo.service")
if(NOT EXISTS "${unit}")
  message(FATAL_ERROR "install_consumer: ${unit} was not installed")
endif()
find_program(SYSTEMD_ANALYZE systemd-analyze)
if(SYSTEMD_ANALYZE)
  file(READ "${unit}" unit_text)
  string(REGEX MATCH "ExecStart=([^ ]*)/bin/tcpactor-echo" _ "${unit_text}")
  string(REPLACE "${CMAKE_MATCH_1}/" "${prefix}/" unit_text "${unit_text}")
  file(WRITE "${WORK_DIR}/tcpactor-echo.service" "${unit_text}")
  execute_process(COMMAND "${SYSTEMD_ANALYZE}" verify
                          "${WORK_DIR}/tcpactor-echo.service"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0 OR NOT out STREQUAL "")
    message(FATAL_ERROR "install_consumer: systemd-analyze verify of the "
                        "unit failed (${rc}): ${out}")
  endif()
  message(STATUS "install_consumer: systemd unit verified")
else()
  message(STATUS "install_consumer: systemd-analyze not found: unit not verified")
endif()

set(configure_args -S "${source_dir}" -B "${consumer_build}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()
if(CXX_FLAGS)
  # Sanitizer builds: the consumer links an instrumented libtcpactor.
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
endif()
step("configure consumer" "${CMAKE_COMMAND}" ${configure_args})
step("build consumer" "${CMAKE_COMMAND}" --build "${consumer_build}")
step("run consumer" "${consumer_build}/tcpactor-consumer")

# The same program built without CMake, from `pkg-config --cflags --libs`.
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "install_consumer: pkg-config not found")
endif()
file(GLOB pc_dir "${prefix}/lib*/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
execute_process(COMMAND "${PKG_CONFIG}" --cflags --libs tcpactor
                OUTPUT_VARIABLE pc_flags RESULT_VARIABLE rc
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install_consumer: pkg-config --cflags --libs tcpactor "
                      "failed (${rc}) with PKG_CONFIG_PATH=${pc_dir}")
endif()
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
set(cxx "${CXX_COMPILER}")
if(NOT cxx)
  set(cxx c++)
endif()
separate_arguments(extra_flags UNIX_COMMAND "${CXX_FLAGS}")
step("build consumer with pkg-config" "${cxx}" ${extra_flags}
     "${source_dir}/main.cpp" -o "${WORK_DIR}/tcpactor-consumer-pc" ${pc_flags})
step("run consumer built with pkg-config" "${WORK_DIR}/tcpactor-consumer-pc")
message(STATUS "install_consumer: ok")
