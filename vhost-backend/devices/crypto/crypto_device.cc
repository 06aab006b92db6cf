// virtio-crypto feature and config-space policy, and the session table.
#include "vhost-backend/devices/crypto/crypto_device.h"

#include <algorithm>
#include <cstring>

#include "vhost-backend/virtio/virtio_defs.h"

namespace viopool::crypto {
namespace {

constexpr std::uint64_t bit(unsigned b) { return std::uint64_t{1} << b; }

// Slot index in the low 32 bits (+1, so no id is 0), generation above.
constexpr std::uint64_t make_id(std::uint32_t slot, std::uint32_t gen) noexcept {
  return (std::uint64_t{gen} << 32) | (std::uint64_t{slot} + 1);
}

}  // namespace

std::uint64_t offered_features(const CryptoDeviceOptions& o) noexcept {
  namespace v = viopool::virtio;
  std::uint64_t f = bit(v::kFeatureVersion1) | bit(v::kFeatureRingIndirectDesc) |
                    bit(v::kFeatureRingEventIdx) | bit(v::kFeatureProtocolFeatures);
  if (o.packed_ring) {
    f |= bit(v::kFeatureRingPacked);
  }
  return f;
}

Config make_config(const CryptoDeviceOptions& o, const CryptoCapabilities& caps) noexcept {
  Config c{};
  c.status = kConfigStatusHwReady;
  c.max_dataqueues = o.queues;
  std::uint64_t cipher = 0;
  std::uint64_t mac = 0;
  for (std::uint32_t a = 1; a < CryptoCapabilities::kAlgos; ++a) {
    if (caps.cipher[a]) {
      cipher |= bit(a);
      c.max_cipher_key_len = std::max<std::uint32_t>(c.max_cipher_key_len, caps.cipher[a]->key.max);
    }
    if (caps.hash[a] && a < 32) {
      c.hash_algo |= static_cast<std::uint32_t>(bit(a));
    }
    if (caps.mac[a]) {
      mac |= bit(a);
      c.max_auth_key_len = std::max<std::uint32_t>(c.max_auth_key_len, caps.mac[a]->key.max);
    }
    if (caps.aead[a] && a < 32) {
      c.aead_algo |= static_cast<std::uint32_t>(bit(a));
      c.max_cipher_key_len = std::max<std::uint32_t>(c.max_cipher_key_len, caps.aead[a]->key.max);
    }
  }
  c.cipher_algo_l = static_cast<std::uint32_t>(cipher);
  c.cipher_algo_h = static_cast<std::uint32_t>(cipher >> 32);
  c.mac_algo_l = static_cast<std::uint32_t>(mac);
  c.mac_algo_h = static_cast<std::uint32_t>(mac >> 32);
  c.crypto_services = (cipher ? bit(kServiceCipher) : 0) | (c.hash_algo ? bit(kServiceHash) : 0) |
                      (mac ? bit(kServiceMac) : 0) | (c.aead_algo ? bit(kServiceAead) : 0);
  c.max_cipher_key_len = std::min(c.max_cipher_key_len, kMaxKeyBytes);
  c.max_auth_key_len = std::min(c.max_auth_key_len, kMaxAuthKeyBytes);
  c.max_size = kMaxRequestBytes;
  return c;
}

std::array<std::uint8_t, kConfigSpaceBytes> config_space(const Config& c) noexcept {
  std::array<std::uint8_t, kConfigSpaceBytes> out{};
  std::memcpy(out.data(), &c, sizeof(c));  // little-endian host (virtio_defs.h)
  return out;
}

SessionTable::SessionTable(std::uint32_t max_sessions) : entries_(max_sessions) {}

SessionTable::Entry* SessionTable::find(std::uint64_t id) noexcept {
  const std::uint64_t slot = (id & 0xffffffffu);
  if (slot == 0 || slot > entries_.size()) {
    return nullptr;
  }
  Entry& e = entries_[slot - 1];
  return e.id == id ? &e : nullptr;
}

std::uint8_t SessionTable::insert(const SessionInfo& info, std::uint64_t& id) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (e.id == 0) {
      e.info = info;
      // Keys are the backend's business once the session exists.
      e.info.params.wipe_keys();
      e.id = make_id(i, ++generation_);
      e.refs = 0;
      e.closing = false;
      ++active_;
      ++created_;
      id = e.id;
      return kStatusOk;
    }
  }
  ++refused_;
  return kStatusNoSpc;
}

std::uint8_t SessionTable::close(std::uint64_t id, BackendSession& destroy_now) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  destroy_now = nullptr;
  Entry* e = find(id);
  if (e == nullptr || e->closing) {
    return kStatusInvSess;
  }
  e->closing = true;
  if (e->refs == 0) {
    destroy_now = e->info.backend;
    *e = Entry{};
    --active_;
  }
  return kStatusOk;
}

SessionTable::Entry* SessionTable::acquire_locked(std::uint64_t id) noexcept {
  Entry* e = find(id);
  if (e == nullptr || e->closing) {
    return nullptr;
  }
  ++e->refs;
  return e;
}

BackendSession SessionTable::release_locked(Entry* e) noexcept {
  if (--e->refs == 0 && e->closing) {
    BackendSession s = e->info.backend;
    *e = Entry{};
    --active_;
    return s;
  }
  return nullptr;
}

SessionTable::Entry* SessionTable::acquire(std::uint64_t id) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return acquire_locked(id);
}

BackendSession SessionTable::release(Entry* e) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return release_locked(e);
}

void SessionTable::acquire_burst(const std::uint64_t* ids, Entry** out,
                                 std::uint32_t n) noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  for (std::uint32_t i = 0; i < n; ++i) {
    out[i] = acquire_locked(ids[i]);
  }
}

std::uint32_t SessionTable::release_burst(Entry* const* es, std::uint32_t n,
                                          BackendSession* destroy) noexcept {
  std::uint32_t nd = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (es[i] != nullptr) {
      if (BackendSession s = release_locked(es[i])) {
        destroy[nd++] = s;
      }
    }
  }
  return nd;
}

std::vector<BackendSession> SessionTable::clear() noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BackendSession> out;
  for (auto& e : entries_) {
    if (e.id != 0) {
      out.push_back(e.info.backend);
      e = Entry{};
    }
  }
  active_ = 0;
  return out;
}

std::uint32_t SessionTable::active() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return active_;
}
std::uint64_t SessionTable::created() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return created_;
}
std::uint64_t SessionTable::refused() const noexcept {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

}  // namespace viopool::crypto
