#include "common/config/config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/fixtures/process.h"

namespace mxguard::common::config {
namespace {

using namespace std::chrono_literals;

struct TestOptions {
  std::string name = "default";
  bool flag = false;
  unsigned count = 5;
  Duration delay{300s};
  Size size{Size{1024}};
  std::vector<std::string> networks{"127.0.0.0/8", "::1"};

  void bind(Binder& b) {
    b.add("name", name, "a name");
    b.add("flag", flag, "a flag");
    b.add("count", count, "a count");
    b.add("delay", delay, "a delay");
    b.add("size", size, "a size");
    b.add("networks", networks, "networks");
  }
  void validate() const {
    if (count > 100) throw OptionError("count", "must be at most 100");
  }
};

const ProgramInfo kInfo{"mxguard-test", "test program", "", ""};

Request parse_args(TestOptions& o, std::vector<std::string> args) {
  args.insert(args.begin(), "mxguard-test");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  Binder b;
  o.bind(b);
  return parse(kInfo, b, static_cast<int>(argv.size()), argv.data(), [&] { o.validate(); });
}

TEST(ConfigTest, DefaultsStayWithoutArguments) {
  TestOptions o;
  auto req = parse_args(o, {});
  EXPECT_EQ(req.action, Request::Action::kRun);
  EXPECT_EQ(o.name, "default");
  EXPECT_EQ(o.networks.size(), 2u);
}

TEST(ConfigTest, CommandLineSetsValues) {
  TestOptions o;
  parse_args(o, {"--name", "x", "--flag", "--count=7", "--delay", "5m", "--size", "2M",
                 "--networks", "10.0.0.0/8", "--networks", "192.168.0.0/16, ::1"});
  EXPECT_EQ(o.name, "x");
  EXPECT_TRUE(o.flag);
  EXPECT_EQ(o.count, 7u);
  EXPECT_EQ(o.delay.value, 5min);
  EXPECT_EQ(o.size.bytes, 2u * 1024 * 1024);
  EXPECT_EQ(o.networks, (std::vector<std::string>{"10.0.0.0/8", "192.168.0.0/16", "::1"}));
}

// A flag followed by an argument that is no yes/no word leaves it alone ("--json example.org");
// "--flag no" and "--flag=no" still set it.
TEST(ConfigTest, FlagsTakeOnlyYesNoWordsAsSeparateValues) {
  const ProgramInfo info{"mxguard-test", "test program", "", "[ARG...]"};
  auto run = [&](TestOptions& o, std::vector<std::string> args) {
    args.insert(args.begin(), "mxguard-test");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    Binder b;
    o.bind(b);
    return parse(info, b, static_cast<int>(argv.size()), argv.data(), [] {});
  };
  TestOptions o;
  auto req = run(o, {"--flag", "example.org", "--name", "x"});
  EXPECT_TRUE(o.flag);
  EXPECT_EQ(req.positional, std::vector<std::string>{"example.org"});
  TestOptions no;
  no.flag = true;
  req = run(no, {"--flag", "no", "example.org"});
  EXPECT_FALSE(no.flag);
  EXPECT_EQ(req.positional, std::vector<std::string>{"example.org"});
  TestOptions eq;
  run(eq, {"example.org", "--flag=yes"});
  EXPECT_TRUE(eq.flag);
  TestOptions dashes;
  req = run(dashes, {"--", "--flag"});
  EXPECT_FALSE(dashes.flag);
  EXPECT_EQ(req.positional, std::vector<std::string>{"--flag"});
}

TEST(ConfigTest, FileValuesAreOverriddenByCommandLine) {
  testing::TempDir dir;
  testing::write_file(dir / "t.conf",
                      "# comment\n\nname = from-file   # trailing comment\ncount = 9\n"
                      "networks = 10.1.0.0/16\nflag = yes\n");
  TestOptions o;
  auto req = parse_args(o, {"--config", (dir / "t.conf").string(), "--count", "3"});
  EXPECT_EQ(o.name, "from-file");
  EXPECT_EQ(o.count, 3u);
  EXPECT_TRUE(o.flag);
  EXPECT_EQ(o.networks, (std::vector<std::string>{"10.1.0.0/16"}));
  EXPECT_EQ(req.origin.at("name"), (dir / "t.conf").string() + ":3");
  EXPECT_EQ(req.origin.at("count"), "--count");
}

// Issue 16: FILE.d/*.conf drop-ins, in name order, on top of the file; the command line still
// wins; an error in a drop-in names the drop-in and its line.
TEST(ConfigTest, DropInsApplyInNameOrderOverTheFile) {
  testing::TempDir dir;
  testing::write_file(dir / "t.conf", "name = from-file\ncount = 9\nnetworks = 10.1.0.0/16\n");
  std::filesystem::create_directories(dir / "t.conf.d");
  testing::write_file(dir / "t.conf.d" / "20-late.conf", "count = 20\n");
  testing::write_file(dir / "t.conf.d" / "10-early.conf", "count = 10\nnetworks = 10.2.0.0/16\n");
  testing::write_file(dir / "t.conf.d" / "30-ignored.txt", "count = 99\n");
  testing::write_file(dir / "t.conf.d" / ".hidden.conf", "count = 98\n");
  TestOptions o;
  auto req = parse_args(o, {"--config", (dir / "t.conf").string(), "--flag"});
  EXPECT_EQ(o.name, "from-file");
  EXPECT_EQ(o.count, 20u);
  EXPECT_EQ(o.networks, (std::vector<std::string>{"10.2.0.0/16"}));
  EXPECT_EQ(req.origin.at("count"), (dir / "t.conf.d" / "20-late.conf").string() + ":1");
  TestOptions cli;
  parse_args(cli, {"--config", (dir / "t.conf").string(), "--count", "3"});
  EXPECT_EQ(cli.count, 3u);
  testing::write_file(dir / "t.conf.d" / "40-bad.conf", "\ndelay = 5 parsecs\n");
  TestOptions bad;
  try {
    parse_args(bad, {"--config", (dir / "t.conf").string()});
    FAIL() << "no error";
  } catch (const ConfigError& ex) {
    EXPECT_EQ(std::string(ex.what()).rfind((dir / "t.conf.d" / "40-bad.conf").string() + ":2:", 0),
              0u)
        << ex.what();
  }
}

TEST(ConfigTest, FileErrorsNameFileAndLine) {
  testing::TempDir dir;
  auto path = (dir / "bad.conf").string();
  testing::write_file(path, "name = ok\n\ndelay = 5 parsecs\n");
  TestOptions o;
  try {
    parse_args(o, {"-c", path});
    FAIL() << "no error";
  } catch (const ConfigError& ex) {
    EXPECT_EQ(std::string(ex.what()).rfind(path + ":3: delay: ", 0), 0u) << ex.what();
  }
}

TEST(ConfigTest, UnknownNamesAndMalformedLinesAreErrors) {
  testing::TempDir dir;
  testing::write_file(dir / "a.conf", "nmae = typo\n");
  testing::write_file(dir / "b.conf", "just words\n");
  TestOptions o;
  EXPECT_THROW(parse_args(o, {"-c", (dir / "a.conf").string()}), ConfigError);
  EXPECT_THROW(parse_args(o, {"-c", (dir / "b.conf").string()}), ConfigError);
  EXPECT_THROW(parse_args(o, {"-c", (dir / "missing.conf").string()}), ConfigError);
  EXPECT_THROW(parse_args(o, {"--nmae", "x"}), ConfigError);
  EXPECT_THROW(parse_args(o, {"--count", "many"}), ConfigError);
  EXPECT_THROW(parse_args(o, {"--na", "x"}), ConfigError);  // no prefix guessing
}

TEST(ConfigTest, ValidationErrorsNameTheOrigin) {
  testing::TempDir dir;
  auto path = (dir / "v.conf").string();
  testing::write_file(path, "\ncount = 500\n");
  TestOptions o;
  try {
    parse_args(o, {"-c", path});
    FAIL() << "no error";
  } catch (const ConfigError& ex) {
    EXPECT_EQ(std::string(ex.what()), path + ":2: count: must be at most 100");
  }
}

TEST(ConfigTest, ActionsAreRecognised) {
  TestOptions o;
  EXPECT_EQ(parse_args(o, {"--help"}).action, Request::Action::kHelp);
  EXPECT_EQ(parse_args(o, {"--version"}).action, Request::Action::kVersion);
  EXPECT_EQ(parse_args(o, {"--check-config"}).action, Request::Action::kCheckConfig);
  EXPECT_EQ(parse_args(o, {"--dump-config"}).action, Request::Action::kDumpConfig);
}

TEST(ConfigTest, DumpConfigRoundTrips) {
  TestOptions o;
  parse_args(o, {"--name", "has # hash", "--delay", "90s", "--networks", "a,b"});
  Binder b;
  o.bind(b);
  std::string dumped = dump_config(b);
  EXPECT_NE(dumped.find("delay = 90s\n"), std::string::npos) << dumped;
  testing::TempDir dir;
  testing::write_file(dir / "d.conf", dumped);
  TestOptions again;
  parse_args(again, {"-c", (dir / "d.conf").string()});
  EXPECT_EQ(again.name, "has # hash");
  EXPECT_EQ(again.delay, o.delay);
  EXPECT_EQ(again.networks, (std::vector<std::string>{"a", "b"}));
}

TEST(ConfigTest, HelpListsEveryOptionWithDefault) {
  TestOptions o;
  Binder b;
  o.bind(b);
  std::string help = help_text(kInfo, b);
  EXPECT_NE(help.find("--delay VALUE"), std::string::npos);
  EXPECT_NE(help.find("[default: 5m]"), std::string::npos);
  EXPECT_NE(help.find("--flag\n"), std::string::npos);
}

}  // namespace
}  // namespace mxguard::common::config
