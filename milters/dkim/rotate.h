// DKIM key rotation for KeyTable signing (`mxguard-keygen rotate`): a new key under the next
// selector, its record printed; signing switched to it only once DNS publishes that record
// (judged by key_record.h, the judge mxguard-dnscheck uses); mxguard-dkim reloaded; the old
// selector kept published for a grace period, then listed for removal until it is gone.
// The state is one line per rotation in KEYTABLE.rotation, readable and editable by people.
// Must never leave the KeyTable pointing at a missing or unloadable key (every new table is
// loaded in full before it replaces the old one, by rename), never switch to a selector DNS does
// not publish, and never delete a key.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "milters/dkim/key_record.h"

namespace mxguard::milter::dkim {

struct KeygenOptions;

// One KeyTable line: "name domain:selector:/path/to/key".
struct KeyTableEntry {
  std::string name;
  std::string domain;  // as written ("%" stays "%")
  std::string selector;
  std::string path;
  int line = 0;
};
// Throws KeyError with "file:line: reason".
std::vector<KeyTableEntry> read_key_table(const std::string& path);

// `text` (a KeyTable) with the line of `key_name` pointing at `value` (domain:selector:path);
// every other line, comment and blank kept as it was. Throws KeyError if no line has that name.
std::string rewrite_key_table(std::string_view text, const std::string& key_name,
                              const std::string& value);

// One rotation in progress.
struct Rotation {
  enum class State {
    kPending,   // the new key exists; its record is not (yet) seen in DNS; signing unchanged
    kSwitched,  // signing with the new key; the old record stays published for the grace period
    kRetired,   // grace over: the old record is listed for removal until DNS no longer has it
  };
  std::string key_name;  // the KeyTable name being rotated
  State state = State::kPending;
  std::string domain;
  std::string old_selector, old_path;
  std::string new_selector, new_path;
  std::int64_t since = 0;  // when the rotation entered its state (Unix time, UTC)

  friend bool operator==(const Rotation&, const Rotation&) = default;
};
std::string_view state_name(Rotation::State s);  // "pending", "switched", "retired"

// The state file: "key=NAME state=… domain=… old=SEL old-key=PATH new=SEL new-key=PATH
// since=2026-12-20T10:00:00Z" per line, '#' comments. A missing file holds no rotation.
// Throws KeyError with "file:line: reason".
std::vector<Rotation> read_rotations(const std::string& path);
std::string format_rotations(const std::vector<Rotation>& rotations);
// Where a KeyTable's rotations are kept.
std::string rotation_state_path(const std::string& key_table);

// "2026-12-20T10:00:00Z" and back; parse_utc returns nullopt for anything else.
std::string format_utc(std::int64_t t);
std::optional<std::int64_t> parse_utc(std::string_view text);

// The selector after `current`: its trailing number plus one, same width or wider ("s2026" →
// "s2027", "k09" → "k10", "s99" → "s100"), or "2" appended when it ends in no digit.
std::string next_selector(std::string_view current);

// What one run does with a rotation. Pure: the glue looks up, decides with this, then acts.
enum class RotationAction {
  kWaitForRecord,   // pending, and the new record is missing or wrong: refuse to switch
  kSwitch,          // pending, and the new record matches: switch signing, reload
  kKeepOld,         // switched, grace not over: nothing to do yet
  kRetire,          // switched, grace over: list the old selector for removal
  kListForRemoval,  // retired, the old record is still published (or cannot be checked)
  kFinish,          // retired, the old record is gone: the rotation is over
};
// `check` is the judgement of the new selector (pending) or of the old one (retired); it is
// not used for a switched rotation.
RotationAction decide_rotation(const Rotation& r, std::int64_t now, std::chrono::seconds grace,
                               const KeyCheck& check);

// Writes `content` to `path` by rename of a temporary file in the same directory, with the
// mode and owner of the file it replaces (0644 for a new file, 0600 if `private_file`), fsynced.
// `check(temp_path)` runs before the rename and may throw to keep the old file.
void replace_file(const std::string& path, const std::string& content,
                  const std::function<void(const std::string&)>& check = {});

// Runs `mxguard-keygen rotate` (start or advance; with o.commit advance only). Returns the
// exit status: 0 done, 1 a switch refused (record not published) or a step failed, 64 usage,
// 78 configuration.
int run_rotate(const KeygenOptions& o, std::ostream& out, std::ostream& err);

}  // namespace mxguard::milter::dkim
