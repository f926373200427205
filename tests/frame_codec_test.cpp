#include "frame_codec.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tcpactor/errors.hpp"
#include "tcpactor/framing.hpp"

#include <boost/test/unit_test.hpp>

using namespace tcpactor;
using namespace std::literals;

namespace {

using codec = framing_config::codec;

struct decoded {
  std::vector<std::string> frames;
  std::vector<std::size_t> delims; // last_delimiter_size() of each frame
  caf::error err;
  caf::error eof;
  std::size_t buffered = 0;
  std::size_t consumed = 0;
  std::size_t max_buffered = 0; // after draining, over all feeds
};

// Feeds `input` cut at `cuts` (ascending offsets), draining after each feed.
decoded decode(const framing_config& cfg, std::string_view input,
               const std::vector<std::size_t>& cuts = {}) {
  decoded result;
  frame_decoder dec{cfg};
  dec.set_peer("10.0.0.1:7");
  std::size_t from = 0;
  auto drain = [&] {
    bytes frame;
    while (dec.next(frame)) {
      result.frames.push_back(frame.to_string());
      result.delims.push_back(dec.last_delimiter_size());
    }
    result.max_buffered = std::max(result.max_buffered, dec.buffered());
  };
  for (auto cut : cuts) {
    dec.feed(input.data() + from, cut - from);
    drain();
    from = cut;
  }
  dec.feed(input.data() + from, input.size() - from);
  drain();
  result.err = dec.error();
  result.eof = dec.at_eof();
  result.buffered = dec.buffered();
  result.consumed = dec.consumed();
  return result;
}

// Feeds `input` `step` bytes at a time.
decoded decode_by(const framing_config& cfg, std::string_view input,
                  std::size_t step) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = step; i < input.size(); i += step)
    cuts.push_back(i);
  return decode(cfg, input, cuts);
}

std::string header(uint64_t value, std::size_t size, bool big_endian = true) {
  std::string result(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    auto shift = 8 * (big_endian ? size - 1 - i : i);
    result[i] = static_cast<char>((value >> shift) & 0xff);
  }
  return result;
}

std::string encode(const framing_config& cfg, std::string_view payload) {
  std::vector<bytes> pieces;
  auto err = encode_frame(cfg, bytes{payload}, pieces);
  BOOST_TEST_REQUIRE(!err, describe(err));
  std::string result;
  for (auto& piece : pieces)
    result += piece.view();
  return result;
}

caf::error encode_error(const framing_config& cfg, std::string_view payload) {
  std::vector<bytes> pieces;
  auto err = encode_frame(cfg, bytes{payload}, pieces);
  if (err)
    BOOST_TEST(pieces.empty(), "a failed encode appends nothing");
  return err;
}

framing_config length(uint8_t size, bool big_endian = true,
                      bool counted = false, std::size_t max = 1024 * 1024) {
  framing_config cfg;
  cfg.type = codec::length_prefix;
  cfg.header_size = size;
  cfg.big_endian = big_endian;
  cfg.header_counted = counted;
  cfg.max_frame_size = max;
  return cfg;
}

framing_config delimited(std::string delim, std::size_t max = 1024 * 1024,
                         bool accept_crlf = false) {
  framing_config cfg;
  cfg.type = codec::delimiter;
  cfg.delimiter = std::move(delim);
  cfg.accept_crlf = accept_crlf;
  cfg.max_frame_size = max;
  return cfg;
}

framing_config exact(std::size_t size) {
  framing_config cfg;
  cfg.type = codec::exact;
  cfg.frame_size = size;
  return cfg;
}

bool contains(const caf::error& err, std::string_view what) {
  return describe(err).find(what) != std::string::npos;
}

using strings = std::vector<std::string>;

} // namespace

BOOST_AUTO_TEST_SUITE(frame_codec_tests)

// -- length_prefix ------------------------------------------------------------

BOOST_AUTO_TEST_CASE(length_prefix_reads_every_header_size_and_endianness) {
  for (uint8_t size : {1, 2, 4, 8}) {
    for (bool big_endian : {true, false}) {
      auto cfg = length(size, big_endian, false, 255);
      BOOST_TEST_REQUIRE(!cfg.validate());
      std::string payload(200, 'p');
      auto input = header(3, size, big_endian) + "abc" +
                   header(200, size, big_endian) + payload +
                   header(1, size, big_endian) + "z";
      auto out = decode(cfg, input);
      BOOST_TEST_INFO("header " << int{size} << (big_endian ? " be" : " le"));
      BOOST_TEST((out.frames == strings{"abc", payload, "z"}));
      BOOST_TEST(!out.err);
      BOOST_TEST(!out.eof);
      BOOST_TEST(out.consumed == input.size());
      BOOST_TEST(out.buffered == 0u);
    }
  }
}

