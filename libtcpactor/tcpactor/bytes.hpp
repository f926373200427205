#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

namespace tcpactor {

/// An immutable, reference-counted chunk of bytes. Copies share the buffer, so
/// echoing a chunk back (`return in;`) copies no data.
class bytes {
public:
  bytes() noexcept = default;

  /// Copies `n` bytes from `data`.
  bytes(const void* data, std::size_t n);

  /// Copies the characters of `str`.
  explicit bytes(std::string_view str) : bytes(str.data(), str.size()) {
    // nop
  }

  explicit bytes(const char* str) : bytes(std::string_view{str}) {
    // nop
  }

  explicit bytes(const std::string& str) : bytes(std::string_view{str}) {
    // nop
  }

  explicit bytes(const std::vector<char>& buf) : bytes(buf.data(), buf.size()) {
    // nop
  }

  /// Makes an uninitialized buffer of `n` bytes and lets `fill` write it once,
  /// before anyone else can see it.
  template <class F>
  static bytes make(std::size_t n, F fill) {
    bytes result;
    if (n == 0)
      return result;
    auto buf = std::make_shared_for_overwrite<char[]>(n);
    fill(buf.get());
    result.buf_ = std::move(buf);
    result.size_ = n;
    return result;
  }

  /// Shares the first `n` bytes of `buf` without copying them. Nobody may
  /// write to them afterwards; the buffer is released with the last copy.
  static bytes adopt(std::shared_ptr<char[]> buf, std::size_t n) noexcept {
    bytes result;
    if (n == 0 || !buf)
      return result;
    result.buf_ = std::move(buf);
    result.size_ = n;
    return result;
  }

  const char* data() const noexcept { return buf_.get(); }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  char operator[](std::size_t i) const noexcept { return buf_[i]; }

  std::string_view view() const noexcept { return {data(), size_}; }
  std::string to_string() const { return std::string{view()}; }

  friend bool operator==(const bytes& x, const bytes& y) noexcept {
    return x.view() == y.view();
  }
  friend bool operator!=(const bytes& x, const bytes& y) noexcept {
    return !(x == y);
  }

  // Serialized as a string so the type also crosses BASP links.
  template <class Inspector>
  friend typename Inspector::result_type inspect(Inspector& f, bytes& x) {
    std::string tmp;
    if constexpr (Inspector::reads_state)
      tmp = x.to_string();
    auto load = caf::meta::load_callback([&]() -> caf::error {
      x = bytes{tmp};
      return caf::none;
    });
    return f(caf::meta::type_name("tcpactor::bytes"), tmp, load);
  }

private:
  std::shared_ptr<char[]> buf_;
  std::size_t size_ = 0;
};

// Free begin/end (not members): CAF treats types with member begin/end as
// containers and bypasses `inspect`.
inline const char* begin(const bytes& x) noexcept {
  return x.data();
}

inline const char* end(const bytes& x) noexcept {
  return x.data() + x.size();
}

std::string to_string(const bytes& x);

} // namespace tcpactor
