// SqliteStateStore: functions and leases as JSON rows keyed by name and id,
// counters in a meta table, every change one IMMEDIATE transaction.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "pool-manager/pool/state_store.h"

namespace viopool::pool {

using nlohmann::json;

struct SqliteStateStore::Impl {
  sqlite3* db = nullptr;
  ~Impl() {
    if (db != nullptr) {
      sqlite3_close_v2(db);
    }
  }

  // Runs SQL without results; false with SQLite's message in `why`.
  bool exec(const char* sql, std::string& why) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      why = std::string("state store: ") + (err != nullptr ? err : sqlite3_errmsg(db));
      sqlite3_free(err);
      return false;
    }
    return true;
  }
};

namespace {

// A prepared statement that finalizes itself.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  explicit operator bool() const { return s_ != nullptr; }
  sqlite3_stmt* get() { return s_; }
  void text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void integer(int i, std::int64_t v) { sqlite3_bind_int64(s_, i, v); }

 private:
  sqlite3_stmt* s_ = nullptr;
};

Error db_error(sqlite3* db, const std::string& what, std::string& why) {
  why = "state store: " + what + ": " + sqlite3_errmsg(db);
  return Error{Errc::kIo, 0, "state store failed"};
}

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS functions (
  name   TEXT PRIMARY KEY,
  id     INTEGER NOT NULL UNIQUE,
  record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
  id       INTEGER PRIMARY KEY,
  function TEXT NOT NULL,
  record   TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('next_function_id', 1), ('next_lease_id', 1);
)";

}  // namespace

SqliteStateStore::SqliteStateStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteStateStore::~SqliteStateStore() = default;

Result<std::unique_ptr<SqliteStateStore>> SqliteStateStore::open(const std::string& path,
                                                                 std::string& why) {
  if (path != ":memory:") {
    // Its directory is created 0700, the file 0600 before SQLite opens it:
    // it will hold the lease keys.
    const auto slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      std::error_code ec;
      if (std::filesystem::create_directories(path.substr(0, slash), ec)) {
        ::chmod(path.substr(0, slash).c_str(), 0700);  // only what it created
      }
    }
    // Created 0600 before SQLite opens it: it will hold the lease keys.
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      why = "state store: cannot open " + path + ": " + std::strerror(errno);
      return fail(Errc::kIo, "state store: open failed", errno);
    }
    ::close(fd);
  }
  auto impl = std::make_unique<Impl>();
  if (sqlite3_open_v2(path.c_str(), &impl->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    why = "state store: cannot open " + path + ": " +
          (impl->db != nullptr ? sqlite3_errmsg(impl->db) : "out of memory");
    return fail(Errc::kIo, "state store: open failed");
  }
  sqlite3_busy_timeout(impl->db, 2000);
  if (!impl->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", why)) {
    return fail(Errc::kIo, "state store: pragma failed");
  }
  int version = -1;
  {
    Stmt st(impl->db, "PRAGMA user_version");
    if (st && sqlite3_step(st.get()) == SQLITE_ROW) {
      version = sqlite3_column_int(st.get(), 0);
    }
  }
  if (version < 0) {
    why = "state store: " + path + " is not an SQLite database";
    return fail(Errc::kInvalidArgument, "state store: not a database");
  }
  if (version > kSchemaVersion) {
    why = "state store: " + path + " has schema version " + std::to_string(version) +
          ", newer than this appliance's " + std::to_string(kSchemaVersion);
    return fail(Errc::kUnsupported, "state store: schema too new");
  }
  if (version < kSchemaVersion) {
    // Version 0 is an empty file; later versions migrate step by step here.
    const std::string sql = std::string("BEGIN IMMEDIATE;") + kSchema +
                            "PRAGMA user_version=" + std::to_string(kSchemaVersion) + "; COMMIT;";
    if (!impl->exec(sql.c_str(), why)) {
      impl->exec("ROLLBACK", why);
      return fail(Errc::kIo, "state store: schema failed");
    }
  }
  return std::unique_ptr<SqliteStateStore>(new SqliteStateStore(std::move(impl)));
}