BOOST_AUTO_TEST_CASE(length_prefix_byte_order_matters) {
  // 0x0102 big endian is 258, little endian 513.
  std::string input = "\x01\x02"s + std::string(600, 'x');
  auto be = decode(length(2, true), input);
  auto le = decode(length(2, false), input);
  BOOST_TEST_REQUIRE(be.frames.size() == 1u);
  BOOST_TEST(be.frames[0].size() == 258u);
  BOOST_TEST_REQUIRE(le.frames.size() == 1u);
  BOOST_TEST(le.frames[0].size() == 513u);
}

BOOST_AUTO_TEST_CASE(inclusive_length_counts_the_header) {
  auto cfg = length(2, true, true);
  auto input = header(5, 2) + "abc" + header(2, 2) + header(3, 2) + "z";
  auto out = decode(cfg, input);
  BOOST_TEST((out.frames == strings{"abc", "", "z"}));
  BOOST_TEST(!out.err);
  BOOST_TEST(encode(cfg, "abc") == header(5, 2) + "abc");
}

BOOST_AUTO_TEST_CASE(inclusive_length_below_the_header_is_invalid) {
  auto cfg = length(4, true, true);
  auto input = header(6, 4) + "ok" + header(3, 4) + "more";
  auto out = decode(cfg, input);
  BOOST_TEST((out.frames == strings{"ok"}));
  BOOST_TEST((kind(out.err) == errc::frame_invalid), describe(out.err));
  BOOST_TEST(contains(out.err, "10.0.0.1:7: frame length 3"));
}

BOOST_AUTO_TEST_CASE(empty_length_prefixed_frames_are_valid) {
  auto cfg = length(4);
  auto input = header(0, 4) + header(0, 4) + header(1, 4) + "x" + header(0, 4);
  auto out = decode_by(cfg, input, 1);
  BOOST_TEST((out.frames == strings{"", "", "x", ""}));
  BOOST_TEST(!out.err);
  BOOST_TEST(!out.eof);
  BOOST_TEST(encode(cfg, "") == header(0, 4));
}

BOOST_AUTO_TEST_CASE(length_prefix_max_is_inclusive_and_checked_at_the_header) {
  auto cfg = length(4, true, false, 10);
  auto ok = decode(cfg, header(10, 4) + "0123456789");
  BOOST_TEST((ok.frames == strings{"0123456789"}));
  BOOST_TEST(!ok.err);
  // Only the header of the oversized frame arrives: the error is immediate.
  frame_decoder dec{cfg};
  dec.set_peer("127.0.0.1:5000");
  auto input = header(2, 4) + "hi" + header(11, 4);
  dec.feed(input.data(), input.size());
  bytes frame;
  BOOST_TEST_REQUIRE(dec.next(frame));
  BOOST_TEST(frame.to_string() == "hi");
  BOOST_TEST(!dec.next(frame));
  BOOST_TEST((kind(dec.error()) == errc::frame_too_large));
  BOOST_TEST(describe(dec.error()) ==
             "frame_too_large: 127.0.0.1:5000: frame of 11 bytes exceeds "
             "max_frame_size 10");
  BOOST_TEST(dec.consumed() == 6u);
}

BOOST_AUTO_TEST_CASE(huge_eight_byte_lengths_fail_without_overflow) {
  for (bool counted : {false, true}) {
    auto cfg = length(8, true, counted);
    for (uint64_t value :
         {UINT64_MAX, UINT64_MAX - 7, uint64_t{1} << 63,
          static_cast<uint64_t>(1024 * 1024 + 1 + (counted ? 8 : 0))}) {
      auto out = decode(cfg, header(value, 8) + "abc");
      BOOST_TEST((kind(out.err) == errc::frame_too_large), describe(out.err));
      BOOST_TEST(out.frames.empty());
    }
  }
  auto out = decode(length(8), header(UINT64_MAX, 8));
  BOOST_TEST(contains(out.err, "frame of 18446744073709551615 bytes"));
}

BOOST_AUTO_TEST_CASE(many_frames_in_one_feed) {
  auto cfg = length(2);
  std::string input;
  strings expected;
  for (int i = 0; i < 1000; ++i) {
    expected.push_back(std::to_string(i));
    input += encode(cfg, expected.back());
  }
  auto out = decode(cfg, input);
  BOOST_TEST((out.frames == expected));
  BOOST_TEST(out.consumed == input.size());
  BOOST_TEST(out.buffered == 0u);
}

