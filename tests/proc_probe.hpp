// What this process holds, read from /proc: for leak checks in the suites and
// in emfile_child, which is not a Boost.Test program.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace tcpactor::test::posix {

/// Entries of /proc/self/fd (minus the one opendir itself uses).
inline std::size_t count_open_fds() {
  std::size_t n = 0;
  if (auto* dir = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(dir))
      if (e->d_name[0] != '.')
        ++n;
    ::closedir(dir);
  }
  return n > 0 ? n - 1 : 0;
}

/// Resident set size of this process in bytes, from /proc/self/statm.
inline std::size_t rss_bytes() {
  std::size_t pages = 0;
  std::size_t resident = 0;
  if (auto* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%zu %zu", &pages, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

} // namespace tcpactor::test::posix
