// CryptodevBackend: a CryptoBackend on a DPDK cryptodev (crypto_aesni_mb,
// crypto_aesni_gcm, crypto_openssl, or a hardware engine), named by devargs.
// One cryptodev queue pair per virtio data queue.
//
// Data path: one rte_crypto_op per request. A field that lies in one guest
// buffer is handed to the engine as an mbuf with an external buffer pointing
// into guest memory (no copy); source and destination are separate mbufs when
// the engine works out of place. Copies happen only where the layout does not
// allow otherwise: a field spread over several guest buffers goes through a
// per-queue staging buffer; an engine without out-of-place support (and every
// chained op, whose hash must cover the ciphertext) works in place in the
// guest's destination buffer after src is copied there; the IV always goes
// into the op (DPDK reads it from there).
//
// Engines that offer DPDK's synchronous CPU crypto API
// (RTE_CRYPTODEV_FF_SYM_CPU_CRYPTO: aesni_mb, aesni_gcm) take cipher (AES-CBC,
// AES-CTR) and AES-GCM requests of up to 2 KiB whose source and destination
// are one guest buffer each without any op or mbuf: src is copied into dst and the engine
// works there in place (the API has no out-of-place form on these engines),
// inside submit(); poll() hands the results back. Other requests take the op
// path above.
#pragma once

#include <memory>
#include <string>

#include "vhost-backend/devices/crypto/crypto_backend.h"

namespace viopool::crypto {

struct CryptodevBackendOptions {
  // DPDK devargs of the engine: a vdev (created if absent, removed at stop),
  // e.g. "crypto_aesni_mb0" or "crypto_openssl_vp1,max_nb_queue_pairs=4", or
  // the name of an engine EAL already probed.
  std::string devargs;
  std::uint32_t queue_depth = 256;  // descriptors per queue pair (ops in flight)
  bool cpu_crypto = true;           // use the CPU crypto API where the engine has it
  std::string log_id;               // "dev=crypto0"
};

std::unique_ptr<CryptoBackend> make_cryptodev_backend(CryptodevBackendOptions o);

}  // namespace viopool::crypto