BOOST_AUTO_TEST_CASE(the_buffer_keeps_only_the_partial_frame) {
  auto cfg = length(4, true, false, 100);
  std::string input;
  for (int i = 0; i < 50; ++i)
    input += encode(cfg, std::string(100, 'a'));
  input += header(100, 4) + "partial";
  auto out = decode_by(cfg, input, 333);
  BOOST_TEST(out.frames.size() == 50u);
  BOOST_TEST(out.buffered == 11u);
  BOOST_TEST(out.max_buffered < 104u);
  BOOST_TEST(out.consumed + out.buffered == input.size());
}

// -- every codec, every cut
// -----------------------------------------------------

BOOST_AUTO_TEST_CASE(frames_split_at_every_position_decode_the_same) {
  struct sample {
    framing_config cfg;
    strings payloads;
  };
  std::vector<sample> samples{
      {length(1, true, false, 255), {"abc", "", "hello world", "x"}},
      {length(2, false, false, 65535), {"abc", "", "hello world", "x"}},
      {length(4, true, true), {"abc", "", "hello world", "x"}},
      {length(8, false, true), {"abc", "", "hi", "x"}},
      {delimited("\n"), {"abc", "", "hello world", "x"}},
      {delimited("\r\n"), {"abc", "", "hello\rworld", "x\n"}},
      {delimited("END"), {"abc", "", "EN", "xENE0"}},
      {delimited(std::string("\0", 1)), {"abc", "", "hello", "x"}},
      {delimited("aa"), {"b", "", "bab", "xb"}},
      {delimited("\n", 1024, true), {"abc", "", "a\rb", "x"}},
      {exact(3), {"abc", "def", "\0\0\0"s, "xyz"}},
  };
  for (auto& s : samples) {
    BOOST_TEST_INFO("codec " << s.cfg.to_string());
    BOOST_TEST_REQUIRE(!s.cfg.validate(), describe(s.cfg.validate()));
    std::string input;
    for (auto& p : s.payloads)
      input += encode(s.cfg, p);
    auto whole = decode(s.cfg, input);
    BOOST_TEST((whole.frames == s.payloads));
    BOOST_TEST(!whole.err);
    BOOST_TEST(!whole.eof);
    // Two cuts anywhere (including both at the same spot) change nothing.
    for (std::size_t i = 0; i <= input.size(); ++i) {
      for (std::size_t j = i; j <= input.size(); ++j) {
        auto out = decode(s.cfg, input, {i, j});
        BOOST_TEST_REQUIRE((out.frames == s.payloads),
                           "cut at " << i << " and " << j);
        BOOST_TEST_REQUIRE(!out.err);
        BOOST_TEST_REQUIRE(out.consumed == input.size());
      }
    }
    auto bytewise = decode_by(s.cfg, input, 1);
    BOOST_TEST((bytewise.frames == s.payloads));
  }
}

// -- delimiter ----------------------------------------------------------------

BOOST_AUTO_TEST_CASE(delimiter_is_stripped_and_empty_lines_are_frames) {
  auto out = decode(delimited("\n"), "one\n\ntwo\nthree");
  BOOST_TEST((out.frames == strings{"one", "", "two"}));
  BOOST_TEST(out.buffered == 5u);
  BOOST_TEST((kind(out.eof) == errc::frame_truncated));
  BOOST_TEST(contains(out.eof, "5 bytes arrived after the last delimiter"));
}

BOOST_AUTO_TEST_CASE(crlf_delimiter_split_across_feeds) {
  auto cfg = delimited("\r\n");
  std::string input = "abc\r\ndef\r\n\r\n";
  auto out = decode(cfg, input, {4, 5, 9});
  BOOST_TEST((out.frames == strings{"abc", "def", ""}));
  // A lone '\r' or '\n' is payload.
  out = decode(cfg, "a\rb\nc\r\n");
  BOOST_TEST((out.frames == strings{"a\rb\nc"}));
}

BOOST_AUTO_TEST_CASE(nul_and_multi_byte_delimiters) {
  auto out = decode(delimited(std::string{"\0", 1}), "a\0b\0\0"s);
  BOOST_TEST((out.frames == strings{"a", "b", ""}));
  out = decode_by(delimited("END"), "fooENDbarENENDEND", 1);
  BOOST_TEST((out.frames == strings{"foo", "barEN", ""}));
  // The first occurrence wins, also when delimiters overlap.
  out = decode(delimited("aa"), "baaab"s + "aa");
  BOOST_TEST((out.frames == strings{"b", "ab"}));
}

