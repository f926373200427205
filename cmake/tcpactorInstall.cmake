# Installs the CMake package, so a user's project can write
#   find_package(tcpactor REQUIRED)
#   target_link_libraries(app PRIVATE tcpactor::tcpactor)
# The library, headers and apps install themselves in their own directories.

include(CMakePackageConfigHelpers)

# The public headers need C++20 (std::make_shared_for_overwrite in bytes.hpp),
# so users get it with the target.
target_compile_features(tcpactor PUBLIC cxx_std_20)

set(TCPACTOR_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/tcpactor"
    CACHE STRING "Where tcpactorConfig.cmake is installed, below the prefix")
mark_as_advanced(TCPACTOR_INSTALL_CMAKEDIR)

# A static libtcpactor carries Boost.System and OpenSSL into the user's link
# line (as $<LINK_ONLY:...>), so the package config must find them too. A
# shared one links them itself and keeps them private.
get_target_property(_tcpactor_type tcpactor TYPE)
if(_tcpactor_type STREQUAL "STATIC_LIBRARY")
  set(TCPACTOR_STATIC ON)
else()
  set(TCPACTOR_STATIC OFF)
endif()

install(EXPORT tcpactorTargets
  NAMESPACE tcpactor::
  FILE tcpactorTargets.cmake
  DESTINATION "${TCPACTOR_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/tcpactorConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/tcpactorConfig.cmake"
  INSTALL_DESTINATION "${TCPACTOR_INSTALL_CMAKEDIR}")
# 0.x: a minor release may break the API, so only the same minor matches.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/tcpactorConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMinorVersion)

# Debian's libcaf-dev ships no CMake config, and the exported target links
# CAF::core publicly, so our FindCAF.cmake travels with the package.
install(FILES
  "${PROJECT_BINARY_DIR}/tcpactorConfig.cmake"
  "${PROJECT_BINARY_DIR}/tcpactorConfigVersion.cmake"
  "${PROJECT_SOURCE_DIR}/cmake/FindCAF.cmake"
  DESTINATION "${TCPACTOR_INSTALL_CMAKEDIR}")

# pkg-config, for builds that do not use CMake:
#   c++ app.cpp $(pkg-config --cflags --libs tcpactor)
# Debian's CAF ships no .pc file, so its library is named here. A static
# libtcpactor needs its own dependencies on the link line as well: they go
# into Libs, since `pkg-config --libs` without --static leaves Libs.private
# out.
set(TCPACTOR_PC_DIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
file(RELATIVE_PATH TCPACTOR_PC_UP "/${TCPACTOR_PC_DIR}" "/")
string(REGEX REPLACE "/$" "" TCPACTOR_PC_UP "${TCPACTOR_PC_UP}")
if(TCPACTOR_STATIC)
  set(TCPACTOR_PC_STATIC_LIBS "-lcaf_openssl -lcaf_io -lboost_system -lssl -lcrypto -pthread")
else()
  set(TCPACTOR_PC_STATIC_LIBS "")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/tcpactor.pc.in"
               "${PROJECT_BINARY_DIR}/tcpactor.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/tcpactor.pc"
        DESTINATION "${TCPACTOR_PC_DIR}")

# The echo daemon's systemd unit, with this prefix's paths.
configure_file("${PROJECT_SOURCE_DIR}/packaging/tcpactor-echo.service.in"
               "${PROJECT_BINARY_DIR}/tcpactor-echo.service" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/tcpactor-echo.service"
        DESTINATION "lib/systemd/system")

# Sample daemon configuration, for reference (the daemon does not read it
# from here on its own).
if(IS_DIRECTORY "${PROJECT_SOURCE_DIR}/config")
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/config/"
    DESTINATION "${CMAKE_INSTALL_DATADIR}/tcpactor/config"
    FILES_MATCHING PATTERN "*.conf")
endif()
