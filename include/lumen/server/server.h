// `lumen serve`: the web app and the REST API (docs/API.md) over one catalog.
//
// Safe by default: it binds the loopback interface; every API request carries the run's token
// (a cookie set by the URL printed at start, or an Authorization/X-Lumen-Token header); the Host
// header must name this server (no DNS rebinding); a request that changes state needs the token
// in a header and a same-origin Origin. Files are served by asset id only, from the locations the
// catalog holds, never from a path in the request.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lumen/util/status.h"

namespace lumen::server {

struct ServeOptions {
  std::string catalog;             // the catalog file
  std::string host = "127.0.0.1";  // the address to bind
  int port = 8750;                 // 0: any free port
  std::string token;               // empty: a random one for this run (loopback only)
  int threads = 0;                 // request threads; 0: 2 per core, at least 8
  // Text search: the query's embedding in the space of `model` (the catalog's embeddings of that
  // model are searched); unset: search by filters only.
  std::function<Result<std::vector<float>>(const std::string&)> encode_text;
  std::string model;
  // Jobs (index, organize, undo, describe, convert, duplicate actions) run `exe`, this program,
  // as child processes on the catalog; empty: the server is read-only.
  std::string exe;
  std::vector<std::string> index_args;  // added to every index job (e.g. --model PATH)
  std::string quarantine;               // where duplicate actions move duplicates
  // The ANN index file of a model's embeddings (dupes' semantic tier at scale); unset: exact.
  std::function<std::string(const std::string& model)> ann_path;
  // Called once the socket is bound, with the URL to open (token included).
  std::function<void(const std::string& url)> on_listening;
};

// Whether `host` is a loopback address or name (127.0.0.0/8, ::1, localhost).
bool IsLoopback(const std::string& host);

// Serves until a signal (util/interrupt.h) arrives. Errors: Invalid (a non-loopback address
// without a token, a catalog that is not lumen's), Io (the port is taken, the catalog cannot be
// read).
Status Serve(const ServeOptions& options);

}  // namespace lumen::server