BOOST_AUTO_TEST_CASE(accept_crlf_strips_an_optional_carriage_return) {
  auto cfg = delimited("\n", 1024, true);
  auto out = decode_by(cfg, "a\r\nb\nc\r\r\n\r\n\n", 1);
  BOOST_TEST((out.frames == strings{"a", "b", "c\r", "", ""}));
  BOOST_TEST((out.delims == std::vector<std::size_t>{2, 1, 2, 2, 1}));
  BOOST_TEST(out.consumed == 12u);
}

BOOST_AUTO_TEST_CASE(delimiter_max_is_inclusive_and_enforced_early) {
  auto cfg = delimited("\n", 5);
  BOOST_TEST((decode(cfg, "12345\n").frames == strings{"12345"}));
  auto out = decode(cfg, "ok\n123456");
  BOOST_TEST((out.frames == strings{"ok"}));
  BOOST_TEST((kind(out.err) == errc::frame_too_large));
  BOOST_TEST(describe(out.err) ==
             "frame_too_large: 10.0.0.1:7: no delimiter \"\\n\" within 6 "
             "bytes (max_frame_size 5)");
  // Without waiting for more: 6 bytes without '\n' already fail.
  frame_decoder dec{cfg};
  dec.feed("123456", 6);
  bytes frame;
  BOOST_TEST(!dec.next(frame));
  BOOST_TEST((kind(dec.error()) == errc::frame_too_large));
}

BOOST_AUTO_TEST_CASE(multi_byte_delimiter_max_waits_only_while_it_may_fit) {
  auto cfg = delimited("END", 4);
  BOOST_TEST((decode(cfg, "abcdEND").frames == strings{"abcd"}));
  for (auto partial : {"abcdE", "abcdEN"}) {
    auto out = decode(cfg, partial);
    BOOST_TEST(!out.err, partial << " may still end in time");
  }
  for (auto bad : {"abcdx", "abcdEx", "abcdENx", "abcdeEND"}) {
    auto out = decode(cfg, bad);
    BOOST_TEST((kind(out.err) == errc::frame_too_large), bad);
    BOOST_TEST(contains(out.err, "within 7 bytes"));
  }
  auto crlf = delimited("\n", 3, true);
  BOOST_TEST(!decode(crlf, "abc\r").err);
  BOOST_TEST((decode(crlf, "abc\r\n").frames == strings{"abc"}));
  BOOST_TEST((kind(decode(crlf, "abcd").err) == errc::frame_too_large));
  BOOST_TEST((kind(decode(crlf, "abcd\n").err) == errc::frame_too_large));
}

BOOST_AUTO_TEST_CASE(delimiter_search_is_linear_in_one_byte_feeds) {
  // A rescan per feed would take minutes here (O(n^2) over 1 MiB).
  auto cfg = delimited("\r\n");
  frame_decoder dec{cfg};
  const std::size_t n = 1024 * 1024 - 1;
  auto t0 = std::chrono::steady_clock::now();
  bytes frame;
  for (std::size_t i = 0; i < n; ++i) {
    dec.feed("x", 1);
    if (dec.next(frame))
      BOOST_FAIL("a frame without a delimiter");
  }
  dec.feed("\r\n", 2);
  BOOST_TEST_REQUIRE(dec.next(frame));
  BOOST_TEST(frame.size() == n);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  BOOST_TEST(elapsed < 20s);
  BOOST_TEST(dec.buffered() == 0u);
}

// -- exact and raw
// --------------------------------------------------------------

BOOST_AUTO_TEST_CASE(exact_frames_have_the_given_size) {
  auto cfg = exact(4);
  auto out = decode_by(cfg, "abcdefghij", 3);
  BOOST_TEST((out.frames == strings{"abcd", "efgh"}));
  BOOST_TEST(out.buffered == 2u);
  BOOST_TEST((kind(out.eof) == errc::frame_truncated));
  BOOST_TEST(contains(out.eof, "2 of 4 bytes arrived"));
}

BOOST_AUTO_TEST_CASE(raw_passes_chunks_through) {
  framing_config cfg;
  auto out = decode(cfg, "abcdef", {2});
  BOOST_TEST((out.frames == strings{"ab", "cdef"}));
  BOOST_TEST(!out.eof);
  std::vector<bytes> pieces;
  bytes payload{"xyz"};
  BOOST_TEST(!encode_frame(cfg, payload, pieces));
  BOOST_TEST_REQUIRE(pieces.size() == 1u);
  BOOST_TEST((pieces[0].data() == payload.data()));
}

// -- end of stream and errors
// ---------------------------------------------------

