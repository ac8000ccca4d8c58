#include "lumen/ml/registry.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lumen/util/json.h"
#include "lumen/util/temp_file.h"

namespace lumen::ml {

const std::vector<RegistryEntry>& Registry() {
  // SHA-256 values are not known in advance here: Pull() records them at the first download.
  static const std::vector<ModelFile> kSiglipFiles = {{"config.json", ""},
                                                      {"preprocessor_config.json", ""},
                                                      {"model.safetensors", ""},
                                                      {"spiece.model", ""}};
  static const std::vector<ModelFile> kClipFiles = {{"config.json", ""},
                                                    {"preprocessor_config.json", ""},
                                                    {"model.safetensors", ""},
                                                    {"vocab.json", ""},
                                                    {"merges.txt", ""}};
  static const std::vector<RegistryEntry> kModels = {
      {"siglip-base-patch16-224", "google/siglip-base-patch16-224", "siglip", 224, 768,
       kSiglipFiles},
      {"siglip-base-patch16-384", "google/siglip-base-patch16-384", "siglip", 384, 768,
       kSiglipFiles},
      {"clip-vit-base-patch32", "openai/clip-vit-base-patch32", "clip", 224, 512, kClipFiles},
      {"clip-vit-base-patch16", "openai/clip-vit-base-patch16", "clip", 224, 512, kClipFiles},
  };
  return kModels;
}

const RegistryEntry* FindModel(const std::string& name) {
  for (const auto& m : Registry())
    if (m.name == name) return &m;
  return nullptr;
}

std::string ModelsDir() {
  if (const char* p = std::getenv("LUMEN_MODELS"); p && *p) return p;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x)
    return std::string(x) + "/lumen/models";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/lumen/models";
}

std::string ResolveModelPath(const std::string& name) {
  if (FindModel(name)) return ModelsDir() + "/" + name;
  return name;
}

std::string DefaultModelName(bool high) {
  return high ? "siglip-base-patch16-384" : "siglip-base-patch16-224";
}

std::string Sha256File(const std::string& path, Status* error) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f || !ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    if (f) std::fclose(f);
    *error = Status::Io(fmt::format("{}: cannot read", path));
    return "";
  }
  std::vector<unsigned char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
  std::fclose(f);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

namespace {

struct Download {
  std::FILE* out = nullptr;
  uint64_t offset = 0;
  uint64_t total = 0;
  const PullOptions* opt = nullptr;
  const std::string* name = nullptr;
};

size_t OnData(char* p, size_t size, size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  return std::fwrite(p, size, n, d->out) * size;
}

int OnProgress(void* user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* d = static_cast<Download*>(user);
  if (d->opt->progress && dltotal > 0)
    d->opt->progress(*d->name, d->offset + uint64_t(dlnow), d->offset + uint64_t(dltotal));
  return 0;
}

Status FetchFile(const std::string& url, const std::string& part, const std::string& name,
                 const PullOptions& opt) {
  struct stat st;
  uint64_t have = ::stat(part.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) return Status::Internal("cannot start libcurl");
  Download d;
  // The partial download keeps its name across runs (that is how a pull resumes), so it is
  // opened without following a link planted there.
  const int fd =
      ::open(part.c_str(),
             O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (have ? O_APPEND : O_TRUNC), 0644);
  d.out = fd >= 0 ? ::fdopen(fd, have ? "ab" : "wb") : nullptr;
  if (!d.out) {
    if (fd >= 0) ::close(fd);
    return Status::Io(fmt::format("{}: cannot write: {}", part, std::strerror(errno)));
  }
  d.offset = have;
  d.opt = &opt;
  d.name = &name;
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(curl.get(), CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl.get(), CURLOPT_XFERINFOFUNCTION, OnProgress);
  curl_easy_setopt(curl.get(), CURLOPT_XFERINFODATA, &d);
  curl_easy_setopt(curl.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl.get(), CURLOPT_LOW_SPEED_TIME, opt.timeout_s);
  if (have) curl_easy_setopt(curl.get(), CURLOPT_RESUME_FROM_LARGE, curl_off_t(have));
  CURLcode rc = curl_easy_perform(curl.get());
  long code = 0;
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &code);
  std::fclose(d.out);
  if (rc == CURLE_OK && have && code == 200) {
    // The server ignored the Range request and sent the whole file after our partial bytes.
    std::remove(part.c_str());
    return Status::Io(fmt::format(
        "{}: the server does not support resuming; the partial file was removed, retry", url));
  }
  if (rc != CURLE_OK)
    return Status::Io(fmt::format("{}: download failed: {} (HTTP {}); {} bytes kept for resuming",
                                  url, err[0] ? err : curl_easy_strerror(rc), code,
                                  ::stat(part.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0));
  return Status::Ok();
}

}  // namespace