Result<PoolState> SqliteStateStore::load(std::string& why) {
  PoolState s;
  sqlite3* db = impl_->db;
  {
    Stmt st(db, "SELECT record FROM functions ORDER BY id");
    int rc = SQLITE_ERROR;
    while (st && (rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      const auto* txt = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
      auto j = json::parse(txt != nullptr ? txt : "", nullptr, false);
      auto f = function_from_json(j, why);
      if (!f) {
        return unexpected(f.error());
      }
      s.functions.push_back(std::move(*f));
    }
    if (!st || rc != SQLITE_DONE) {  // a busy or damaged database never reads as a short one
      return unexpected(db_error(db, "reading functions", why));
    }
  }
  {
    Stmt st(db, "SELECT record FROM leases ORDER BY id");
    int rc = SQLITE_ERROR;
    while (st && (rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      const auto* txt = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
      auto j = json::parse(txt != nullptr ? txt : "", nullptr, false);
      auto l = lease_from_json(j, why);
      if (!l) {
        return unexpected(l.error());
      }
      s.leases.push_back(std::move(*l));
    }
    if (!st || rc != SQLITE_DONE) {
      return unexpected(db_error(db, "reading leases", why));
    }
  }
  {
    Stmt st(db, "SELECT key, value FROM meta");
    int rc = SQLITE_ERROR;
    while (st && (rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      const std::string k = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
      const auto v = sqlite3_column_int64(st.get(), 1);
      if (k == "next_function_id") {
        s.next_function_id = static_cast<std::uint32_t>(v);
      } else if (k == "next_lease_id") {
        s.next_lease_id = static_cast<std::uint64_t>(v);
      }
    }
    if (!st || rc != SQLITE_DONE) {
      return unexpected(db_error(db, "reading counters", why));
    }
  }
  return s;
}

Result<void> SqliteStateStore::apply(const StateChange& c, std::string& why) {
  sqlite3* db = impl_->db;
  if (!impl_->exec("BEGIN IMMEDIATE", why)) {
    return fail(Errc::kIo, "state store: begin failed");
  }
  const auto step = [&](Stmt& st, const char* what) -> bool {
    if (!st || sqlite3_step(st.get()) != SQLITE_DONE) {
      (void)db_error(db, what, why);
      return false;
    }
    return true;
  };
  bool ok = true;
  for (const auto& name : c.delete_functions) {
    Stmt st(db, "DELETE FROM functions WHERE name = ?1");
    st.text(1, name);
    ok = ok && step(st, "deleting a function");
  }
  for (const auto& f : c.put_functions) {
    Stmt st(db, "INSERT OR REPLACE INTO functions (name, id, record) VALUES (?1, ?2, ?3)");
    st.text(1, f.name);
    st.integer(2, f.id);
    st.text(3, to_json(f).dump());
    ok = ok && step(st, "writing a function");
  }
  for (auto id : c.delete_leases) {
    Stmt st(db, "DELETE FROM leases WHERE id = ?1");
    st.integer(1, static_cast<std::int64_t>(id));
    ok = ok && step(st, "deleting a lease");
  }
  for (const auto& l : c.put_leases) {
    Stmt st(db, "INSERT OR REPLACE INTO leases (id, function, record) VALUES (?1, ?2, ?3)");
    st.integer(1, static_cast<std::int64_t>(l.id));
    st.text(2, l.function);
    st.text(3, to_json(l, KeyVisibility::kShown).dump());
    ok = ok && step(st, "writing a lease");
  }
  const auto meta = [&](const char* k, std::int64_t v) {
    Stmt st(db, "UPDATE meta SET value = ?2 WHERE key = ?1");
    st.text(1, k);
    st.integer(2, v);
    ok = ok && step(st, "writing a counter");
  };
  if (c.next_function_id) {
    meta("next_function_id", *c.next_function_id);
  }
  if (c.next_lease_id) {
    meta("next_lease_id", static_cast<std::int64_t>(*c.next_lease_id));
  }
  std::string ignored;
  if (!ok || !impl_->exec("COMMIT", why)) {
    impl_->exec("ROLLBACK", ignored);
    return fail(Errc::kIo, "state store: change not kept");
  }
  return {};
}

}  // namespace viopool::pool
