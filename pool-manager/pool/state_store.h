// StateStore: where the appliance keeps its functions and leases so that they
// survive a restart. One interface, so that an etcd cluster can hold the state
// when several appliances share a pool; SqliteStateStore is the embedded
// default (one appliance).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pool-manager/pool/pool_model.h"

namespace viopool::pool {

// One atomic change: all of it is kept, or none.
struct StateChange {
  std::vector<FunctionRecord> put_functions;  // inserted or replaced by name
  std::vector<std::string> delete_functions;
  std::vector<LeaseRecord> put_leases;  // inserted or replaced by id
  std::vector<std::uint64_t> delete_leases;
  std::optional<std::uint32_t> next_function_id;
  std::optional<std::uint64_t> next_lease_id;
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual Result<PoolState> load(std::string& why) = 0;
  virtual Result<void> apply(const StateChange& change, std::string& why) = 0;
};

// SQLite, schema versioned with PRAGMA user_version (docs/operations.md
// "Appliance state"): a new file is created at the current version, an older
// one is migrated, a newer one is refused. The file is created mode 0600 (it
// holds the lease keys). ":memory:" gives a store that lives as long as the
// object (tests).
class SqliteStateStore final : public StateStore {
 public:
  static constexpr int kSchemaVersion = 1;
  static Result<std::unique_ptr<SqliteStateStore>> open(const std::string& path, std::string& why);
  ~SqliteStateStore() override;
  SqliteStateStore(const SqliteStateStore&) = delete;
  SqliteStateStore& operator=(const SqliteStateStore&) = delete;

  Result<PoolState> load(std::string& why) override;
  Result<void> apply(const StateChange& change, std::string& why) override;

 private:
  struct Impl;
  explicit SqliteStateStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace viopool::pool
