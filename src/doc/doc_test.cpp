// Documents: detection from content, text and metadata per format, and the bounds that make a
// hostile file cheap (zip bombs, entity expansion, huge lines, deep RTF, time). Inputs are
// built here (ZIPs with libzip in memory, RTF and text inline); PDFs are covered end to end by
// tests/cli/test_documents.py, which writes them with real cross-reference tables.
#include <zip.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "lumen/doc/document.h"

namespace lumen::doc {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) {
  return {s.begin(), s.end()};
}

// A ZIP in memory with the given (name, content) entries, deflated.
std::vector<uint8_t> MakeZip(const std::vector<std::pair<std::string, std::string>>& entries) {
  zip_error_t err;
  zip_error_init(&err);
  zip_source_t* src = zip_source_buffer_create(nullptr, 0, 0, &err);
  zip_source_keep(src);
  zip_t* z = zip_open_from_source(src, ZIP_TRUNCATE, &err);
  EXPECT_NE(z, nullptr);
  std::vector<std::string> keep;  // libzip reads the data at close
  keep.reserve(entries.size());
  for (const auto& [name, content] : entries) {
    keep.push_back(content);
    zip_source_t* s = zip_source_buffer(z, keep.back().data(), keep.back().size(), 0);
    EXPECT_GE(zip_file_add(z, name.c_str(), s, ZIP_FL_ENC_UTF_8), 0);
  }
  EXPECT_EQ(zip_close(z), 0);
  std::vector<uint8_t> out;
  zip_source_open(src);
  zip_source_seek(src, 0, SEEK_END);
  out.resize(size_t(zip_source_tell(src)));
  zip_source_seek(src, 0, SEEK_SET);
  zip_source_read(src, out.data(), out.size());
  zip_source_close(src);
  zip_source_free(src);
  zip_error_fini(&err);
  return out;
}

Result<DocText> Extract(const std::vector<uint8_t>& b, const std::string& name,
                        const DocLimits& lim = {}) {
  const DocFormat f = DetectDocument(b.data(), b.size(), name);
  if (f == DocFormat::kUnknown) return Status::Unsupported("unknown");
  return ExtractText(b.data(), b.size(), f, lim);
}

const char* kDocxCore =
    "<cp:coreProperties xmlns:cp='c' xmlns:dc='http://purl.org/dc/elements/1.1/' "
    "xmlns:dcterms='http://purl.org/dc/terms/'><dc:title>Budget 2025</dc:title>"
    "<dc:creator>Grace</dc:creator><dcterms:created>2025-01-02T03:04:05Z</dcterms:created>"
    "<dc:language>en-GB</dc:language></cp:coreProperties>";

TEST(Document, DocxTextParagraphsAndMetadata) {
  auto z = MakeZip({{"[Content_Types].xml", "<Types/>"},
                    {"word/document.xml",
                     "<w:document xmlns:w='w'><w:body><w:p><w:r><w:t>Hello</w:t></w:r><w:r>"
                     "<w:t xml:space='preserve'> world</w:t></w:r></w:p><w:p><w:r><w:t>Second"
                     "</w:t><w:tab/><w:t>para</w:t><w:instrText>PAGE</w:instrText></w:r></w:p>"
                     "</w:body></w:document>"},
                    {"docProps/core.xml", kDocxCore}});
  auto d = Extract(z, "x.bin");  // by content, not name
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->format, DocFormat::kDocx);
  EXPECT_EQ(d->text, "Hello world\nSecond para");
  EXPECT_EQ(d->title, "Budget 2025");
  EXPECT_EQ(d->author, "Grace");
  EXPECT_EQ(d->created, "2025-01-02T03:04:05");
  EXPECT_EQ(d->language, "en-GB");
}

