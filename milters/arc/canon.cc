// Canonicalisation (see canon.h).
#include "milters/arc/canon.h"

#include <openssl/evp.h>

#include <stdexcept>

#include "common/util/strings.h"

namespace mxguard::milter::arc {
namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::string canon_header(Canon c, std::string_view name, std::string_view value) {
  std::string out;
  out.reserve(name.size() + value.size() + 4);
  if (c == Canon::kSimple) {
    out.append(name);
    out.push_back(':');
    for (std::size_t i = 0; i < value.size(); ++i) {
      char ch = value[i];
      if (ch == '\n' && (i == 0 || value[i - 1] != '\r')) out.push_back('\r');
      out.push_back(ch);
    }
    out += "\r\n";
    return out;
  }
  // Relaxed: lower-case name without trailing white space, then the unfolded value.
  std::string_view n = name;
  while (!n.empty() && is_wsp(n.back())) n.remove_suffix(1);
  out += common::util::lower(n);
  out.push_back(':');
  bool wsp = false;
  bool started = false;
  for (char ch : value) {
    if (ch == '\r' || ch == '\n') continue;  // unfold
    if (is_wsp(ch)) {
      wsp = true;
      continue;
    }
    if (wsp && started) out.push_back(' ');
    wsp = false;
    started = true;
    out.push_back(ch);
  }
  out += "\r\n";
  return out;
}

std::string strip_b_value(std::string_view value) {
  // Find a tag named exactly "b" at the start of a tag-spec: after the start or a ';', past
  // folding white space.
  std::size_t pos = 0;
  while (pos <= value.size()) {
    std::size_t start = pos;
    while (start < value.size() &&
           (is_wsp(value[start]) || value[start] == '\r' || value[start] == '\n'))
      ++start;
    std::size_t name_end = start;
    while (name_end < value.size() && value[name_end] != '=' && value[name_end] != ';') ++name_end;
    std::string_view name = value.substr(start, name_end - start);
    while (!name.empty() && (is_wsp(name.back()) || name.back() == '\r' || name.back() == '\n'))
      name.remove_suffix(1);
    std::size_t semi = value.find(';', name_end);
    if (name == "b" && name_end < value.size() && value[name_end] == '=') {
      std::string out(value.substr(0, name_end + 1));
      if (semi != std::string_view::npos) out.append(value.substr(semi));
      return out;
    }
    if (semi == std::string_view::npos) break;
    pos = semi + 1;
  }
  return std::string(value);
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(impl_->ctx);
    throw std::runtime_error("EVP_DigestInit_ex(sha256) failed");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::update(std::string_view data) {
  if (!data.empty()) EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

std::string Sha256::digest() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

void BodyHasher::emit(std::string_view s) {
  emitted_ += s.size();
  if (buf_len_ + s.size() > sizeof buf_) {
    hash_.update(std::string_view(buf_, buf_len_));
    buf_len_ = 0;
    if (s.size() > sizeof buf_) {
      hash_.update(s);
      return;
    }
  }
  std::copy(s.begin(), s.end(), buf_ + buf_len_);
  buf_len_ += s.size();
}

void BodyHasher::flush_pending() {
  for (; empty_lines_ > 0; --empty_lines_) emit("\r\n");
}

void BodyHasher::content(char c) {
  if (canon_ == Canon::kRelaxed && is_wsp(c)) {
    pending_wsp_ = true;
    return;
  }
  if (!line_has_content_) flush_pending();  // a non-empty line: the empty ones were inner
  if (pending_wsp_) emit(" ");
  pending_wsp_ = false;
  line_has_content_ = any_content_ = true;
  emit(std::string_view(&c, 1));
}

void BodyHasher::end_of_line() {
  pending_wsp_ = false;  // relaxed: trailing white space goes
  if (line_has_content_) {
    emit("\r\n");
  } else {
    ++empty_lines_;
  }
  line_has_content_ = false;
}

void BodyHasher::update(std::string_view chunk) {
  for (char c : chunk) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        end_of_line();
        continue;
      }
      content('\r');  // a CR on its own is data
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else if (c == '\n') {
      end_of_line();
    } else {
      content(c);
    }
  }
}

std::string BodyHasher::finish() {
  if (pending_cr_) {
    pending_cr_ = false;
    content('\r');
  }
  // An unterminated last line gets its CRLF (both algorithms); simple turns an empty body
  // into one CRLF, relaxed leaves it empty (RFC 6376 §3.4.3-4 with erratum 3192).
  if (line_has_content_) {
    emit("\r\n");
    line_has_content_ = false;
  } else if (pending_wsp_ && canon_ == Canon::kRelaxed) {
    pending_wsp_ = false;  // a last line of white space only is an empty line
  }
  if (canon_ == Canon::kSimple && !any_content_) emit("\r\n");
  hash_.update(std::string_view(buf_, buf_len_));
  buf_len_ = 0;
  return hash_.digest();
}

}  // namespace mxguard::milter::arc