BOOST_AUTO_TEST_CASE(eof_inside_a_frame_is_truncated) {
  auto cfg = length(4);
  auto out = decode(cfg, header(3, 4) + "abc" + "\0\0"s);
  BOOST_TEST((out.frames == strings{"abc"}));
  BOOST_TEST((kind(out.eof) == errc::frame_truncated));
  BOOST_TEST(describe(out.eof) == "frame_truncated: 10.0.0.1:7: stream ended "
                                  "inside a frame header: 2 of 4 bytes "
                                  "arrived");
  out = decode(cfg, header(10, 4) + "abcdef");
  BOOST_TEST(contains(out.eof, "6 of 10 payload bytes arrived"));
  // At a frame boundary the end is clean, for every codec.
  BOOST_TEST(!decode(cfg, header(1, 4) + "x").eof);
  BOOST_TEST(!decode(cfg, "").eof);
  BOOST_TEST(!decode(delimited("\n"), "a\n").eof);
  BOOST_TEST(!decode(exact(2), "abcd").eof);
}

BOOST_AUTO_TEST_CASE(at_eof_counts_frames_not_yet_taken) {
  auto cfg = length(1);
  frame_decoder dec{cfg};
  auto input = header(1, 1) + "a" + header(2, 1) + "bc";
  dec.feed(input.data(), input.size());
  BOOST_TEST(!dec.at_eof(), "only whole frames are buffered");
  dec.feed("\x05", 1);
  BOOST_TEST((kind(dec.at_eof()) == errc::frame_truncated));
}

BOOST_AUTO_TEST_CASE(errors_are_sticky_and_earlier_frames_come_first) {
  auto cfg = delimited("\n", 4);
  frame_decoder dec{cfg};
  std::string input = "a\nbb\ntoo long\nc\n";
  dec.feed(input.data(), input.size());
  bytes frame;
  strings frames;
  while (dec.next(frame))
    frames.push_back(frame.to_string());
  BOOST_TEST((frames == strings{"a", "bb"}));
  auto err = dec.error();
  BOOST_TEST_REQUIRE((kind(err) == errc::frame_too_large));
  BOOST_TEST(dec.consumed() == 5u);
  // More good input changes nothing: no frame, same error.
  dec.feed("ok\n", 3);
  BOOST_TEST(!dec.next(frame));
  BOOST_TEST(!dec.next(frame));
  BOOST_TEST((dec.error() == err));
  BOOST_TEST((dec.at_eof() == err));
  BOOST_TEST(dec.consumed() == 5u);
}

BOOST_AUTO_TEST_CASE(an_idle_decoder_holds_nothing) {
  auto cfg = length(2);
  frame_decoder dec{cfg};
  auto input = encode(cfg, std::string(1000, 'a'));
  dec.feed(input.data(), input.size());
  bytes frame;
  BOOST_TEST(dec.next(frame));
  BOOST_TEST(!dec.next(frame));
  BOOST_TEST(dec.buffered() == 0u);
  BOOST_TEST(frame.size() == 1000u, "the frame outlives the buffer");
  BOOST_TEST(frame.to_string() == std::string(1000, 'a'));
}

// -- encode_frame
// ---------------------------------------------------------------

BOOST_AUTO_TEST_CASE(encode_writes_headers_and_delimiters) {
  BOOST_TEST(encode(length(2), "abc") == "\0\3abc"s);
  BOOST_TEST(encode(length(2, false), "abc") == "\3\0abc"s);
  BOOST_TEST(encode(length(4, true, true), "ab") == "\0\0\0\6ab"s);
  BOOST_TEST(encode(length(8, false), "") == std::string(8, '\0'));
  BOOST_TEST(encode(delimited("\r\n"), "hi") == "hi\r\n");
  BOOST_TEST(encode(delimited("\n", 100, true), "hi") == "hi\n");
  BOOST_TEST(encode(delimited(std::string{"\0", 1}), "") == "\0"s);
  BOOST_TEST(encode(exact(3), "abc") == "abc");
}

