// Aggregate rows encode and decode losslessly (and refuse what is not ours); the report XML
// escapes what it must and keeps enumerations inside the schema's; file names follow §7.2.1.1;
// gzip round-trips through zlib.
#include "milters/dmarc/report.h"

#include <gtest/gtest.h>
#include <zlib.h>

namespace mxguard::milter::dmarc {
namespace {

std::string gunzip(const std::string& gz) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  zs.avail_in = static_cast<uInt>(gz.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return out;
}

TEST(DmarcAggregateRow, RoundTrip) {
  Row r;
  r.source_ip = "2001:db8::1";
  r.disposition = "reject";
  r.dkim_eval = "fail";
  r.spf_eval = "pass";
  r.override_type = "sampled_out";
  r.header_from = "example.com";
  r.envelope_from = "bounce.example.com";
  r.dkim = {{"example.com", "pass", "s1"}, {"other.example", "fail", "x"}};
  r.spf = {"bounce.example.com", "pass", ""};
  r.spf_scope = "mfrom";
  EXPECT_EQ(decode_row(encode_row(r)), r);
  Row nasty = r;
  nasty.header_from = "a\tb/c,d\n";
  Row back = decode_row(encode_row(nasty));
  EXPECT_EQ(back.header_from, "a?b?c?d?");
  EXPECT_THROW(decode_row("garbage"), std::invalid_argument);
  EXPECT_THROW(decode_row("2\ta\tb"), std::invalid_argument);

  // A row without an override comment stays version 1 (hosts not yet upgraded read it); one
  // with a comment is version 2 with one more field, and round-trips.
  EXPECT_EQ(encode_row(r).substr(0, 2), "1\t");
  Row arc = r;
  arc.override_type = "local_policy";
  arc.override_comment = "arc=pass as[2].d=lists.example as[2].s=s2 as[1].d=example.com";
  EXPECT_EQ(encode_row(arc).substr(0, 2), "2\t");
  EXPECT_EQ(decode_row(encode_row(arc)), arc);
  std::string v1_with_extra = encode_row(r) + "\textra";
  EXPECT_THROW(decode_row(v1_with_extra), std::invalid_argument);
}

TEST(DmarcReport, XmlAndNames) {
  ReporterInfo info{"Example <Org> & Co", "noreply@receiver.example", "", "receiver.example"};
  PeriodData d;
  d.period = {"example.com", 1700000000, 1700086400};
  d.published = {"example.com", "s", "r", "reject", "quarantine", "0", 50, "mailto:a@example.com"};
  Row r;
  r.source_ip = "198.51.100.7";
  r.disposition = "bogus";
  r.header_from = "example.com";
  r.dkim = {{"example.com", "weird", "sel"}};
  r.spf = {"example.com", "softfail", ""};
  d.rows = {{r, 42}};
  std::string xml = report_xml(info, d);
  EXPECT_NE(xml.find("<org_name>Example &lt;Org&gt; &amp; Co</org_name>"), std::string::npos);
  EXPECT_NE(xml.find("<count>42</count>"), std::string::npos);
  EXPECT_NE(xml.find("<disposition>none</disposition>"), std::string::npos);  // kept in enum
  EXPECT_NE(xml.find("<result>neutral</result>"), std::string::npos);
  EXPECT_NE(xml.find("<end>1700086399</end>"), std::string::npos);
  EXPECT_NE(xml.find("<pct>50</pct>"), std::string::npos);
  EXPECT_EQ(xml.find("<comment>"), std::string::npos);  // no override, no reason

  // A trusted ARC chain: reason local_policy with the chain as comment (RFC 8617 §7.2.2).
  d.rows[0].first.override_type = "local_policy";
  d.rows[0].first.override_comment = "arc=pass as[1].d=lists.example as[1].s=s1";
  std::string arc_xml = report_xml(info, d);
  EXPECT_NE(arc_xml.find("<reason>\n          <type>local_policy</type>\n          "
                         "<comment>arc=pass as[1].d=lists.example as[1].s=s1</comment>\n"
                         "        </reason>"),
            std::string::npos)
      << arc_xml;
  EXPECT_EQ(report_filename(info, d.period),
            "receiver.example!example.com!1700000000!1700086399!1700000000.xml.gz");
  EXPECT_EQ(gunzip(gzip(xml)), xml);
  std::string msg = report_message(info, d.period, "a@example.com", gzip(xml), 1700090000);
  EXPECT_NE(msg.find("Subject: Report Domain: example.com Submitter: receiver.example "
                     "Report-ID: <example.com.1700000000@receiver.example>"),
            std::string::npos);
  EXPECT_NE(msg.find("Content-Type: application/gzip"), std::string::npos);
}

}  // namespace
}  // namespace mxguard::milter::dmarc
