// GuestMemoryArena: memfd + shared mapping + a coalescing first-fit free list.
#include "integration/frontend/guest_memory_arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vhost-backend/base/check.h"

namespace viopool::frontend {

namespace {

// MFD_HUGETLB maps 2 MiB pages by default on x86-64; the file size must be a
// multiple of the page size.
constexpr std::uint64_t kHugePageSize = std::uint64_t{2} << 20;

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
  return (v + a - 1) & ~(a - 1);
}

}  // namespace

Result<std::unique_ptr<GuestMemoryArena>> GuestMemoryArena::create(const ArenaOptions& options) {
  if (options.size == 0) {
    return fail(Errc::kInvalidArgument, "guest memory size is zero");
  }
  std::unique_ptr<GuestMemoryArena> a(new GuestMemoryArena());
  a->huge_ = options.huge_pages == HugePages::kYes;
  a->size_ = a->huge_ ? align_up(options.size, kHugePageSize) : align_up(options.size, 4096);
  a->base_ = options.guest_base;
  if (a->base_.value + a->size_ < a->base_.value) {
    return fail(Errc::kInvalidArgument, "guest memory wraps the address space");
  }

  unsigned flags = MFD_CLOEXEC;
  if (a->huge_) {
    flags |= MFD_HUGETLB;
  }
  a->fd_ = ::memfd_create("viopool-guest-ram", flags);
  if (a->fd_ < 0) {
    return fail(Errc::kIo, "memfd_create for guest memory failed", errno);
  }
  if (::ftruncate(a->fd_, static_cast<off_t>(a->size_)) != 0) {
    return fail(Errc::kIo, "sizing the guest memory memfd failed", errno);
  }
  // A hugetlb mapping reserves its pages at mmap (no MAP_NORESERVE), so a
  // shortage fails here with ENOMEM rather than with SIGBUS on first touch.
  const int mflags = MAP_SHARED | (a->huge_ ? MAP_POPULATE : 0);
  void* p = ::mmap(nullptr, a->size_, PROT_READ | PROT_WRITE, mflags, a->fd_, 0);
  if (p == MAP_FAILED) {
    return fail(Errc::kIo, "mapping guest memory failed", errno);
  }
  a->host_ = static_cast<std::byte*>(p);
  auto added = a->memory_.add_region(virtio::MemoryRegion{a->base_, a->size_, a->host_});
  if (!added) {
    return unexpected(added.error());
  }
  a->free_.emplace(0, a->size_);
  return a;
}

GuestMemoryArena::~GuestMemoryArena() {
  if (host_ != nullptr) {
    ::munmap(host_, size_);
  }
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

Result<ArenaBlock> GuestMemoryArena::alloc(std::uint64_t len, std::uint64_t align) {
  if (len == 0 || align == 0 || (align & (align - 1)) != 0) {
    return fail(Errc::kInvalidArgument,
                "arena allocation needs a length and a power-of-two alignment");
  }
  std::lock_guard lock(mu_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    const std::uint64_t start = it->first;
    const std::uint64_t end = it->first + it->second;
    const std::uint64_t at = align_up(start, align);
    if (at < start || at > end || end - at < len) {
      continue;
    }
    free_.erase(it);
    if (at > start) {
      free_.emplace(start, at - start);
    }
    if (at + len < end) {
      free_.emplace(at + len, end - (at + len));
    }
    used_.emplace(at, len);
    ArenaBlock b{GuestAddr{base_.value + at}, host_ + at, len};
    std::memset(b.host, 0, len);
    return b;
  }
  return fail(Errc::kResourceExhausted, "guest memory arena is full");
}

void GuestMemoryArena::free(const ArenaBlock& block) {
  if (!block) {
    return;
  }
  std::lock_guard lock(mu_);
  const std::uint64_t off = block.gpa.value - base_.value;
  auto u = used_.find(off);
  VIOPOOL_CHECK(u != used_.end() && u->second == block.len);
  used_.erase(u);
  std::uint64_t start = off;
  std::uint64_t len = block.len;
  auto next = free_.lower_bound(start);
  if (next != free_.end() && start + len == next->first) {
    len += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      free_.erase(prev);
    }
  }
  free_.emplace(start, len);
}

std::uint64_t GuestMemoryArena::bytes_free() const {
  std::lock_guard lock(mu_);
  std::uint64_t n = 0;
  for (const auto& [off, len] : free_) {
    n += len;
  }
  return n;
}

MemTableEntry GuestMemoryArena::mem_table_entry() const noexcept {
  return MemTableEntry{base_, size_, reinterpret_cast<std::uint64_t>(host_), 0, fd_};
}

std::byte* GuestMemoryArena::host(GuestAddr gpa, std::uint64_t len) const noexcept {
  if (gpa.value < base_.value) {
    return nullptr;
  }
  const std::uint64_t off = gpa.value - base_.value;
  if (off > size_ || size_ - off < len) {
    return nullptr;
  }
  return host_ + off;
}

std::uint64_t GuestMemoryArena::user_addr(GuestAddr gpa) const noexcept {
  return reinterpret_cast<std::uint64_t>(host_) + (gpa.value - base_.value);
}

}  // namespace viopool::frontend