BOOST_AUTO_TEST_CASE(decode_of_encode_is_identity) {
  uint64_t state = 42;
  auto rnd = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::vector<framing_config> cfgs{length(1, true, true, 200),
                                   length(2, false),
                                   length(4),
                                   length(8, true, true),
                                   delimited("\n"),
                                   delimited("\r\n"),
                                   delimited("|||"),
                                   delimited("\n", 1024 * 1024, true)};
  for (auto& cfg : cfgs) {
    BOOST_TEST_INFO("codec " << cfg.to_string());
    strings payloads;
    std::string wire;
    for (int i = 0; i < 200; ++i) {
      std::string p(rnd() % (i % 10 == 0 ? 6000 : 150), '\0');
      for (auto& c : p)
        c = "abc|\r"[rnd() % 5]; // never '\n'; '|' at most twice in a row
      if (cfg.accept_crlf && !p.empty() && p.back() == '\r')
        p.back() = 'a';
      if (cfg.delimiter == "\r\n")
        for (std::size_t j = 1; j < p.size(); ++j)
          if (p[j - 1] == '\r' && p[j] == '\n')
            p[j] = 'a';
      if (cfg.delimiter == "|||" || cfg.delimiter == "\r\n")
        while (!p.empty() && (p.back() == '|' || p.back() == '\r'))
          p.pop_back();
      if (cfg.delimiter == "|||")
        for (std::size_t j = 2; j < p.size(); ++j)
          if (p[j] == '|' && p[j - 1] == '|' && p[j - 2] == '|')
            p[j] = 'c';
      if (p.size() > cfg.max_frame_size)
        p.resize(cfg.max_frame_size);
      payloads.push_back(p);
      wire += encode(cfg, p);
    }
    std::vector<std::size_t> cuts;
    for (std::size_t at = rnd() % 100; at < wire.size(); at += rnd() % 3000)
      cuts.push_back(at);
    auto out = decode(cfg, wire, cuts);
    BOOST_TEST((out.frames == payloads));
    BOOST_TEST(!out.err, describe(out.err));
    BOOST_TEST(out.consumed == wire.size());
  }
}

BOOST_AUTO_TEST_CASE(large_payloads_are_shared_not_copied) {
  auto payload = bytes::make(5000, [](char* p) {
    for (int i = 0; i < 5000; ++i)
      p[i] = static_cast<char>('a' + i % 26);
  });
  std::vector<bytes> pieces;
  BOOST_TEST(!encode_frame(length(4), payload, pieces));
  BOOST_TEST_REQUIRE(pieces.size() == 2u);
  BOOST_TEST(pieces[0].view() == header(5000, 4));
  BOOST_TEST((pieces[1].data() == payload.data()));
  pieces.clear();
  BOOST_TEST(!encode_frame(delimited("\r\n"), payload, pieces));
  BOOST_TEST_REQUIRE(pieces.size() == 2u);
  BOOST_TEST((pieces[0].data() == payload.data()));
  BOOST_TEST(pieces[1].view() == "\r\n");
  // Below 4 KiB: one contiguous piece.
  pieces.clear();
  BOOST_TEST(!encode_frame(length(4), bytes{std::string(4095, 'x')}, pieces));
  BOOST_TEST_REQUIRE(pieces.size() == 1u);
  BOOST_TEST(pieces[0].size() == 4099u);
}

BOOST_AUTO_TEST_CASE(encode_rejects_what_the_peer_would_misread) {
  auto err = encode_error(length(4, true, false, 10), std::string(11, 'x'));
  BOOST_TEST((kind(err) == errc::frame_too_large));
  BOOST_TEST(contains(err, "frame of 11 bytes exceeds max_frame_size 10"));
  BOOST_TEST(!encode_error(length(4, true, false, 10), std::string(10, 'x')));
  // What the header can hold, even if max_frame_size was not validated.
  err = encode_error(length(1, true, false, 1000), std::string(256, 'x'));
  BOOST_TEST((kind(err) == errc::frame_too_large));
  BOOST_TEST(contains(err, "1-byte length can express (255)"));
  err = encode_error(length(1, true, true, 1000), std::string(255, 'x'));
  BOOST_TEST(contains(err, "(254)"));
  err = encode_error(delimited("\r\n"), "a\r\nb");
  BOOST_TEST((kind(err) == errc::frame_invalid));
  BOOST_TEST(contains(err, "contains the delimiter \"\\r\\n\" at offset 1"));
  // "a\r\r\n" reads back as "a\r": the first "\r\n" starts after it.
  BOOST_TEST(!encode_error(delimited("\r\n"), "a\r"));
  BOOST_TEST((decode(delimited("\r\n"), "a\r\r\n").frames == strings{"a\r"}));
  // Self-overlapping delimiters: "baaa" reads as "b", "ababab" as "".
  err = encode_error(delimited("aa"), "ba");
  BOOST_TEST((kind(err) == errc::frame_invalid));
  BOOST_TEST(contains(err, "frame ends in \"a\", which the peer would read"));
  BOOST_TEST(
      (kind(encode_error(delimited("abab"), "ab")) == errc::frame_invalid));
  BOOST_TEST(!encode_error(delimited("ab"), "a"), "\"aab\" reads back as a");
  BOOST_TEST((kind(encode_error(delimited("\n", 1024, true), "a\nb")) ==
              errc::frame_invalid));
  BOOST_TEST((kind(encode_error(delimited("\n", 1024, true), "a\r")) ==
              errc::frame_invalid));
  BOOST_TEST((kind(encode_error(delimited("\n", 3), "abcd")) ==
              errc::frame_too_large));
  err = encode_error(exact(4), "abc");
  BOOST_TEST((kind(err) == errc::frame_invalid));
  BOOST_TEST(contains(err, "frame of 3 bytes"));
  BOOST_TEST((kind(encode_error(exact(4), "")) == errc::frame_invalid));
}

