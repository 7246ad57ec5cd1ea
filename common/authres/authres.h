// RFC 8601 Authentication-Results: a builder for the one header each milter adds, and a
// tolerant parser for reading results (ours) and for recognising headers that claim our
// authserv-id so they can be removed before anything trusts them (RFC 8601 §5).
// Must never treat a header it cannot parse as one of ours: only exact authserv-id matches.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mxguard::common::authres {

struct Property {
  std::string type;   // "smtp", "header", "body", "policy" (lower case)
  std::string name;   // "mailfrom", "d", … (lower case)
  std::string value;  // as written, quotes removed
  friend bool operator==(const Property&, const Property&) = default;
};

struct Result {
  std::string method;          // "dkim", "spf", "dmarc" (lower case)
  std::string method_version;  // empty when absent
  std::string result;          // "pass", "fail", … (lower case)
  std::string reason;          // reason= value, empty when absent
  std::string comment;         // a comment right after the result, e.g. "(p=reject dis=none)"
  std::vector<Property> properties;

  // The value of ptype.property, or nullptr.
  const std::string* property(std::string_view type, std::string_view name) const;
  friend bool operator==(const Result&, const Result&) = default;
};

struct Header {
  std::string authserv_id;
  std::optional<int> version;
  std::vector<Result> results;  // empty for "; none"
};

// Parses a header value (the text after "Authentication-Results:"; a leading field name is
// also accepted). Returns nullopt on a syntax error; the error text goes to *error if given.
// Comments are dropped, except the first one after a result, kept as Result::comment.
// Lenient where real senders are: name=value items without a ptype are skipped.
std::optional<Header> parse(std::string_view value, std::string* error = nullptr);

// The authserv-id alone, read even when the rest does not parse (for removal decisions).
std::optional<std::string> authserv_id(std::string_view value);
// True when the header's authserv-id equals ours (case-insensitive, as domain names compare).
bool claims_authserv_id(std::string_view value, std::string_view ours);

// Builds a header value: "authserv-id; method=result (comment) reason=… ptype.prop=value; …".
class Builder {
 public:
  explicit Builder(std::string authserv_id) : authserv_id_(std::move(authserv_id)) {}
  Builder& add(Result r);
  bool empty() const { return results_.empty(); }
  // With fold=true each result starts on its own continuation line ("\n\t"), which is how a
  // milter hands a folded header to Postfix.
  std::string value(bool fold = true) const;

 private:
  std::string authserv_id_;
  std::vector<Result> results_;
};

// Quotes a value when it is not a bare token or dot-atom/addr-spec (RFC 8601 "value"/pvalue).
std::string quote_if_needed(std::string_view v);

}  // namespace mxguard::common::authres