TEST(Document, SlidesInNumericOrderSheetsWithSharedStrings) {
  std::vector<std::pair<std::string, std::string>> e{{"ppt/presentation.xml", "<p/>"}};
  for (int i = 12; i >= 1; --i)  // stored out of order; slide10 after slide9
    e.emplace_back(
        "ppt/slides/slide" + std::to_string(i) + ".xml",
        "<p:sld xmlns:p='p' xmlns:a='a'><a:p><a:t>S" + std::to_string(i) + "</a:t></a:p></p:sld>");
  auto d = Extract(MakeZip(e), "deck.pptx");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->pages, 12);
  EXPECT_EQ(d->text.substr(0, 20), "S1\nS2\nS3\nS4\nS5\nS6\nS7");
  EXPECT_NE(d->text.find("S9\nS10\nS11\nS12"), std::string::npos) << d->text;
  DocLimits few;
  few.max_pages = 3;
  d = Extract(MakeZip(e), "deck.pptx", few);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->text, "S1\nS2\nS3");
  EXPECT_TRUE(d->truncated);

  auto x =
      MakeZip({{"xl/workbook.xml", "<workbook/>"},
               {"xl/sharedStrings.xml",
                "<sst><si><t>Name</t></si><si><r><t>Al</t></r><r><t>ice</t>"
                "</r></si></sst>"},
               {"xl/worksheets/sheet1.xml",
                "<worksheet><sheetData><row><c t='s'><v>0</v></c><c><v>42</v></c></row><row>"
                "<c t='s'><v>1</v></c><c t='inlineStr'><is><t>inline</t></is></c><c t='s'><v>99</v>"
                "</c></row></sheetData></worksheet>"}});
  d = Extract(x, "a.xlsx");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->format, DocFormat::kXlsx);
  EXPECT_EQ(d->text, "Name 42\nAlice inline");  // an out-of-range string index is dropped
}

TEST(Document, OpenDocumentAndEpub) {
  auto odt = MakeZip(
      {{"mimetype", "application/vnd.oasis.opendocument.text"},
       {"content.xml",
        "<office:document-content xmlns:office='o' xmlns:text='t'><office:body><office:text>"
        "<text:h>Title</text:h><text:p>One<text:s/>two<text:tab/>three</text:p>"
        "</office:text></office:body></office:document-content>"},
       {"meta.xml",
        "<office:document-meta xmlns:office='o' xmlns:meta='m' xmlns:dc='d'><office:meta>"
        "<dc:title>Notes</dc:title><meta:initial-creator>Ann</meta:initial-creator>"
        "<meta:creation-date>2020-02-03T04:05:06</meta:creation-date></office:meta>"
        "</office:document-meta>"}});
  auto d = Extract(odt, "n.odt");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->format, DocFormat::kOdt);
  EXPECT_EQ(d->text, "Title\nOne two three");
  EXPECT_EQ(d->title, "Notes");
  EXPECT_EQ(d->author, "Ann");
  EXPECT_EQ(d->created, "2020-02-03T04:05:06");

  auto epub = MakeZip(
      {{"mimetype", "application/epub+zip"},
       {"META-INF/container.xml",
        "<container><rootfiles><rootfile full-path='OEBPS/content.opf'/></rootfiles></container>"},
       {"OEBPS/content.opf",
        "<package xmlns:dc='dc'><metadata><dc:title>A Book</dc:title><dc:creator>B. Writer"
        "</dc:creator><dc:language>fr</dc:language></metadata><manifest>"
        "<item id='c2' href='ch%202.xhtml'/><item id='c1' href='text/ch1.xhtml'/>"
        "<item id='evil' href='../../etc/passwd'/></manifest>"
        "<spine><itemref idref='c1'/><itemref idref='evil'/><itemref idref='c2'/></spine>"
        "</package>"},
       {"OEBPS/text/ch1.xhtml",
        "<html><head><title>t</title><style>p{}</style></head><body><h1>Chapter 1</h1>"
        "<p>It was&nbsp;a dark night.</p><script>x()</script></body></html>"},
       {"OEBPS/ch 2.xhtml", "<html><body><p>The end.</p></body></html>"}});
  d = Extract(epub, "b.epub");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->format, DocFormat::kEpub);
  EXPECT_EQ(d->text, "Chapter 1\nIt was a dark night.\nThe end.");
  EXPECT_EQ(d->title, "A Book");
  EXPECT_EQ(d->language, "fr");
  EXPECT_EQ(d->pages, 3);
}

