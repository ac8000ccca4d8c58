// ZIP-based documents: OOXML (DOCX, PPTX, XLSX), OpenDocument (ODT, ODS, ODP) and EPUB, through
// libzip (entries read from memory, inflation counted against the limits) and libxml2 (no
// entity expansion, no network, entity reference nodes never descended into).
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <zip.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "text.h"

namespace lumen::doc::detail {
namespace {

class Zip {
 public:
  Zip(const uint8_t* data, size_t size, const DocLimits& lim) : lim_(lim) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_buffer_create(data, size, 0, &err);
    if (src) {
      z_ = zip_open_from_source(src, ZIP_RDONLY, &err);
      if (!z_) zip_source_free(src);
    }
    zip_error_fini(&err);
  }
  ~Zip() {
    if (z_) zip_discard(z_);
  }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;
  bool ok() const { return z_ != nullptr; }
  bool Has(const std::string& name) const {
    return z_ && zip_name_locate(z_, name.c_str(), 0) >= 0;
  }

  // The entry's bytes, or NotFound; TooLarge once it (or the ZIP in all) inflates past a limit.
  Result<std::string> Read(const std::string& name) {
    const zip_int64_t index = zip_name_locate(z_, name.c_str(), 0);
    if (index < 0) return Status::NotFound(fmt::format("no {} in the ZIP", name));
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z_, zip_uint64_t(index), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) &&
        st.size > lim_.max_entry)
      return TooBig(name);
    std::unique_ptr<zip_file_t, decltype(&zip_fclose)> f(
        zip_fopen_index(z_, zip_uint64_t(index), 0), zip_fclose);
    if (!f) return Status::Corrupt(fmt::format("ZIP entry {} cannot be read", name));
    std::string out;
    char buf[1 << 16];
    for (;;) {
      const zip_int64_t n = zip_fread(f.get(), buf, sizeof buf);
      if (n < 0) return Status::Corrupt(fmt::format("ZIP entry {} is damaged", name));
      if (n == 0) break;
      out.append(buf, size_t(n));
      unpacked_ += uint64_t(n);
      if (out.size() > lim_.max_entry) return TooBig(name);
      if (unpacked_ > lim_.max_unpacked)
        return Status::TooLarge(
            fmt::format("the ZIP unpacks past {} MB in all", lim_.max_unpacked >> 20));
    }
    return out;
  }

 private:
  Status TooBig(const std::string& name) const {
    return Status::TooLarge(
        fmt::format("ZIP entry {} unpacks past {} MB", name, lim_.max_entry >> 20));
  }
  zip_t* z_ = nullptr;
  const DocLimits& lim_;
  uint64_t unpacked_ = 0;
};

using XmlDoc = std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)>;

