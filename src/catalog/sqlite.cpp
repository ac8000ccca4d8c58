#include "lumen/catalog/sqlite.h"

#include <fmt/format.h>

namespace lumen::sql {

Status Error(sqlite3* db, std::string_view what) {
  return Status::Io(fmt::format("catalog: {}: {}", what, db ? sqlite3_errmsg(db) : "no database"));
}

bool Stmt::Step(Status* status) {
  int rc = sqlite3_step(s_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) *status = Error(db_, sqlite3_sql(s_.get()));
  return false;
}

Status Stmt::Run() {
  Status st;
  while (Step(&st)) {
  }
  Reset();
  return st;
}

std::string Stmt::Text(int col) const {
  const auto* p = sqlite3_column_text(s_.get(), col);
  int n = sqlite3_column_bytes(s_.get(), col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

std::string Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(s_.get(), col);
  int n = sqlite3_column_bytes(s_.get(), col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}

Result<Stmt> Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &s, nullptr) != SQLITE_OK)
    return Error(db, fmt::format("prepare `{}`", sql));
  return Stmt(db, s);
}

Status Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Status::Io(fmt::format("catalog: {}", msg));
  }
  return Status::Ok();
}

}  // namespace lumen::sql
