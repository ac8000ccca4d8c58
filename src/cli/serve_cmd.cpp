// lumen serve: the web app and REST API over the catalog (src/server).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>

#include <fmt/format.h>

#include "cli_util.h"
#include "commands.h"
#include "lumen/catalog/catalog.h"
#include "lumen/ml/model_files.h"
#include "lumen/ml/text_encoder.h"
#include "lumen/server/server.h"
#include "lumen/util/interrupt.h"
#include "lumen/util/log.h"

namespace lumen::cli {

namespace {
// "HOST:PORT", "HOST", ":PORT", "[::1]:PORT" -> host, port.
Status ParseListen(const std::string& s, std::string* host, int* port) {
  std::string h = s, p;
  if (!s.empty() && s[0] == '[') {
    const size_t end = s.find(']');
    if (end == std::string::npos) return Status::Invalid("--listen: unclosed [ in " + s);
    h = s.substr(1, end - 1);
    if (end + 1 < s.size()) {
      if (s[end + 1] != ':') return Status::Invalid("--listen: expected :PORT after ] in " + s);
      p = s.substr(end + 2);
    }
  } else if (const size_t colon = s.rfind(':');
             colon != std::string::npos && s.find(':') == colon) {
    h = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  if (h.empty()) h = "127.0.0.1";
  *host = h;
  if (p.empty()) return Status::Ok();
  if (p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::atoi(p.c_str()) > 65535)
    return Status::Invalid(fmt::format("--listen: {} is not a port (0-65535)", p));
  *port = std::atoi(p.c_str());
  return Status::Ok();
}
}  // namespace

int RunServe(const Options& o) {
  SetupLogging(o);
  auto fail = [](const Status& st) {
    log::Error(st.message());
    return kExitError;
  };
  InstallSignalHandlers();
  server::ServeOptions so;
  if (Status st = ParseListen(o.listen, &so.host, &so.port); !st.ok()) return fail(st);
  so.token = o.token;
  if (so.token.empty())
    if (const char* env = std::getenv("LUMEN_TOKEN")) so.token = env;
  auto c = OpenCatalog(o, Catalog::Mode::kReadOnly);
  if (!c.ok()) return fail(c.status());
  std::error_code ec;
  so.catalog = std::filesystem::absolute((*c)->path(), ec).string();

  // Text search with the catalog's model, when there is one (or --model names it).
  if (auto models = (*c)->EmbeddingModels(); models.ok() && !models->empty()) {
    auto path = SearchModelPath(o, **c);
    if (!path.ok()) {
      if (!o.model.empty()) return fail(path.status());
      log::Warn(fmt::format("serve: text search is off: {}", path.status().message()));
    } else {
      auto source = ml::OpenModel(*path);
      if (!source.ok()) return fail(source.status());
      const ml::ModelConfig cfg = (*source)->config;
      source->reset();
      if (!cfg.text.present)
        return fail(
            Status::Invalid(fmt::format("{} has no text tower: text search needs one", *path)));
      so.model = EncoderId(*path, cfg.family);
      // Index jobs embed new photos with the same model, so they are found by the same search.
      so.index_args = {"--model", *path};
      // The text tower is loaded at the first text search (the server calls this one query at a
      // time): a server nobody searches does not hold it (~440 MB for SigLIP B/16 in f32).
      ml::EncoderOptions eo;
      eo.weights = ml::ParseWeightType(o.weights).value_or(ml::WeightType::kStored);
      auto holder = std::make_shared<std::unique_ptr<ml::TextEncoder>>();
      so.encode_text = [holder, eo, p = *path](const std::string& q) -> Result<std::vector<float>> {
        if (!*holder) {
          auto t = ml::TextEncoder::Load(p, eo);
          if (!t.ok()) return t.status();
          *holder = std::move(*t);
        }
        std::vector<float> v(size_t((*holder)->dim()));
        if (Status st = (*holder)->Encode({q}, v.data()); !st.ok()) return st;
        return v;
      };
    }
  }
  // Jobs run this program itself, on the same catalog.
  if (!o.dry_run) {
    std::error_code exe_ec;
    so.exe = std::filesystem::read_symlink("/proc/self/exe", exe_ec).string();
    if (exe_ec) log::Warn("serve: this program's path is unknown: jobs are off");
    so.quarantine = o.move_to.empty()
                        ? (std::filesystem::path(so.catalog).parent_path() / "quarantine").string()
                        : std::filesystem::absolute(o.move_to, ec).string();
    so.ann_path = [catalog = so.catalog](const std::string& model) {
      return BesideCatalog(catalog, "ann", model) + ".hnsw";
    };
  }
  c->reset();
  so.on_listening = [&](const std::string& url) {
    std::printf("lumen: serving %s at %s\n", so.catalog.c_str(), url.c_str());
    std::fflush(stdout);
  };
  if (Status st = server::Serve(so); !st.ok()) return fail(st);
  return Interrupted() ? 128 + InterruptSignal() : kExitOk;
}

}  // namespace lumen::cli