// -- framing_config
// -------------------------------------------------------------

BOOST_AUTO_TEST_CASE(parse_reads_every_form) {
  auto line = framing_config::parse("line");
  BOOST_TEST_REQUIRE(!!line);
  BOOST_TEST((line->type == codec::delimiter));
  BOOST_TEST(line->delimiter == "\n");
  BOOST_TEST(line->accept_crlf);
  auto crlf = framing_config::parse("line:crlf");
  BOOST_TEST_REQUIRE(!!crlf);
  BOOST_TEST(crlf->delimiter == "\r\n");
  BOOST_TEST(!crlf->accept_crlf);
  auto len = framing_config::parse("length:8:le:inclusive,max=64k");
  BOOST_TEST_REQUIRE(!!len);
  BOOST_TEST((len->type == codec::length_prefix));
  BOOST_TEST(len->header_size == 8);
  BOOST_TEST(!len->big_endian);
  BOOST_TEST(len->header_counted);
  BOOST_TEST(len->max_frame_size == 65536u);
  auto small = framing_config::parse("length:2");
  BOOST_TEST_REQUIRE(!!small);
  BOOST_TEST(small->big_endian);
  BOOST_TEST(small->max_frame_size == 65535u, "what 2 bytes can express");
  auto delim = framing_config::parse("delimiter:\\0\\x41,\\t\\\\,max=2m");
  BOOST_TEST_REQUIRE(!!delim);
  BOOST_TEST(delim->delimiter == "\0A,\t\\"s);
  BOOST_TEST(delim->max_frame_size == 2u * 1024 * 1024);
  auto ex = framing_config::parse("exact:512");
  BOOST_TEST_REQUIRE(!!ex);
  BOOST_TEST((ex->type == codec::exact));
  BOOST_TEST(ex->frame_size == 512u);
  auto raw = framing_config::parse("raw");
  BOOST_TEST_REQUIRE(!!raw);
  BOOST_TEST((*raw == framing_config{}));
}

BOOST_AUTO_TEST_CASE(to_string_round_trips_through_parse) {
  for (auto spec : {"raw",
                    "raw,max=5",
                    "line",
                    "line:crlf",
                    "line,max=64k",
                    "length:1",
                    "length:1:inclusive",
                    "length:2:le",
                    "length:4",
                    "length:4:inclusive",
                    "length:8:le:inclusive,max=1k",
                    "length:2,max=100",
                    "delimiter:END",
                    "delimiter:\\0",
                    "delimiter:\\r\\n\\r\\n",
                    "delimiter:a\\x2cb",
                    "delimiter:\\xff\\x01 \\\\",
                    "delimiter:\\n",
                    "exact:16",
                    "exact:16,max=64k",
                    "exact:2m",
                    "exact:100,max=1000"}) {
    auto cfg = framing_config::parse(spec);
    BOOST_TEST_REQUIRE(!!cfg,
                       spec << ": " << (cfg ? "" : describe(cfg.error())));
    auto again = framing_config::parse(cfg->to_string());
    BOOST_TEST_REQUIRE(!!again, cfg->to_string());
    BOOST_TEST((*again == *cfg), spec << " -> " << cfg->to_string());
  }
  BOOST_TEST(framing_config::parse("length:4:be,max=1m")->to_string() ==
             "length:4");
  BOOST_TEST(framing_config::parse("line,max=65536")->to_string() ==
             "line,max=64k");
  BOOST_TEST(delimited("a,b\x7f").to_string() == "delimiter:a\\x2cb\\x7f");
  BOOST_TEST(delimited("\n").to_string() == "delimiter:\\n");
  BOOST_TEST(length(1, false, true, 254).to_string() ==
             "length:1:le:inclusive");
  BOOST_TEST(exact(7).to_string() == "exact:7");
  BOOST_TEST(framing_config{}.to_string() == "raw");
}

