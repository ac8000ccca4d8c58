// The cheap first look of the pipeline: may a file with these first bytes be a document? Only a
// yes reads the whole file (DetectDocument then decides from all of it), so photos and the many
// other files of a library cost nothing here.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <string>

#include "lumen/doc/document.h"

namespace lumen::doc {
namespace {

std::string LowerExtension(std::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string_view::npos || dot + 1 >= name.size()) return {};
  std::string ext(name.substr(dot + 1));
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

bool StartsWith(const uint8_t* head, size_t n, const char* magic) {
  const size_t m = std::strlen(magic);
  return n >= m && std::memcmp(head, magic, m) == 0;
}

}  // namespace

bool HasDocumentExtension(std::string_view name) {
  static constexpr std::array<const char*, 14> kExt = {"txt",  "text", "md",   "markdown", "pdf",
                                                       "docx", "odt",  "pptx", "xlsx",     "ods",
                                                       "odp",  "rtf",  "epub", "mdown"};
  const std::string ext = LowerExtension(name);
  return std::any_of(kExt.begin(), kExt.end(), [&](const char* e) { return ext == e; });
}

bool MaybeDocument(const uint8_t* head, size_t n, std::string_view name) {
  if (StartsWith(head, n, "%PDF-") || StartsWith(head, n, "{\\rtf")) return true;
  // ZIP: office files and EPUB; other archives are read only when named like a document (a
  // library holds many .zip files that are not).
  if (StartsWith(head, n, "PK\x03\x04")) return HasDocumentExtension(name);
  // Plain text only under a text name (source code, logs and CSV files are text too, but not
  // documents a user wants described); whatever the content, so that a binary named .txt is
  // read and reported, not skipped in silence.
  const std::string ext = LowerExtension(name);
  return ext == "txt" || ext == "text" || ext == "md" || ext == "markdown" || ext == "mdown";
}

}  // namespace lumen::doc
