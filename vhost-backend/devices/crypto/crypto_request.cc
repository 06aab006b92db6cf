// virtio-crypto request parsing and completion.
#include "vhost-backend/devices/crypto/crypto_request.h"

#include <algorithm>
#include <cstring>

#include "vhost-backend/virtio/chain_stream.h"

namespace viopool::crypto {
namespace {

using virtio::ChainStream;

// Copies out the readable key bytes of a create request.
bool read_key(ChainStream& in, std::uint32_t len, std::uint32_t max, std::uint8_t* dst) noexcept {
  return len <= max && in.copy_out(dst, len);
}

void invalid(CtrlCommand& out, std::uint8_t status, const char* why) noexcept {
  out.kind = CtrlKind::kInvalid;
  out.status = status;
  out.why = why;
}

bool valid_dir(std::uint32_t op) noexcept { return op == kDirEncrypt || op == kDirDecrypt; }

// Takes iovecs for the next n bytes of a stream into `out`. False on a bad
// address, a short stream or more than kMaxFieldSegs pieces.
bool take(ChainStream& s, std::uint32_t n, Iovs& out) noexcept {
  out.n = 0;
  out.bytes = n;
  bool too_many = false;
  bool too_big = false;
  return s.take_iov(n, out.v.data(), kMaxFieldSegs, out.n, 0, too_many, too_big);
}

// Keeps the first `len` bytes of `v`.
void trim(Iovs& v, std::uint32_t len) noexcept {
  std::uint32_t left = len;
  std::uint32_t i = 0;
  for (; i < v.n && left > 0; ++i) {
    if (v.v[i].iov_len > left) {
      v.v[i].iov_len = left;
    }
    left -= static_cast<std::uint32_t>(v.v[i].iov_len);
  }
  v.n = i;
  v.bytes = len;
}

// out = bytes [off, off + len) of `in`.
void slice(const Iovs& in, std::uint32_t off, std::uint32_t len, Iovs& out) noexcept {
  out.n = 0;
  out.bytes = len;
  for (std::uint32_t i = 0; i < in.n && len > 0; ++i) {
    const auto seg_len = static_cast<std::uint32_t>(in.v[i].iov_len);
    if (off >= seg_len) {
      off -= seg_len;
      continue;
    }
    const std::uint32_t take_len = std::min(seg_len - off, len);
    out.v[out.n++] = iovec{static_cast<std::byte*>(in.v[i].iov_base) + off, take_len};
    len -= take_len;
    off = 0;
  }
}

const std::optional<AlgoCaps>& caps_of(const std::array<std::optional<AlgoCaps>, 64>& table,
                                       std::uint32_t algo) noexcept {
  static const std::optional<AlgoCaps> kNone;
  return algo < table.size() ? table[algo] : kNone;
}

}  // namespace

const char* status_name(std::uint8_t s) noexcept {
  switch (s) {
    case kStatusOk:
      return "OK";
    case kStatusErr:
      return "ERR";
    case kStatusBadMsg:
      return "BADMSG";
    case kStatusNotSupp:
      return "NOTSUPP";
    case kStatusInvSess:
      return "INVSESS";
    case kStatusNoSpc:
      return "NOSPC";
    default:
      return "INVALID";
  }
}

std::uint32_t cipher_iv_len(std::uint32_t cipher_algo) noexcept {
  switch (cipher_algo) {
    case kCipherAesCbc:
    case kCipherAesCtr:
    case kCipherAesXts:
      return 16;
    default:
      return 0;
  }
}

std::uint32_t aead_iv_len(std::uint32_t aead_algo) noexcept {
  switch (aead_algo) {
    case kAeadGcm:
    case kAeadChacha20Poly1305:
      return 12;
    default:
      return 0;
  }
}

const char* to_string(SessionKind k) noexcept {
  switch (k) {
    case SessionKind::kCipher:
      return "cipher";
    case SessionKind::kHash:
      return "hash";
    case SessionKind::kMac:
      return "mac";
    case SessionKind::kChain:
      return "chain";
    case SessionKind::kAead:
      return "aead";
  }
  return "?";
}

const char* to_string(DataReject r) noexcept {
  switch (r) {
    case DataReject::kNone:
      return "none";
    case DataReject::kNoStatus:
      return "no_status";
    case DataReject::kBadChain:
      return "bad_chain";
    case DataReject::kBadHeader:
      return "bad_header";
    case DataReject::kBadLength:
      return "bad_length";
    case DataReject::kBadAddress:
      return "bad_address";
    case DataReject::kUnsupported:
      return "unsupported";
    case DataReject::kBadSession:
      return "bad_session";
  }
  return "?";
}

// ---- Control queue ------------------------------------------------------------

void parse_ctrl(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                CtrlCommand& out) noexcept {
  out = CtrlCommand{};
  out.answer_is_session_input = chain.writable_bytes() >= sizeof(SessionInput);
  if (!chain.ok()) {
    return invalid(out, kStatusBadMsg, "malformed chain");
  }
  ChainStream in(chain.readable(), mem);
  CtrlRequest r{};
  if (!in.copy_out(&r, sizeof(r))) {
    return invalid(out, kStatusBadMsg, "control request shorter than 72 bytes");
  }
  auto& p = out.params;
  switch (r.header.opcode) {
    case kOpCipherDestroySession:
    case kOpHashDestroySession:
    case kOpMacDestroySession:
    case kOpAeadDestroySession:
      out.kind = CtrlKind::kDestroy;
      out.session_id = r.u.destroy_session_id;
      out.answer_is_session_input = false;
      return;
    case kOpCipherCreateSession: {
      if (!out.answer_is_session_input) {
        return invalid(out, kStatusBadMsg, "no room for the session input");
      }
      const auto& sym = r.u.sym;
      if (sym.op_type == kSymOpCipher) {
        p.kind = SessionKind::kCipher;
        p.cipher_algo = sym.u.cipher.algo;
        if (!valid_dir(sym.u.cipher.op)) {
          return invalid(out, kStatusBadMsg, "cipher direction is neither encrypt nor decrypt");
        }
        p.encrypt = sym.u.cipher.op == kDirEncrypt;
        p.key_len = sym.u.cipher.keylen;
        if (!read_key(in, p.key_len, kMaxKeyBytes, p.key.data())) {
          return invalid(out, kStatusBadMsg, "cipher key too long or beyond the request");
        }
      } else if (sym.op_type == kSymOpChain) {
        const auto& c = sym.u.chain;
        p.kind = SessionKind::kChain;
        if (c.alg_chain_order != kChainCipherThenHash &&
            c.alg_chain_order != kChainHashThenCipher) {
          return invalid(out, kStatusBadMsg, "unknown chain order");
        }
        p.cipher_first = c.alg_chain_order == kChainCipherThenHash;
        p.cipher_algo = c.cipher.algo;
        if (!valid_dir(c.cipher.op)) {
          return invalid(out, kStatusBadMsg, "cipher direction is neither encrypt nor decrypt");
        }
        p.encrypt = c.cipher.op == kDirEncrypt;
        p.key_len = c.cipher.keylen;
        p.aad_len = c.aad_len;
        if (c.hash_mode == kHashModePlain) {
          p.auth_algo = c.u.hash.algo;
          p.digest_len = c.u.hash.hash_result_len;
        } else if (c.hash_mode == kHashModeAuth) {
          p.auth_is_mac = true;
          p.auth_algo = c.u.mac.algo;
          p.digest_len = c.u.mac.hash_result_len;
          p.auth_key_len = c.u.mac.auth_key_len;
        } else {
          return invalid(out, kStatusNotSupp, "nested hash mode is not supported");
        }
        if (!read_key(in, p.key_len, kMaxKeyBytes, p.key.data()) ||
            !read_key(in, p.auth_key_len, kMaxAuthKeyBytes, p.auth_key.data())) {
          return invalid(out, kStatusBadMsg, "key too long or beyond the request");
        }
      } else {
        return invalid(out, kStatusNotSupp, "unknown symmetric op type");
      }
      p.iv_len = cipher_iv_len(p.cipher_algo);
      out.kind = CtrlKind::kCreate;
      return;
    }
    case kOpHashCreateSession:
      if (!out.answer_is_session_input) {
        return invalid(out, kStatusBadMsg, "no room for the session input");
      }
      p.kind = SessionKind::kHash;
      p.auth_algo = r.u.hash.algo;
      p.digest_len = r.u.hash.hash_result_len;
      out.kind = CtrlKind::kCreate;
      return;
    case kOpMacCreateSession:
      if (!out.answer_is_session_input) {
        return invalid(out, kStatusBadMsg, "no room for the session input");
      }
      p.kind = SessionKind::kMac;
      p.auth_is_mac = true;
      p.auth_algo = r.u.mac.algo;
      p.digest_len = r.u.mac.hash_result_len;
      p.auth_key_len = r.u.mac.auth_key_len;
      if (!read_key(in, p.auth_key_len, kMaxAuthKeyBytes, p.auth_key.data())) {
        return invalid(out, kStatusBadMsg, "MAC key too long or beyond the request");
      }
      out.kind = CtrlKind::kCreate;
      return;
    case kOpAeadCreateSession:
      if (!out.answer_is_session_input) {
        return invalid(out, kStatusBadMsg, "no room for the session input");
      }
      p.kind = SessionKind::kAead;
      p.aead_algo = r.u.aead.algo;
      p.key_len = r.u.aead.key_len;
      p.digest_len = r.u.aead.hash_result_len;
      p.aad_len = r.u.aead.aad_len;
      if (!valid_dir(r.u.aead.op)) {
        return invalid(out, kStatusBadMsg, "AEAD direction is neither encrypt nor decrypt");
      }
      p.encrypt = r.u.aead.op == kDirEncrypt;
      if (!read_key(in, p.key_len, kMaxKeyBytes, p.key.data())) {
        return invalid(out, kStatusBadMsg, "AEAD key too long or beyond the request");
      }
      p.iv_len = aead_iv_len(p.aead_algo);
      out.kind = CtrlKind::kCreate;
      return;
    default:
      return invalid(out, kStatusNotSupp, "unknown control opcode");
  }
}

std::uint8_t validate_session(const SessionParams& p, const CryptoCapabilities& caps,
                              const char*& why) noexcept {
  const bool has_cipher = p.kind == SessionKind::kCipher || p.kind == SessionKind::kChain;
  const bool has_auth =
      p.kind == SessionKind::kHash || p.kind == SessionKind::kMac || p.kind == SessionKind::kChain;
  if (has_cipher) {
    const auto& c = caps_of(caps.cipher, p.cipher_algo);
    if (!c) {
      why = "cipher algorithm not supported by the engine";
      return kStatusNotSupp;
    }
    if (!c->key.contains(p.key_len)) {
      why = "cipher key size not accepted by the engine";
      return kStatusBadMsg;
    }
    if (!c->iv.contains(p.iv_len)) {
      why = "the engine does not take the algorithm's IV length";
      return kStatusNotSupp;
    }
  }
  if (has_auth) {
    if (p.kind == SessionKind::kMac && !p.auth_is_mac) {
      why = "MAC session without a MAC algorithm";
      return kStatusBadMsg;
    }
    const auto& a = caps_of(p.auth_is_mac ? caps.mac : caps.hash, p.auth_algo);
    if (!a) {
      why = p.auth_is_mac ? "MAC algorithm not supported by the engine"
                          : "hash algorithm not supported by the engine";
      return kStatusNotSupp;
    }
    if (p.digest_len == 0 || p.digest_len > kMaxDigestBytes || !a->digest.contains(p.digest_len)) {
      why = "hash result length not accepted by the engine";
      return kStatusBadMsg;
    }
    if (p.auth_is_mac && (p.auth_key_len == 0 || !a->key.contains(p.auth_key_len))) {
      why = "MAC key size not accepted by the engine";
      return kStatusBadMsg;
    }
  }
  if (p.kind == SessionKind::kChain && p.aad_len != 0) {
    why = "additional data in algorithm chaining is not supported";
    return kStatusNotSupp;
  }
  if (p.kind == SessionKind::kAead) {
    const auto& a = caps_of(caps.aead, p.aead_algo);
    if (!a) {
      why = "AEAD algorithm not supported by the engine";
      return kStatusNotSupp;
    }
    if (!a->key.contains(p.key_len)) {
      why = "AEAD key size not accepted by the engine";
      return kStatusBadMsg;
    }
    if (p.digest_len == 0 || p.digest_len > kMaxDigestBytes || !a->digest.contains(p.digest_len)) {
      why = "AEAD tag length not accepted by the engine";
      return kStatusBadMsg;
    }
    if (!a->iv.contains(p.iv_len)) {
      why = "the engine does not take the algorithm's IV length";
      return kStatusNotSupp;
    }
    if (p.aad_len > kMaxAadBytes || !a->aad.contains(p.aad_len)) {
      why = "AEAD additional data length not accepted by the engine";
      return kStatusBadMsg;
    }
  }
  return kStatusOk;
}

std::uint32_t complete_ctrl(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                            const CtrlCommand& cmd, std::uint8_t status,
                            std::uint64_t session_id) noexcept {
  ChainStream out(chain.writable(), mem);
  if (cmd.answer_is_session_input) {
    const SessionInput in{status == kStatusOk ? session_id : 0, status, 0};
    return out.copy_in(&in, sizeof(in)) ? static_cast<std::uint32_t>(sizeof(in)) : 0;
  }
  return out.copy_in(&status, 1) ? 1 : 0;
}

// ---- vhost-user session messages ----------------------------------------------

std::uint8_t parse_vhost_user_session(const std::uint8_t* payload, std::size_t size,
                                      SessionParams& p, const char*& why) noexcept {
  if (size < kVhostSessionBytes) {
    why = "session message shorter than 632 bytes";
    return kStatusBadMsg;
  }
  auto u32 = [&](std::size_t off) {
    std::uint32_t v;
    std::memcpy(&v, payload + off, sizeof(v));
    return v;
  };
  // QEMU 7.1+: op_type at 32 (1 or 2) and padding at 36. Older layout: aad_len
  // (normally 0) at 32 and op_type at 36.
  const bool old_layout = (payload[36] == kSymOpCipher || payload[36] == kSymOpChain) &&
                          !(payload[32] == kSymOpCipher || payload[32] == kSymOpChain);
  const std::size_t b = old_layout ? 12 : 8;  // offset of cipher_alg
  const std::uint32_t cipher_alg = u32(b);
  const std::uint32_t key_len = u32(b + 4);
  const std::uint32_t hash_alg = u32(b + 8);
  const std::uint32_t hash_result_len = u32(b + 12);
  const std::uint32_t auth_key_len = u32(b + 16);
  const std::uint32_t aad_len = u32(b + 20);
  const std::uint8_t op_type = payload[b + 24];
  const std::uint8_t direction = payload[b + 25];
  const std::uint8_t hash_mode = payload[b + 26];
  const std::uint8_t chain_order = payload[b + 27];

  p = SessionParams{};
  if (op_type != kSymOpCipher && op_type != kSymOpChain) {
    why = "unknown symmetric op type";
    return kStatusNotSupp;
  }
  if (direction != kDirEncrypt && direction != kDirDecrypt) {
    why = "cipher direction is neither encrypt nor decrypt";
    return kStatusBadMsg;
  }
  if (key_len > kMaxKeyBytes) {
    why = "cipher key too long";
    return kStatusBadMsg;
  }
  p.cipher_algo = cipher_alg;
  p.encrypt = direction == kDirEncrypt;
  p.key_len = key_len;
  std::memcpy(p.key.data(), payload + kVhostSessionCipherKeyOffset, key_len);
  p.iv_len = cipher_iv_len(cipher_alg);
  if (op_type == kSymOpCipher) {
    p.kind = SessionKind::kCipher;
    return kStatusOk;
  }
  p.kind = SessionKind::kChain;
  if (chain_order != kChainCipherThenHash && chain_order != kChainHashThenCipher) {
    why = "unknown chain order";
    return kStatusBadMsg;
  }
  p.cipher_first = chain_order == kChainCipherThenHash;
  p.auth_algo = hash_alg;
  p.digest_len = hash_result_len;
  p.aad_len = aad_len;
  if (hash_mode == kHashModeAuth) {
    p.auth_is_mac = true;
    if (auth_key_len > kMaxAuthKeyBytes) {
      why = "auth key too long";
      return kStatusBadMsg;
    }
    p.auth_key_len = auth_key_len;
    std::memcpy(p.auth_key.data(), payload + kVhostSessionAuthKeyOffset, auth_key_len);
  } else if (hash_mode != kHashModePlain) {
    why = "nested hash mode is not supported";
    return kStatusNotSupp;
  }
  return kStatusOk;
}

// ---- Data queues --------------------------------------------------------------

namespace {

void reject(CryptoRequest& req, DataReject why, std::uint8_t status) noexcept {
  req.needs_op = false;
  req.reject = why;
  req.immediate_status = status;
}

// Points req.status at writable byte `at` (or the last writable byte when the
// chain is shorter) and sets used_len.
void locate_status(const virtio::DescChain& chain, const virtio::GuestMemory& mem, std::uint64_t at,
                   CryptoRequest& req) noexcept {
  const std::uint64_t w = chain.writable_bytes();
  if (w == 0) {
    return;
  }
  at = std::min(at, w - 1);
  ChainStream s(chain.writable(), mem);
  if (!s.skip(at)) {
    return;
  }
  iovec v{};
  std::uint32_t n = 0;
  bool too_many = false;
  bool too_big = false;
  if (s.take_iov(1, &v, 1, n, 0, too_many, too_big) && n == 1) {
    req.status = static_cast<std::byte*>(v.iov_base);
    req.used_len = static_cast<std::uint32_t>(at + 1);
  }
}

}  // namespace

void parse_data(const virtio::DescChain& chain, const virtio::GuestMemory& mem,
                CryptoRequest& req) noexcept {
  req.status = nullptr;
  req.used_len = 0;
  req.needs_op = false;
  req.reject = DataReject::kNone;
  req.immediate_status = kStatusOk;
  req.session_ref = nullptr;
  req.head = chain.id();
  req.desc_count = chain.desc_count();
  req.src_len = req.dst_len = req.aad_len = req.hash_len = 0;
  // The job is reset field by field: zeroing its iovec arrays (1 KiB) per
  // request would cost more than parsing it.
  auto& job = req.job;
  job.session = nullptr;
  job.iv_len = 0;
  job.src.n = job.dst.n = job.aad.n = job.digest.n = 0;
  job.src.bytes = job.dst.bytes = job.aad.bytes = job.digest.bytes = 0;
  job.cipher_offset = job.cipher_len = job.auth_offset = job.auth_len = job.data_len = 0;
  job.cookie = &req;

  // The status is the last writable byte: Linux's driver hands over its
  // whole dst scatterlist, which may be longer than dst_data_len, and QEMU's
  // device takes the status from the end as well.
  locate_status(chain, mem, chain.writable_bytes(), req);
  auto early_reject = [&](DataReject why, std::uint8_t status) {
    reject(req, req.status ? why : DataReject::kNoStatus, status);
  };
  if (!chain.ok()) {
    return early_reject(DataReject::kBadChain, kStatusBadMsg);
  }
  ChainStream in(chain.readable(), mem);
  DataRequest r{};
  if (!in.copy_out(&r, sizeof(r))) {
    return early_reject(DataReject::kBadHeader, kStatusBadMsg);
  }
  req.opcode = r.header.opcode;
  req.session_id = r.header.session_id;
  std::uint32_t iv_len = 0;
  switch (r.header.opcode) {
    case kOpCipherEncrypt:
    case kOpCipherDecrypt:
      req.encrypt = r.header.opcode == kOpCipherEncrypt;
      if (r.u.sym.op_type == kSymOpCipher) {
        req.kind = SessionKind::kCipher;
        iv_len = r.u.sym.u.cipher.iv_len;
        req.src_len = r.u.sym.u.cipher.src_data_len;
        req.dst_len = r.u.sym.u.cipher.dst_data_len;
      } else if (r.u.sym.op_type == kSymOpChain) {
        const auto& c = r.u.sym.u.chain;
        req.kind = SessionKind::kChain;
        iv_len = c.iv_len;
        req.src_len = c.src_data_len;
        req.dst_len = c.dst_data_len;
        req.aad_len = c.aad_len;
        req.hash_len = c.hash_result_len;
        job.cipher_offset = c.cipher_start_src_offset;
        job.cipher_len = c.len_to_cipher;
        job.auth_offset = c.hash_start_src_offset;
        job.auth_len = c.len_to_hash;
      } else {
        return early_reject(DataReject::kUnsupported, kStatusNotSupp);
      }
      break;
    case kOpHash:
    case kOpMac:
      req.kind = r.header.opcode == kOpHash ? SessionKind::kHash : SessionKind::kMac;
      req.src_len = r.u.hash.src_data_len;
      req.hash_len = r.u.hash.hash_result_len;
      break;
    case kOpAeadEncrypt:
    case kOpAeadDecrypt:
      req.kind = SessionKind::kAead;
      req.encrypt = r.header.opcode == kOpAeadEncrypt;
      iv_len = r.u.aead.iv_len;
      req.aad_len = r.u.aead.aad_len;
      req.src_len = r.u.aead.src_data_len;
      req.dst_len = r.u.aead.dst_data_len;
      break;
    default:
      return early_reject(DataReject::kUnsupported, kStatusNotSupp);
  }
  // dst and hash_result come first in the writable part, the status last.
  const std::uint64_t status_at = std::uint64_t{req.dst_len} + req.hash_len;
  if (req.status == nullptr) {
    return reject(req, DataReject::kNoStatus, kStatusBadMsg);
  }
  if (iv_len > kMaxIvBytes || req.src_len > kMaxRequestBytes ||
      req.dst_len > kMaxRequestBytes + kMaxDigestBytes || req.aad_len > kMaxAadBytes ||
      req.hash_len > kMaxDigestBytes || chain.writable_bytes() < status_at + 1) {
    return reject(req, DataReject::kBadLength, kStatusBadMsg);
  }
  // Readable: iv, src, aad (hash / MAC: src only).
  job.iv_len = iv_len;
  if (!in.copy_out(job.iv.data(), iv_len) || !take(in, req.src_len, job.src) ||
      !take(in, req.aad_len, job.aad)) {
    return reject(req, DataReject::kBadLength, kStatusBadMsg);
  }
  // Writable: dst, hash_result.
  ChainStream out(chain.writable(), mem);
  if (!take(out, req.dst_len, job.dst) || !take(out, req.hash_len, job.digest)) {
    return reject(req, DataReject::kBadAddress, kStatusBadMsg);
  }
  req.needs_op = true;
}

std::uint8_t bind_session(CryptoRequest& req, const SessionInfo& s, const CryptoCapabilities& caps,
                          const char*& why) noexcept {
  const auto& p = s.params;
  auto& job = req.job;
  if (p.kind != req.kind) {
    why = "session is of another kind";
    return kStatusInvSess;
  }
  if ((req.kind == SessionKind::kCipher || req.kind == SessionKind::kChain ||
       req.kind == SessionKind::kAead) &&
      p.encrypt != req.encrypt) {
    why = "request direction differs from the session's";
    return kStatusBadMsg;
  }
  job.session = s.backend;
  job.kind = req.kind;
  job.encrypt = req.encrypt;
  const std::optional<AlgoCaps>* c = nullptr;
  switch (req.kind) {
    case SessionKind::kCipher:
      c = &caps_of(caps.cipher, p.cipher_algo);
      if (req.dst_len < req.src_len) {
        why = "dst shorter than src";
        return kStatusBadMsg;
      }
      job.data_len = job.cipher_len = req.src_len;
      job.cipher_offset = 0;
      trim(job.dst, req.src_len);
      break;
    case SessionKind::kHash:
    case SessionKind::kMac:
      if (req.hash_len != p.digest_len) {
        why = "hash result length differs from the session's";
        return kStatusBadMsg;
      }
      job.data_len = job.auth_len = req.src_len;
      job.auth_offset = 0;
      break;
    case SessionKind::kChain:
      c = &caps_of(caps.cipher, p.cipher_algo);
      if (req.hash_len != p.digest_len) {
        why = "hash result length differs from the session's";
        return kStatusBadMsg;
      }
      if (req.dst_len < req.src_len || req.aad_len != 0 ||
          std::uint64_t{job.cipher_offset} + job.cipher_len > req.src_len ||
          std::uint64_t{job.auth_offset} + job.auth_len > req.src_len) {
        why = "chain offsets or lengths outside the data";
        return kStatusBadMsg;
      }
      job.data_len = req.src_len;
      trim(job.dst, req.src_len);
      break;
    case SessionKind::kAead: {
      c = &caps_of(caps.aead, p.aead_algo);
      // Engines read as many AAD bytes as the session was created with,
      // whatever the op says: a request with less would have them read past
      // its buffer, one with more would be authenticated over part of it.
      if (req.aad_len != p.aad_len) {
        why = "AAD length differs from the session's";
        return kStatusBadMsg;
      }
      const std::uint32_t tag = p.digest_len;
      if (req.encrypt) {
        if (req.dst_len < std::uint64_t{req.src_len} + tag) {
          why = "dst has no room for ciphertext and tag";
          return kStatusBadMsg;
        }
        job.data_len = req.src_len;
        slice(job.dst, req.src_len, tag, job.digest);
        trim(job.dst, req.src_len);
      } else {
        if (req.src_len < tag || req.dst_len < req.src_len - tag) {
          why = "src shorter than the tag or dst too short";
          return kStatusBadMsg;
        }
        job.data_len = req.src_len - tag;
        slice(job.src, job.data_len, tag, job.digest);
        trim(job.src, job.data_len);
        trim(job.dst, job.data_len);
      }
      job.cipher_offset = 0;
      job.cipher_len = job.data_len;
      break;
    }
  }
  if (c != nullptr && *c) {
    if (job.iv_len != p.iv_len) {
      why = "IV length differs from the algorithm's";
      return kStatusBadMsg;
    }
    const std::uint32_t bs = (*c)->block_size;
    if (bs > 1 && job.cipher_len % bs != 0) {
      why = "data length not a multiple of the cipher block";
      return kStatusBadMsg;
    }
  }
  return kStatusOk;
}

const char* check_job(const CryptoJob& j, const SessionParams& p,
                      const CryptoCapabilities& caps) noexcept {
  if (j.kind != p.kind) {
    return "op of another kind than its session";
  }
  // What a request from a guest may carry (parse_data): the engine's mbufs
  // and staging buffers hold no more.
  if (j.src.bytes > kMaxRequestBytes || j.dst.bytes > kMaxRequestBytes) {
    return "src or dst longer than max_size";
  }
  const bool ciphers = p.kind != SessionKind::kHash && p.kind != SessionKind::kMac;
  const bool digests = p.kind != SessionKind::kCipher;
  if (ciphers && j.iv_len != p.iv_len) {
    return "IV length differs from the session's";
  }
  if (ciphers && j.encrypt != p.encrypt) {
    return "direction differs from the session's";
  }
  if (j.data_len > j.src.bytes || (ciphers && j.data_len > j.dst.bytes)) {
    return "data longer than src or dst";
  }
  // Engines without out-of-place work in dst after copying all of src there.
  if (ciphers && j.dst.bytes < j.src.bytes) {
    return "dst shorter than src";
  }
  if (p.kind == SessionKind::kCipher || p.kind == SessionKind::kChain) {
    const auto& c = caps_of(caps.cipher, p.cipher_algo);
    const std::uint32_t len = p.kind == SessionKind::kCipher ? j.data_len : j.cipher_len;
    if (c && c->block_size > 1 && len % c->block_size != 0) {
      return "data length not a multiple of the cipher block";
    }
  }
  if (digests && j.digest.bytes < p.digest_len) {
    return "digest shorter than the session's";
  }
  if (p.kind == SessionKind::kAead && j.aad.bytes != p.aad_len) {
    return "AAD length differs from the session's";
  }
  if (p.kind == SessionKind::kChain) {
    if (std::uint64_t{j.cipher_offset} + j.cipher_len > j.src.bytes ||
        std::uint64_t{j.auth_offset} + j.auth_len > j.src.bytes) {
      return "cipher or hash range outside src";
    }
  }
  return nullptr;
}

std::uint32_t complete_data(CryptoRequest& req, std::uint8_t status) noexcept {
  if (req.status == nullptr) {
    return 0;
  }
  std::memcpy(req.status, &status, 1);
  return req.used_len;
}

}  // namespace viopool::crypto