Status Pull(const RegistryEntry& model, const std::string& dest, const PullOptions& opt) {
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!curl_ready) return Status::Internal("cannot start libcurl");
  std::error_code ec;
  std::filesystem::create_directories(dest, ec);
  if (ec) return Status::Io(fmt::format("{}: cannot create: {}", dest, ec.message()));
  nlohmann::json manifest = nlohmann::json::object();
  std::string manifest_path = dest + "/lumen-manifest.json";
  if (std::ifstream in(manifest_path); in) {
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_object()) manifest = j;
  }
  for (const ModelFile& f : model.files) {
    std::string final_path = dest + "/" + f.name, part = final_path + ".part";
    if (std::filesystem::exists(final_path) && manifest.contains(f.name)) continue;  // done earlier
    std::string url = fmt::format("{}/{}/resolve/main/{}", opt.base_url, model.repo, f.name);
    LUMEN_RETURN_IF_ERROR(FetchFile(url, part, f.name, opt));
    Status st;
    std::string sha = Sha256File(part, &st);
    LUMEN_RETURN_IF_ERROR(st);
    if (!f.sha256.empty() && sha != f.sha256) {
      std::remove(part.c_str());
      return Status::Corrupt(fmt::format("{}: SHA-256 {} does not match the registry's {}; removed",
                                         f.name, sha, f.sha256));
    }
    if (std::rename(part.c_str(), final_path.c_str()) != 0)
      return Status::Io(fmt::format("{}: cannot rename into place", final_path));
    manifest[f.name] = {{"size", std::filesystem::file_size(final_path)}, {"sha256", sha}};
    auto mf = TempFile::Create(manifest_path, 0644);
    if (!mf.ok()) return mf.status();
    LUMEN_RETURN_IF_ERROR(mf->Write(json::Dump(manifest, 2) + "\n"));
    LUMEN_RETURN_IF_ERROR(mf->Commit());
  }
  return Status::Ok();
}

Result<std::vector<std::string>> Verify(const std::string& dir, const RegistryEntry* model) {
  std::vector<std::string> problems;
  std::ifstream in(dir + "/lumen-manifest.json");
  if (!in)
    return Status::NotFound(
        fmt::format("{}/lumen-manifest.json: not found (not pulled by lumen?)", dir));
  auto manifest = nlohmann::json::parse(in, nullptr, false);
  if (!manifest.is_object())
    return Status::Corrupt(fmt::format("{}/lumen-manifest.json: not a JSON object", dir));
  if (model)
    for (const auto& f : model->files)
      if (!manifest.contains(f.name))
        problems.push_back(fmt::format("{}: missing (not downloaded)", f.name));
  for (auto& [name, info] : manifest.items()) {
    std::string path = dir + "/" + name;
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    if (ec) {
      problems.push_back(fmt::format("{}: missing", name));
      continue;
    }
    if (info.value("size", uint64_t(0)) != size) {
      problems.push_back(fmt::format("{}: size {} differs from the recorded {}", name, size,
                                     info.value("size", 0)));
      continue;
    }
    Status st;
    std::string sha = Sha256File(path, &st);
    if (!st.ok() || sha != info.value("sha256", ""))
      problems.push_back(fmt::format("{}: SHA-256 mismatch", name));
  }
  return problems;
}

}  // namespace lumen::ml