TEST(Document, HostileZipsAndXmlAreBounded) {
  // An entry inflating past the limit: refused while inflating (declared sizes may lie).
  std::string zeros(8u << 20, '\0');
  auto bomb = MakeZip({{"word/document.xml", zeros}});
  DocLimits lim;
  lim.max_entry = 1u << 20;
  auto d = Extract(bomb, "bomb.docx", lim);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kTooLarge);
  EXPECT_NE(d.status().message().find("word/document.xml unpacks past 1 MB"), std::string::npos)
      << d.status().message();
  // Broken XML names its part.
  auto broken = MakeZip({{"word/document.xml", "<w:document><w:body><w:p>"}});
  d = Extract(broken, "b.docx");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kCorrupt);
  EXPECT_NE(d.status().message().find("broken XML in word/document.xml"), std::string::npos);
  // Billion laughs: entities are never expanded, so this is quick and small.
  std::string laughs = "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'lol'>";
  for (int i = 1; i <= 9; ++i) {
    laughs.append("<!ENTITY ").push_back(char('a' + i));
    laughs.append(" '");
    for (int k = 0; k < 10; ++k) {
      laughs.push_back('&');
      laughs.push_back(char('a' + i - 1));
      laughs.push_back(';');
    }
    laughs.append("'>");
  }
  laughs +=
      "]><office:document-content xmlns:office='o' xmlns:text='t'><office:body>"
      "<text:p>x&j;y</text:p></office:body></office:document-content>";
  auto odt =
      MakeZip({{"mimetype", "application/vnd.oasis.opendocument.text"}, {"content.xml", laughs}});
  const auto t0 = std::chrono::steady_clock::now();
  d = Extract(odt, "l.odt");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  if (d.ok()) {
    EXPECT_LT(d->text.size(), 100u) << d->text.substr(0, 100);
  }
  // A ZIP that is neither: not a document.
  auto other = MakeZip({{"readme.txt", "hi"}});
  EXPECT_EQ(DetectDocument(other.data(), other.size(), "x.docx"), DocFormat::kUnknown);
}

TEST(Document, PlainTextIsBoundedRepairedAndBinaryRefused) {
  std::string big(30u << 20, 'a');  // one 30 MB "word"
  auto b = Bytes(big);
  const auto t0 = std::chrono::steady_clock::now();
  auto d = Extract(b, "big.txt");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  ASSERT_TRUE(d.ok());
  EXPECT_LE(d->text.size(), DocLimits{}.max_chars);
  EXPECT_TRUE(d->truncated);

  std::vector<uint8_t> bin;
  for (int i = 0; i < 4096; ++i) bin.push_back(uint8_t(i * 7));
  EXPECT_EQ(DetectDocument(bin.data(), bin.size(), "notes.txt"), DocFormat::kUnknown);
  EXPECT_EQ(DetectDocument(bin.data(), bin.size(), "notes.bin"), DocFormat::kUnknown);

  d = Extract(Bytes("# My  Title #\r\n\r\nbody\xFFtext\tend"), "r.md");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->format, DocFormat::kMarkdown);
  EXPECT_EQ(d->title, "My Title");                           // whitespace collapsed
  EXPECT_EQ(d->text, "# My Title #\nbody\xC3\xBFtext end");  // a lone high byte: Latin-1
  // Mostly valid UTF-8 with one broken byte: kept as UTF-8, the byte replaced.
  d = Extract(Bytes("caf\xC3\xA9 x\xFFy"), "r.txt");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->text, "caf\xC3\xA9 x\xEF\xBF\xBDy");
  // Latin-1 text is converted; UTF-16 with a BOM is read.
  d = Extract(Bytes("caf\xE9 cr\xE8me"), "l.txt");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->text, "caf\xC3\xA9 cr\xC3\xA8me");
  d = Extract({0xFF, 0xFE, 'h', 0, 'i', 0, 0xAC, 0x20}, "u.txt");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->text, "hi\xE2\x82\xAC");
  // Not a text name: not a document, even if it is text (logs, source code).
  EXPECT_EQ(DetectDocument(b.data(), 100, "app.log"), DocFormat::kUnknown);
  EXPECT_TRUE(MaybeDocument(b.data(), 4, "x.txt"));
  EXPECT_FALSE(MaybeDocument(reinterpret_cast<const uint8_t*>("PK\x03\x04"), 4, "x.zip"));
  EXPECT_TRUE(MaybeDocument(reinterpret_cast<const uint8_t*>("%PDF-1.4"), 8, "scan"));
}

TEST(Document, RtfEscapesInfoAndDepth) {
  auto d = Extract(Bytes("{\\rtf1\\ansi\\uc1{\\info{\\title Caf\\'e9}{\\author Zo\\u235?}}"
                         "{\\fonttbl{\\f0 Arial;}}{\\colortbl;\\red0;}{\\*\\generator Word;}"
                         "\\f0 Price: 5\\u8364? \\par next\\line line\\tab tab \\{b\\}}"),
                   "x.rtf");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->title, "Caf\xC3\xA9");
  EXPECT_EQ(d->author, "Zo\xC3\xAB");
  EXPECT_EQ(d->text, "Price: 5\xE2\x82\xAC\nnext\nline tab {b}");
  std::string deep = "{\\rtf1 ";
  for (int i = 0; i < 5000; ++i) deep += "{";
  d = Extract(Bytes(deep), "d.rtf");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("nests too deep"), std::string::npos);
}

}  // namespace
}  // namespace lumen::doc
