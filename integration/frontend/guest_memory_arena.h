// "Guest RAM" for the vhost-user frontend: one memfd-backed region mapped here
// and shared with the backend through SET_MEM_TABLE, placed at a guest-physical
// base far from its host address so that a backend mixing up GPA and VA fails.
// driver_queue.h allocates rings from it, blk_driver.h and crypto_driver.h
// request slots and buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "integration/frontend/vhost_user_frontend.h"
#include "vhost-backend/base/result.h"
#include "vhost-backend/base/types.h"
#include "vhost-backend/virtio/guest_memory.h"

namespace viopool::frontend {

// Typed boolean: back the arena with hugetlb pages (MFD_HUGETLB).
enum class HugePages : bool { kNo = false, kYes = true };

struct ArenaOptions {
  std::uint64_t size = std::uint64_t{256} << 20;
  // 4 GiB: above any address a 256 MiB mapping here could have by accident,
  // and not identity-mapped, so GPA/VA confusion in a backend shows at once.
  GuestAddr guest_base{std::uint64_t{1} << 32};
  HugePages huge_pages = HugePages::kNo;
};

// A piece of the arena: its guest-physical address, our mapping of it, its length.
struct ArenaBlock {
  GuestAddr gpa;
  std::byte* host = nullptr;
  std::uint64_t len = 0;

  std::span<std::byte> bytes() const noexcept { return {host, static_cast<std::size_t>(len)}; }
  explicit operator bool() const noexcept { return host != nullptr; }
};

// A buffer of a request in guest memory (usually an ArenaBlock or a piece of
// one), as the device drivers take their data (BlkBuffer is this type).
struct GuestBuffer {
  GuestAddr addr;
  std::uint32_t len = 0;
};
inline GuestBuffer to_guest_buffer(const ArenaBlock& b) {
  return GuestBuffer{b.gpa, static_cast<std::uint32_t>(b.len)};
}

// Owns the memfd and its mapping. alloc/free are thread-safe (a mutex; control
// path and set-up, not per I/O); address conversions are lock-free and const.
class GuestMemoryArena {
 public:
  // kInvalidArgument for a zero size, kIo when memfd/ftruncate/mmap fail (with
  // HugePages::kYes also when not enough hugepages are reserved: the mapping is
  // populated up front so a shortage fails here and not with SIGBUS later).
  static Result<std::unique_ptr<GuestMemoryArena>> create(const ArenaOptions& options);
  ~GuestMemoryArena();
  GuestMemoryArena(const GuestMemoryArena&) = delete;
  GuestMemoryArena& operator=(const GuestMemoryArena&) = delete;

  // First-fit allocation of `len` bytes aligned to `align` (a power of two;
  // guest-physical and host alignment are the same). The bytes are zeroed.
  // kInvalidArgument for len 0 or a bad alignment, kResourceExhausted when full.
  Result<ArenaBlock> alloc(std::uint64_t len, std::uint64_t align = 64);
  // Returns a block from alloc(); freeing anything else is a bug (checked).
  void free(const ArenaBlock& block);
  std::uint64_t bytes_free() const;

  // The region as a backend sees it (one region, whole arena).
  const virtio::GuestMemory& guest_memory() const noexcept { return memory_; }
  // The memory table entry to send with SET_MEM_TABLE.
  MemTableEntry mem_table_entry() const noexcept;

  GuestAddr guest_base() const noexcept { return base_; }
  std::uint64_t size() const noexcept { return size_; }
  std::byte* host_base() const noexcept { return host_; }
  int fd() const noexcept { return fd_; }
  bool huge_pages() const noexcept { return huge_; }

  // Our virtual address of guest [gpa, gpa + len) or nullptr if outside.
  std::byte* host(GuestAddr gpa, std::uint64_t len) const noexcept;
  // The frontend virtual address ("user address") of a guest address inside
  // the arena, as SET_VRING_ADDR wants it.
  std::uint64_t user_addr(GuestAddr gpa) const noexcept;

 private:
  GuestMemoryArena() = default;

  int fd_ = -1;
  std::byte* host_ = nullptr;
  std::uint64_t size_ = 0;
  GuestAddr base_;
  bool huge_ = false;
  virtio::GuestMemory memory_;

  mutable std::mutex mu_;
  std::map<std::uint64_t, std::uint64_t> free_;  // offset -> length, coalesced
  std::map<std::uint64_t, std::uint64_t> used_;  // offset -> length
};

}  // namespace viopool::frontend
