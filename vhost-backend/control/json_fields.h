// Strict JSON field readers shared by every config parser (viopool-host's
// devices, the appliance's volumes): each names the offending field in `why`
// ("devices[1].backend.kind: ...") and fails with kInvalidArgument or
// kOutOfRange; unknown keys are errors.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "vhost-backend/base/result.h"

namespace viopool::control {

// Reads a JSON file (comments allowed): kNotFound if it cannot be opened,
// kInvalidArgument if it is not JSON, with the path in `why`.
Result<nlohmann::json> load_json_file(const std::string& path, std::string& why);
// Fails if `j` is not an object or has a key outside `known`.
Result<void> reject_unknown(const nlohmann::json& j, std::initializer_list<const char*> known,
                            const std::string& where, std::string& why);
// "where.key", or "key" at the top level.
std::string path_of(const std::string& where, const char* key);
Result<std::string> get_string(const nlohmann::json& j, const char* key, const std::string& where,
                               std::string& why, bool required, std::string fallback = {});
// An integer in [lo, hi]; `fallback` when absent.
Result<std::int64_t> get_int(const nlohmann::json& j, const char* key, const std::string& where,
                             std::string& why, std::int64_t fallback, std::int64_t lo,
                             std::int64_t hi);
Result<bool> get_bool(const nlohmann::json& j, const char* key, const std::string& where,
                      std::string& why, bool fallback);
// One of `choices` (its index); `fallback` when absent.
Result<std::size_t> get_choice(const nlohmann::json& j, const char* key, const std::string& where,
                               std::string& why, std::initializer_list<const char*> choices,
                               std::size_t fallback);
// A logical block size: 0 (detect) or a power of two in [512, 65536].
Result<std::uint32_t> get_block_size(const nlohmann::json& j, const char* key,
                                     const std::string& where, std::string& why);
// 1 to 32 characters of [A-Za-z0-9_.-].
bool valid_name(const std::string& n);
// Byte sizes: an integer, or a string with an optional K/M/G/T suffix (powers of 1024).
Result<std::uint64_t> get_size(const nlohmann::json& j, const char* key, const std::string& where,
                               std::string& why, std::uint64_t fallback);

}  // namespace viopool::control
