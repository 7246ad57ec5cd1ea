// Tests common/dns/wire.cc: rdata decoding (including malformed input) and PTR names.
#include "common/dns/wire.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <vector>

namespace mxguard::common::dns {
namespace {

using Buf = std::vector<std::uint8_t>;

// Wire form of a dotted name, for building test rdata.
Buf wire(const std::string& dotted) {
  Buf out;
  std::size_t start = 0;
  while (start < dotted.size()) {
    auto dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    out.push_back(static_cast<std::uint8_t>(dot - start));
    out.insert(out.end(), dotted.begin() + start, dotted.begin() + dot);
    start = dot + 1;
  }
  out.push_back(0);
  return out;
}

TEST(ReadNameTest, ReadsAndAdvances) {
  Buf data = wire("mx.example.com");
  data.push_back(0xAA);  // trailing byte that belongs to the next field
  std::size_t pos = 0;
  EXPECT_EQ(read_name(data, pos), "mx.example.com");
  EXPECT_EQ(pos, data.size() - 1);
}

TEST(ReadNameTest, RootName) {
  Buf data{0};
  std::size_t pos = 0;
  EXPECT_EQ(read_name(data, pos), ".");
  EXPECT_EQ(pos, 1u);
}

TEST(ReadNameTest, EscapesDotsBackslashesAndBinary) {
  Buf data{4, 'a', '.', '\\', 0x07, 3, 'c', 'o', 'm', 0};
  std::size_t pos = 0;
  EXPECT_EQ(read_name(data, pos), "a\\.\\\\\\007.com");
}

TEST(ReadNameTest, RejectsMalformedWithoutMovingPos) {
  std::vector<Buf> bad = {
      {},                  // empty
      {3, 'c', 'o', 'm'},  // no terminating root label
      {5, 'a', 'b'},       // label runs past the end
      {0xC0, 0x0C},        // compression pointer
      {0x40},              // reserved label type / label over 63
  };
  Buf long_label(1, 64);
  long_label.insert(long_label.end(), 64, 'x');
  long_label.push_back(0);
  bad.push_back(long_label);
  Buf long_name;  // 5 labels of 63 bytes: 320 bytes, over the 255-byte limit
  for (int i = 0; i < 5; ++i) {
    long_name.push_back(63);
    long_name.insert(long_name.end(), 63, 'y');
  }
  long_name.push_back(0);
  bad.push_back(long_name);
  for (const auto& data : bad) {
    std::size_t pos = 0;
    EXPECT_FALSE(read_name(data, pos).has_value()) << data.size();
    EXPECT_EQ(pos, 0u);
  }
}

TEST(RdataTest, Addresses) {
  EXPECT_EQ(parse_a(Buf{192, 0, 2, 1}), "192.0.2.1");
  EXPECT_FALSE(parse_a(Buf{192, 0, 2}));
  EXPECT_FALSE(parse_a(Buf{192, 0, 2, 1, 5}));
  Buf v6(16, 0);
  v6[0] = 0x20;
  v6[1] = 0x01;
  v6[2] = 0x0d;
  v6[3] = 0xb8;
  v6[15] = 1;
  EXPECT_EQ(parse_aaaa(v6), "2001:db8::1");
  v6.pop_back();
  EXPECT_FALSE(parse_aaaa(v6));
}

TEST(RdataTest, Mx) {
  Buf rdata{0, 10};
  auto name = wire("mx1.example.test");
  rdata.insert(rdata.end(), name.begin(), name.end());
  EXPECT_EQ(parse_mx(rdata), (MxRecord{10, "mx1.example.test"}));
  EXPECT_EQ(rdata_to_text(kTypeMx, rdata), "10 mx1.example.test");
  EXPECT_EQ(parse_mx(Buf{0, 0, 0}), (MxRecord{0, "."}));  // null MX
  EXPECT_FALSE(parse_mx(Buf{0, 10}));
  rdata.push_back(1);  // junk after the name
  EXPECT_FALSE(parse_mx(rdata));
  EXPECT_FALSE(rdata_to_text(kTypeMx, rdata));
}

TEST(RdataTest, TxtConcatenatesStringsBinarySafe) {
  Buf rdata{3, 'a', 'b', 'c', 0, 2, 0, 0xff};
  auto text = parse_txt(rdata);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, std::string("abc\0\xff", 5));
  Buf long_txt;
  for (char c : {'x', 'y'}) {
    long_txt.push_back(255);
    long_txt.insert(long_txt.end(), 255, static_cast<std::uint8_t>(c));
  }
  EXPECT_EQ(parse_txt(long_txt), std::string(255, 'x') + std::string(255, 'y'));
  EXPECT_EQ(parse_txt(Buf{0}), "");      // one empty string
  EXPECT_FALSE(parse_txt(Buf{}));        // no string at all
  EXPECT_FALSE(parse_txt(Buf{4, 'a'}));  // string runs past the end
}

TEST(RdataTest, NamesAndUnknownTypes) {
  EXPECT_EQ(rdata_to_text(kTypePtr, wire("host.example.test")), "host.example.test");
  EXPECT_FALSE(rdata_to_text(kTypePtr, Buf{3, 'a'}));
  EXPECT_EQ(rdata_to_text(99, Buf{0x0a, 0xff}), "\\# 2 0aff");
  EXPECT_EQ(rdata_to_text(99, Buf{}), "\\# 0");
  EXPECT_EQ(type_name(kTypeTxt), "TXT");
  EXPECT_EQ(type_name(99), "TYPE99");
}

TEST(PtrNameTest, Ipv4) {
  EXPECT_EQ(ptr_name("192.0.2.1"), "1.2.0.192.in-addr.arpa");
  EXPECT_EQ(ptr_name("10.0.0.255"), "255.0.0.10.in-addr.arpa");
}

TEST(PtrNameTest, Ipv6) {
  EXPECT_EQ(ptr_name("2001:db8::567:89ab"),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  EXPECT_EQ(ptr_name("::1"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}

TEST(PtrNameTest, RejectsNonAddresses) {
  for (const char* bad :
       {"", "host.example.com", "192.0.2", "192.0.2.1.5", "2001:db8::g", "192.0.2.1/24"}) {
    EXPECT_THROW(ptr_name(bad), std::invalid_argument) << bad;
  }
}

}  // namespace
}  // namespace mxguard::common::dns
