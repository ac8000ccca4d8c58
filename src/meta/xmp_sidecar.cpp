#include "lumen/meta/xmp_sidecar.h"

#include <unistd.h>
#include <exiv2/exiv2.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "lumen/meta/exif.h"
#include "lumen/util/temp_file.h"

namespace lumen {
namespace {

std::string SidecarFor(const std::string& image) {
  std::filesystem::path p(image);
  std::filesystem::path stem = p;
  stem.replace_extension(".xmp");
  std::error_code ec;
  if (std::filesystem::exists(stem, ec)) return stem.string();
  return image + ".xmp";
}

// Values of a bag property already in the packet.
std::set<std::string> BagValues(const Exiv2::XmpData& xmp, const char* key) {
  std::set<std::string> out;
  auto it = xmp.findKey(Exiv2::XmpKey(key));
  if (it == xmp.end()) return out;
  for (long i = 0; i < it->count(); ++i) out.insert(it->toString(i));
  return out;
}

void AddToBag(Exiv2::XmpData& xmp, const char* key, const std::vector<std::string>& values) {
  std::set<std::string> have = BagValues(xmp, key);
  auto it = xmp.findKey(Exiv2::XmpKey(key));
  Exiv2::XmpArrayValue bag(Exiv2::xmpBag);
  if (it != xmp.end())
    for (long i = 0; i < it->count(); ++i) bag.read(it->toString(i));
  bool changed = false;
  for (const auto& v : values) {
    if (v.empty() || have.count(v)) continue;
    bag.read(v);
    have.insert(v);
    changed = true;
  }
  if (changed || it == xmp.end()) xmp[key].setValue(&bag);
}

}  // namespace

Result<std::string> WriteTagsSidecar(const std::string& image_path,
                                     const std::vector<std::string>& keywords,
                                     const std::vector<std::string>& hierarchical) {
  InitMetadataLibrary();
  const std::string path = SidecarFor(image_path);
  try {
    Exiv2::XmpData xmp;
    std::error_code ec;
    if (std::filesystem::exists(path, ec)) {
      std::ifstream in(path, std::ios::binary);
      std::string packet((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (Exiv2::XmpParser::decode(xmp, packet) != 0)
        return Status::Corrupt(
            fmt::format("{}: the existing sidecar is not valid XMP; left untouched", path));
    }
    AddToBag(xmp, "Xmp.dc.subject", keywords);
    AddToBag(xmp, "Xmp.lr.hierarchicalSubject", hierarchical);
    std::string out;
    if (Exiv2::XmpParser::encode(out, xmp, Exiv2::XmpParser::useCompactFormat) != 0)
      return Status::Internal(fmt::format("{}: cannot encode XMP", path));
    // Beside the sidecar, created exclusively (a planted link at a predictable name is never
    // written through), renamed over it when complete.
    auto tmp = TempFile::Create(path);
    if (!tmp.ok()) return tmp.status();
    LUMEN_RETURN_IF_ERROR(tmp->Write(out));
    LUMEN_RETURN_IF_ERROR(tmp->Commit(/*durable=*/false));
  } catch (const Exiv2::AnyError& e) {
    return Status::Corrupt(fmt::format("{}: XMP error: {}", path, e.what()));
  }
  return path;
}

}  // namespace lumen