Result<XmlDoc> ParseXml(const std::string& bytes, const std::string& name, bool html = false) {
  if (bytes.size() > size_t(INT32_MAX)) return Status::TooLarge(name + " is too large");
  xmlResetLastError();
  xmlDoc* d = html ? htmlReadMemory(bytes.data(), int(bytes.size()), name.c_str(), nullptr,
                                    HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                        HTML_PARSE_RECOVER | HTML_PARSE_NOBLANKS)
                   : xmlReadMemory(bytes.data(), int(bytes.size()), name.c_str(), nullptr,
                                   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (!d) {
    std::string why = "not well-formed";
    if (const xmlError* e = xmlGetLastError(); e && e->message) {
      why = e->message;
      while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
      why += fmt::format(" (line {})", e->line);
    }
    return Status::Corrupt(fmt::format("broken XML in {}: {}", name, why));
  }
  return XmlDoc(d, xmlFreeDoc);
}

std::string_view Name(const xmlNode* n) {
  return n->name ? std::string_view(reinterpret_cast<const char*>(n->name)) : std::string_view();
}

std::string Attr(const xmlNode* n, const char* name) {
  xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
  if (!v) return {};
  std::string s(reinterpret_cast<const char*>(v));
  xmlFree(v);
  return s;
}

// Depth-first over elements and text; entity references are not followed. `enter` returns
// false to skip an element's subtree; `leave` runs after it.
struct Visitor {
  std::function<bool(const xmlNode*)> enter = [](const xmlNode*) { return true; };
  std::function<void(const xmlNode*)> leave = [](const xmlNode*) {};
  std::function<void(const xmlNode* parent, std::string_view text)> text;
};

void Walk(const xmlNode* n, const Visitor& v, const TextSink* stop) {
  for (; n && !(stop && stop->full()); n = n->next) {
    if (n->type == XML_ELEMENT_NODE) {
      if (!v.enter(n)) continue;
      Walk(n->children, v, stop);
      v.leave(n);
    } else if ((n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) && n->content &&
               v.text) {
      v.text(n->parent, reinterpret_cast<const char*>(n->content));
    }
  }
}

// Text of the first element named `local` anywhere under `root`.
std::string FirstText(const xmlNode* root, std::string_view local) {
  std::string found;
  bool done = false;
  Visitor v;
  v.enter = [&](const xmlNode*) { return !done; };
  v.leave = [&](const xmlNode* n) {
    if (!done && Name(n) == local && n->children) {
      TextSink t(300);
      for (const xmlNode* c = n->children; c; c = c->next)
        if (c->type == XML_TEXT_NODE && c->content)
          t.Add(reinterpret_cast<const char*>(c->content));
      found = t.Take();
      done = !found.empty();
    }
  };
  Walk(root, v, nullptr);
  return found;
}

struct Meta {
  std::string title, author, created, language;
};

Meta ReadMeta(const xmlNode* root, bool odf) {
  Meta m;
  m.title = FirstText(root, "title");
  m.author = FirstText(root, "creator");
  if (m.author.empty() && odf) m.author = FirstText(root, "initial-creator");
  m.created = IsoDate(FirstText(root, odf ? "creation-date" : "created"));
  if (m.created.empty()) m.created = IsoDate(FirstText(root, "date"));
  m.language = FirstText(root, "language");
  return m;
}

// OOXML parts: text of w:t / a:t / t runs, paragraphs (w:p, a:p) on their own lines.
void OoxmlText(const xmlNode* root, TextSink* sink) {
  Visitor v;
  v.enter = [](const xmlNode* n) {
    const auto name = Name(n);
    return name != "delText" && name != "instrText" && name != "rPh";  // deleted, field codes
  };
  v.leave = [sink](const xmlNode* n) {
    const auto name = Name(n);
    if (name == "p" || name == "br" || name == "cr") sink->Break();
    if (name == "tab") sink->Space();
  };
  v.text = [sink](const xmlNode* parent, std::string_view t) {
    if (parent && Name(parent) == "t") sink->Add(t);
  };
  Walk(root, v, sink);
}

// ODF content: everything under office:body, paragraphs and headings on their own lines.
void OdfText(const xmlNode* root, TextSink* sink, int* pages) {
  Visitor v;
  v.enter = [pages](const xmlNode* n) {
    const auto name = Name(n);
    if (name == "page" || (name == "table" && n->parent && Name(n->parent) == "spreadsheet"))
      ++*pages;
    return name != "annotation" && name != "tracked-changes";
  };
  v.leave = [sink](const xmlNode* n) {
    const auto name = Name(n);
    if (name == "p" || name == "h" || name == "line-break" || name == "table-row") sink->Break();
    if (name == "s" || name == "tab" || name == "table-cell") sink->Space();
  };
  v.text = [sink](const xmlNode*, std::string_view t) { sink->Add(t); };
  Walk(root, v, sink);
}

// XHTML chapters: body text, block elements on their own lines, scripts and styles skipped.
void HtmlText(const xmlNode* root, TextSink* sink) {
  auto block = [](std::string_view n) {
    return n == "p" || n == "div" || n == "br" || n == "li" || n == "tr" || n == "h1" ||
           n == "h2" || n == "h3" || n == "h4" || n == "h5" || n == "h6" || n == "blockquote" ||
           n == "section" || n == "title";
  };
  Visitor v;
  v.enter = [](const xmlNode* n) {
    const auto name = Name(n);
    return name != "script" && name != "style" && name != "head";
  };
  v.leave = [sink, block](const xmlNode* n) {
    if (block(Name(n))) sink->Break();
  };
  v.text = [sink](const xmlNode*, std::string_view t) { sink->Add(t); };
  Walk(root, v, sink);
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
}

// "%20" and friends in an EPUB href; a path that climbs out (..) is refused.
std::string ResolveHref(const std::string& base, const std::string& href) {
  std::string h;
  for (size_t i = 0; i < href.size(); ++i) {
    if (href[i] == '%' && i + 2 < href.size() &&
        std::isxdigit(static_cast<unsigned char>(href[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(href[i + 2]))) {
      h += char(std::stoi(href.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else if (href[i] == '#') {
      break;
    } else {
      h += href[i];
    }
  }
  std::vector<std::string> parts;
  const std::string full = base + h;
  size_t at = 0;
  while (at <= full.size()) {
    size_t slash = full.find('/', at);
    if (slash == std::string::npos) slash = full.size();
    const std::string part = full.substr(at, slash - at);
    at = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.empty()) return {};
      parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

}  // namespace

DocFormat DetectZip(const uint8_t* data, size_t size) {
  DocLimits small;
  small.max_entry = 256;
  Zip z(data, size, small);
  if (!z.ok()) return DocFormat::kUnknown;
  if (z.Has("mimetype")) {
    auto m = z.Read("mimetype");
    if (m.ok()) {
      std::string s = *m;
      while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
      if (s == "application/vnd.oasis.opendocument.text") return DocFormat::kOdt;
      if (s == "application/vnd.oasis.opendocument.spreadsheet") return DocFormat::kOds;
      if (s == "application/vnd.oasis.opendocument.presentation") return DocFormat::kOdp;
      if (s == "application/epub+zip") return DocFormat::kEpub;
    }
  }
  if (z.Has("word/document.xml")) return DocFormat::kDocx;
  if (z.Has("ppt/presentation.xml") || z.Has("ppt/slides/slide1.xml")) return DocFormat::kPptx;
  if (z.Has("xl/workbook.xml")) return DocFormat::kXlsx;
  return DocFormat::kUnknown;
}

Result<DocText> ExtractZip(const uint8_t* data, size_t size, DocFormat f, const DocLimits& lim) {
  Deadline deadline(lim.max_seconds);
  Zip z(data, size, lim);
  if (!z.ok()) return Status::Corrupt("not a ZIP archive libzip can read");
  DocText out;
  out.format = f;
  TextSink sink(lim.max_chars);
  auto part = [&](const std::string& name, bool html = false) -> Result<XmlDoc> {
    if (deadline.passed())
      return Status::TooLarge(
          fmt::format("text extraction stopped after {:.0f} s", lim.max_seconds));
    auto bytes = z.Read(name);
    if (!bytes.ok()) return bytes.status();
    return ParseXml(*bytes, name, html);
  };
  Meta meta;
  if (f == DocFormat::kDocx || f == DocFormat::kPptx || f == DocFormat::kXlsx) {
    if (z.Has("docProps/core.xml")) {
      auto core = part("docProps/core.xml");
      if (core.ok())
        meta = ReadMeta(xmlDocGetRootElement(core->get()), false);
      else if (core.status().code() == Code::kTooLarge)
        return core.status();
    }
    if (f == DocFormat::kDocx) {
      auto doc = part("word/document.xml");
      if (!doc.ok()) return doc.status();
      OoxmlText(xmlDocGetRootElement(doc->get()), &sink);
    } else if (f == DocFormat::kPptx) {
      int n = 0;
      for (; n < lim.max_pages && !sink.full(); ++n) {
        const std::string name = fmt::format("ppt/slides/slide{}.xml", n + 1);
        if (!z.Has(name)) break;
        auto slide = part(name);
        if (!slide.ok()) return slide.status();
        OoxmlText(xmlDocGetRootElement(slide->get()), &sink);
        sink.Break();
      }
      out.pages = n;
      if (n == lim.max_pages && z.Has(fmt::format("ppt/slides/slide{}.xml", n + 1)))
        out.truncated = true;
    } else {
      std::vector<std::string> shared;
      if (z.Has("xl/sharedStrings.xml")) {
        auto ss = part("xl/sharedStrings.xml");
        if (!ss.ok()) return ss.status();
        for (const xmlNode* si = xmlDocGetRootElement(ss->get())->children; si; si = si->next) {
          if (si->type != XML_ELEMENT_NODE || Name(si) != "si") continue;
          TextSink one(4096);
          OoxmlText(si->children, &one);
          shared.push_back(one.Take());
          if (shared.size() > 1000000) break;
        }
      }
      int n = 0;
      for (; n < lim.max_pages && !sink.full(); ++n) {
        const std::string name = fmt::format("xl/worksheets/sheet{}.xml", n + 1);
        if (!z.Has(name)) break;
        auto sheet = part(name);
        if (!sheet.ok()) return sheet.status();
        Visitor v;
        v.enter = [&](const xmlNode* c) {
          if (Name(c) != "c") return true;
          const std::string type = Attr(c, "t");
          for (const xmlNode* k = c->children; k; k = k->next) {
            if (k->type != XML_ELEMENT_NODE) continue;
            if (Name(k) == "v" && k->children && k->children->content) {
              const std::string val(reinterpret_cast<const char*>(k->children->content));
              if (type == "s") {
                char* end = nullptr;
                const unsigned long i = std::strtoul(val.c_str(), &end, 10);
                if (end && *end == 0 && i < shared.size()) sink.Add(shared[i]);
              } else {
                sink.Add(val);
              }
            } else if (Name(k) == "is") {
              OoxmlText(k->children, &sink);
            }
          }
          sink.Space();
          return false;
        };
        v.leave = [&](const xmlNode* r) {
          if (Name(r) == "row") sink.Break();
        };
        Walk(xmlDocGetRootElement(sheet->get()), v, &sink);
        sink.Break();
      }
      out.pages = n;
    }
  } else if (f == DocFormat::kOdt || f == DocFormat::kOds || f == DocFormat::kOdp) {
    if (z.Has("meta.xml")) {
      auto m = part("meta.xml");
      if (m.ok())
        meta = ReadMeta(xmlDocGetRootElement(m->get()), true);
      else if (m.status().code() == Code::kTooLarge)
        return m.status();
    }
    auto content = part("content.xml");
    if (!content.ok()) return content.status();
    const xmlNode* root = xmlDocGetRootElement(content->get());
    const xmlNode* body = nullptr;
    for (const xmlNode* c = root ? root->children : nullptr; c; c = c->next)
      if (c->type == XML_ELEMENT_NODE && Name(c) == "body") body = c;
    int pages = 0;
    if (body) OdfText(body->children, &sink, &pages);
    out.pages = f == DocFormat::kOdt ? 0 : pages;
  } else if (f == DocFormat::kEpub) {
    auto container = part("META-INF/container.xml");
    if (!container.ok()) return container.status();
    std::string opf;
    Visitor find;
    find.enter = [&](const xmlNode* n) {
      if (opf.empty() && Name(n) == "rootfile") opf = Attr(n, "full-path");
      return opf.empty();
    };
    Walk(xmlDocGetRootElement(container->get()), find, nullptr);
    if (opf.empty()) return Status::Corrupt("EPUB without a rootfile in META-INF/container.xml");
    auto pkg = part(opf);
    if (!pkg.ok()) return pkg.status();
    const xmlNode* root = xmlDocGetRootElement(pkg->get());
    meta = ReadMeta(root, false);
    std::vector<std::pair<std::string, std::string>> manifest;  // id -> href
    std::vector<std::string> spine;
    Visitor v;
    v.enter = [&](const xmlNode* n) {
      if (Name(n) == "item") manifest.emplace_back(Attr(n, "id"), Attr(n, "href"));
      if (Name(n) == "itemref") spine.push_back(Attr(n, "idref"));
      return true;
    };
    Walk(root, v, nullptr);
    out.pages = int(spine.size());
    const std::string base = Dirname(opf);
    int read = 0;
    for (const std::string& id : spine) {
      if (read >= lim.max_pages || sink.full()) {
        out.truncated = true;
        break;
      }
      auto it = std::find_if(manifest.begin(), manifest.end(),
                             [&](const auto& m) { return m.first == id; });
      if (it == manifest.end()) continue;
      const std::string path = ResolveHref(base, it->second);
      if (path.empty() || !z.Has(path)) continue;
      auto chapter = part(path, true);
      if (!chapter.ok()) {
        if (chapter.status().code() == Code::kTooLarge) return chapter.status();
        continue;  // one unreadable chapter: the rest still counts
      }
      ++read;
      HtmlText(xmlDocGetRootElement(chapter->get()), &sink);
      sink.Break();
    }
  }
  out.title = meta.title;
  out.author = meta.author;
  out.created = meta.created;
  out.language = meta.language;
  out.truncated = out.truncated || sink.full();
  out.text = sink.Take();
  return out;
}

}  // namespace lumen::doc::detail