BOOST_AUTO_TEST_CASE(parse_errors_name_the_field_and_the_bad_part) {
  struct bad_spec {
    std::string spec;
    std::string expected;
  };
  std::vector<bad_spec> cases{
      {"", "framing: '' is not one of raw, line, line:crlf, length:N"},
      {"lenght:4", "framing: 'lenght:4' is not one of raw"},
      {"raw:x", "'raw:x' is not one of"},
      {"line:cr", "'line:cr' is not one of"},
      {"length", "'length' is not one of"},
      {"length:3",
       "framing: header size '3' in 'length:3' is not 1, 2, 4 or 8"},
      {"length:x", "header size 'x'"},
      {"length:4:xx", "option 'xx' in 'length:4:xx' is not one of be, le"},
      {"length:4:be:le", "option 'le'"},
      {"length:4:inclusive:inclusive", "option 'inclusive'"},
      {"delimiter:", "delimiter in 'delimiter:' must not be empty"},
      {"delimiter:\\q", "unknown escape '\\q'"},
      {"delimiter:\\x4", "'\\x' needs two hex digits"},
      {"delimiter:ab\\", "a lone '\\' at the end"},
      {"exact:0", "frame size '0' in 'exact:0' is not a size"},
      {"exact:abc", "frame size 'abc'"},
      {"line,max=abc", "max 'abc' in 'line,max=abc' is not a size in bytes"},
      {"line,max=", "max ''"},
      {"line,max=0", "must be 1 B - 1 GiB"},
      {"line,max=2048m", "must be 1 B - 1 GiB"},
      {"line,max=99999999999999999999", "is not a size in bytes"},
      {"length:1,max=1000",
       "framing.max_frame_size: is 1000, but a 1-byte length can express at "
       "most 255 bytes"},
      {"length:2:inclusive,max=65535", "at most 65533 bytes"},
      {"exact:100,max=99", "framing.frame_size: must be 1 B - max_frame_size"},
      {"delimiter:" + std::string(65, 'x'),
       "framing.delimiter: must be at most "
       "64 bytes"},
  };
  for (auto& c : cases) {
    auto res = framing_config::parse(c.spec);
    BOOST_TEST_REQUIRE(!res, "'" << c.spec << "' must not parse");
    BOOST_TEST((kind(res.error()) == errc::invalid_config));
    BOOST_TEST(contains(res.error(), c.expected),
               c.spec << " -> " << describe(res.error()));
  }
  auto res = framing_config::parse("nope", "listener.connection.framing");
  BOOST_TEST_REQUIRE(!res);
  BOOST_TEST(describe(res.error())
                 .starts_with("invalid_config: listener.connection.framing: "
                              "'nope' is not one of"));
}

BOOST_AUTO_TEST_CASE(validate_names_the_field) {
  BOOST_TEST(!framing_config{}.validate(), "raw is the valid default");
  auto check = [](framing_config cfg, std::string expected) {
    auto err = cfg.validate("client.connection.framing");
    BOOST_TEST((kind(err) == errc::invalid_config), expected);
    BOOST_TEST(contains(err, "client.connection.framing." + expected),
               describe(err));
  };
  check(length(3), "header_size: must be 1, 2, 4 or 8 (is 3)");
  check(length(1), "max_frame_size: is 1048576, but a 1-byte length can "
                   "express at most 255 bytes of payload");
  check(length(2, true, true),
        "max_frame_size: is 1048576, but a 2-byte length that includes the "
        "header can express at most 65533");
  check(delimited(""), "delimiter: must not be empty");
  check(delimited(std::string(65, '-')), "delimiter: must be at most 64");
  check(delimited("\r\n", 100, true), "accept_crlf: needs the delimiter");
  check(exact(0), "frame_size: must be 1 B - max_frame_size");
  auto big = exact(10);
  big.max_frame_size = 9;
  check(big, "frame_size: must be 1 B - max_frame_size (9), is 10");
  check(length(4, true, false, 0), "max_frame_size: must be 1 B - 1 GiB");
  check(delimited("\n", 1024u * 1024 * 1024 + 1),
        "max_frame_size: must be 1 B - 1 GiB");
  BOOST_TEST(!length(1, true, false, 255).validate());
  BOOST_TEST(!length(1, true, true, 254).validate());
  BOOST_TEST(!length(8, true, true, 1024u * 1024 * 1024).validate());
  BOOST_TEST(!delimited(std::string(64, '-')).validate());
  BOOST_TEST(!exact(1024 * 1024).validate());
}

BOOST_AUTO_TEST_CASE(wire_size_adds_header_or_delimiter) {
  BOOST_TEST(framing_config{}.wire_size(10) == 10u);
  BOOST_TEST(length(8).wire_size(10) == 18u);
  BOOST_TEST(length(2, true, true, 100).wire_size(0) == 2u);
  BOOST_TEST(delimited("END").wire_size(10) == 13u);
  BOOST_TEST(exact(10).wire_size(10) == 10u);
  for (auto& cfg : {length(4), delimited("\r\n"), exact(5)})
    BOOST_TEST(cfg.wire_size(5) == encode(cfg, "abcde").size());
}

BOOST_AUTO_TEST_SUITE_END()
