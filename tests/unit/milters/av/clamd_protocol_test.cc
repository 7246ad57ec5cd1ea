// Tests milters/av/clamd_protocol.cc: every reply form clamd sends to zINSTREAM (and some it
// never should), and the chunk framing.
#include "milters/av/clamd_protocol.h"

#include <gtest/gtest.h>

namespace mxguard::milter::av {
namespace {

using Kind = ClamdReply::Kind;

TEST(AvClamdReply, OkIsClean) {
  EXPECT_EQ(parse_instream_reply("stream: OK").kind, Kind::kClean);
  EXPECT_EQ(parse_instream_reply(std::string_view("stream: OK\0", 11)).kind, Kind::kClean);
  EXPECT_EQ(parse_instream_reply("stream: OK\n").kind, Kind::kClean);
}

TEST(AvClamdReply, FoundIsInfectedWithTheName) {
  auto r = parse_instream_reply("stream: Win.Test.EICAR_HDB-1 FOUND");
  EXPECT_EQ(r.kind, Kind::kInfected);
  EXPECT_EQ(r.virus, "Win.Test.EICAR_HDB-1");
  r = parse_instream_reply(std::string_view("stream: Mxguard.Test.EICAR.UNOFFICIAL FOUND\0", 45));
  EXPECT_EQ(r.kind, Kind::kInfected);
  EXPECT_EQ(r.virus, "Mxguard.Test.EICAR.UNOFFICIAL");
}

TEST(AvClamdReply, StreamSizeLimitIsItsOwnKind) {
  auto r = parse_instream_reply("INSTREAM size limit exceeded. ERROR");
  EXPECT_EQ(r.kind, Kind::kSizeLimit);
  EXPECT_EQ(r.detail, "INSTREAM size limit exceeded. ERROR");
  EXPECT_EQ(
      parse_instream_reply(std::string_view("INSTREAM size limit exceeded. ERROR\0", 36)).kind,
      Kind::kSizeLimit);
  // Only clamd's whole phrase, ending in ERROR.
  EXPECT_EQ(parse_instream_reply("INSTREAM size limit exceeded").kind, Kind::kError);
  EXPECT_EQ(parse_instream_reply("stream: INSTREAM size limit exceeded FOUND").kind,
            Kind::kError);  // a "virus name" with spaces: malformed
}

TEST(AvClamdReply, ErrorsAreErrors) {
  EXPECT_EQ(parse_instream_reply("stream: Can't allocate memory ERROR").kind, Kind::kError);
  EXPECT_EQ(parse_instream_reply("stream: lstat() failed: No such file. ERROR").kind, Kind::kError);
  EXPECT_EQ(parse_instream_reply("UNKNOWN COMMAND").kind, Kind::kError);
  EXPECT_EQ(parse_instream_reply("ERROR").kind, Kind::kError);
}

TEST(AvClamdReply, AnythingUnexpectedIsAnErrorNeverClean) {
  for (std::string_view s :
       {std::string_view(""), std::string_view("\0", 1), std::string_view("OK"),
        std::string_view("stream: ok"), std::string_view("stream: OK "),
        std::string_view(" stream: OK"), std::string_view("stream: OK trailing"),
        std::string_view("stream:OK"), std::string_view("stream: FOUND"),
        std::string_view("stream:  FOUND"), std::string_view("stream: two words FOUND"),
        std::string_view("stream: Bad\x01Name FOUND"), std::string_view("PONG"),
        std::string_view("stream: OK\0stream: X FOUND", 26), std::string_view("1: stream: OK"),
        std::string_view("garbage\xff\xfe")}) {
    auto r = parse_instream_reply(s);
    EXPECT_EQ(r.kind, Kind::kError) << "reply: " << escape_for_log(s);
    EXPECT_FALSE(r.detail.empty());
  }
}

TEST(AvClamdReply, OverlongVirusNameIsAnError) {
  std::string name(kMaxVirusName + 1, 'A');
  EXPECT_EQ(parse_instream_reply("stream: " + name + " FOUND").kind, Kind::kError);
  name.pop_back();
  EXPECT_EQ(parse_instream_reply("stream: " + name + " FOUND").kind, Kind::kInfected);
}

TEST(AvClamdReply, DetailIsEscapedForLogs) {
  auto r = parse_instream_reply("junk\x1b[31m\r\nmore");
  EXPECT_EQ(r.detail.find('\x1b'), std::string::npos);
  EXPECT_NE(r.detail.find("\\x1b"), std::string::npos);
}

TEST(AvClamdReply, Pong) {
  EXPECT_TRUE(is_pong("PONG"));
  EXPECT_TRUE(is_pong(std::string_view("PONG\0", 5)));
  EXPECT_TRUE(is_pong("PONG\n"));
  EXPECT_FALSE(is_pong("PONGX"));
  EXPECT_FALSE(is_pong(""));
}

TEST(AvChunkFraming, LengthIsFourBytesNetworkOrder) {
  EXPECT_EQ(chunk_header(0), std::string("\0\0\0\0", 4));
  EXPECT_EQ(chunk_header(1), std::string("\0\0\0\1", 4));
  EXPECT_EQ(chunk_header(65536), std::string("\0\1\0\0", 4));
  EXPECT_EQ(chunk_header(0x01020304), std::string("\1\2\3\4", 4));
  EXPECT_EQ(chunk_header(0xffffffffu), std::string("\xff\xff\xff\xff", 4));
  EXPECT_EQ(frame_chunk("abc"), std::string("\0\0\0\3abc", 7));
  EXPECT_EQ(kInstreamCommand, std::string_view("zINSTREAM\0", 10));
  EXPECT_EQ(kStreamTerminator.size(), 4u);
}

}  // namespace
}  // namespace mxguard::milter::av
