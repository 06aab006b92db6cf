// Strict JSON field readers (json_fields.h).
#include "vhost-backend/control/json_fields.h"

#include <cerrno>
#include <fstream>

namespace viopool::control {

using nlohmann::json;

Result<json> load_json_file(const std::string& path, std::string& why) {
  std::ifstream in(path);
  if (!in) {
    why = path + ": cannot open";
    return fail(Errc::kNotFound, "config: cannot open file", errno);
  }
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded()) {
    why = path + ": not valid JSON";
    return fail(Errc::kInvalidArgument, "config: invalid JSON");
  }
  return j;
}

Result<void> reject_unknown(const json& j, std::initializer_list<const char*> known,
                            const std::string& where, std::string& why) {
  if (!j.is_object()) {
    why = (where.empty() ? std::string("config") : where) + ": expected an object";
    return fail(Errc::kInvalidArgument, "config: expected object");
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) {
      if (it.key() == k) {
        ok = true;
        break;
      }
    }
    if (!ok) {
      why = (where.empty() ? std::string() : where + ": ") + "unknown key '" + it.key() + "'";
      return fail(Errc::kInvalidArgument, "config: unknown key");
    }
  }
  return {};
}

std::string path_of(const std::string& where, const char* key) {
  return where.empty() ? std::string(key) : where + "." + key;
}

Result<std::string> get_string(const json& j, const char* key, const std::string& where,
                               std::string& why, bool required, std::string fallback) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) {
      why = path_of(where, key) + ": missing";
      return fail(Errc::kInvalidArgument, "config: missing key");
    }
    return fallback;
  }
  if (!it->is_string()) {
    why = path_of(where, key) + ": expected a string";
    return fail(Errc::kInvalidArgument, "config: expected string");
  }
  return it->get<std::string>();
}

Result<std::int64_t> get_int(const json& j, const char* key, const std::string& where,
                             std::string& why, std::int64_t fallback, std::int64_t lo,
                             std::int64_t hi) {
  auto it = j.find(key);
  if (it == j.end()) {
    return fallback;
  }
  if (!it->is_number_integer()) {
    why = path_of(where, key) + ": expected an integer";
    return fail(Errc::kInvalidArgument, "config: expected integer");
  }
  const auto v = it->get<std::int64_t>();
  if (v < lo || v > hi) {
    why = path_of(where, key) + ": " + std::to_string(v) + " is outside [" + std::to_string(lo) +
          ", " + std::to_string(hi) + "]";
    return fail(Errc::kOutOfRange, "config: value out of range");
  }
  return v;
}

Result<bool> get_bool(const json& j, const char* key, const std::string& where, std::string& why,
                      bool fallback) {
  auto it = j.find(key);
  if (it == j.end()) {
    return fallback;
  }
  if (!it->is_boolean()) {
    why = path_of(where, key) + ": expected true or false";
    return fail(Errc::kInvalidArgument, "config: expected boolean");
  }
  return it->get<bool>();
}

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 32) {
    return false;
  }
  for (char c : n) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

Result<std::uint64_t> get_size(const json& j, const char* key, const std::string& where,
                               std::string& why, std::uint64_t fallback) {
  auto it = j.find(key);
  if (it == j.end()) {
    return fallback;
  }
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0)) {
    return it->get<std::uint64_t>();
  }
  if (it->is_string()) {
    const std::string s = it->get<std::string>();
    std::size_t pos = 0;
    std::uint64_t v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      const std::uint64_t digit = static_cast<std::uint64_t>(s[pos] - '0');
      if (v > (UINT64_MAX - digit) / 10) {
        pos = std::string::npos;
        break;
      }
      v = v * 10 + digit;
      ++pos;
    }
    unsigned shift = 0;
    if (pos != std::string::npos && pos > 0 && pos + 1 == s.size()) {
      switch (s[pos]) {
        case 'K':
        case 'k':
          shift = 10;
          break;
        case 'M':
        case 'm':
          shift = 20;
          break;
        case 'G':
        case 'g':
          shift = 30;
          break;
        case 'T':
        case 't':
          shift = 40;
          break;
        default:
          pos = std::string::npos;
      }
      if (pos != std::string::npos) {
        ++pos;
      }
    }
    if (pos == s.size() && !s.empty() && (shift == 0 || v <= (UINT64_MAX >> shift))) {
      return v << shift;
    }
  }
  why = path_of(where, key) + ": expected a size in bytes (e.g. 1073741824 or \"1G\")";
  return fail(Errc::kInvalidArgument, "config: bad size");
}

Result<std::size_t> get_choice(const json& j, const char* key, const std::string& where,
                               std::string& why, std::initializer_list<const char*> choices,
                               std::size_t fallback) {
  auto it = j.find(key);
  if (it == j.end()) {
    return fallback;
  }
  std::string list;
  std::size_t i = 0;
  for (const char* c : choices) {
    if (it->is_string() && it->get<std::string>() == c) {
      return i;
    }
    list += (i++ == 0 ? "" : ", ") + std::string(c);
  }
  why = path_of(where, key) + ": one of " + list;
  return fail(Errc::kInvalidArgument, "config: not one of the choices");
}

Result<std::uint32_t> get_block_size(const json& j, const char* key, const std::string& where,
                                     std::string& why) {
  auto bs = get_int(j, key, where, why, 0, 0, 65536);
  VIOPOOL_TRY(bs);
  if (*bs != 0 && (*bs < 512 || (*bs & (*bs - 1)) != 0)) {
    why = path_of(where, key) + ": a power of two from 512 to 65536";
    return fail(Errc::kInvalidArgument, "config: bad block size");
  }
  return static_cast<std::uint32_t>(*bs);
}

}  // namespace viopool::control
