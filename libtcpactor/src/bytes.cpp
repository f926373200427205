#include "tcpactor/bytes.hpp"

namespace tcpactor {

bytes::bytes(const void* data, std::size_t n) {
  if (n == 0)
    return;
  auto buf = std::make_shared_for_overwrite<char[]>(n);
  std::memcpy(buf.get(), data, n);
  buf_ = std::move(buf);
  size_ = n;
}

std::string to_string(const bytes& x) {
  // Short, printable summary: messages may be huge and binary.
  std::string result = "bytes(";
  result += std::to_string(x.size());
  result += ")";
  return result;
}

} // namespace tcpactor
