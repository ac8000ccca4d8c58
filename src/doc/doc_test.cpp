// Documents: detection from content, text and metadata per format, and the bounds that make a
// hostile file cheap (zip bombs, entity expansion, huge lines, deep RTF, time). Inputs are
// built here (ZIPs with libzip in memory, PDFs by a small writer, RTF and text inline);
// tests/cli/test_documents.py covers PDFs end to end as well.
#include <sys/resource.h>
#include <zip.h>

#include <chrono>
#include <cstring>
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

// An EPUB: its container pointing at the package `opf_path`, then the other entries.
std::vector<uint8_t> MakeEpub(const std::string& opf_path, const std::string& opf,
                              std::vector<std::pair<std::string, std::string>> entries) {
  entries.insert(entries.begin(),
                 {{"mimetype", "application/epub+zip"},
                  {"META-INF/container.xml", "<container><rootfiles><rootfile full-path='" +
                                                 opf_path + "'/></rootfiles></container>"},
                  {opf_path, opf}});
  return MakeZip(entries);
}

// Billion laughs: an XML declaration and a DOCTYPE whose entity &j; would expand to 10^9 "lol";
// the caller closes the subset ("]>") and writes the document.
std::string EntityBomb() {
  std::string laughs = "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY a 'lol'>";
  for (int i = 1; i <= 9; ++i) {
    laughs.append("<!ENTITY ").push_back(char('a' + i));
    laughs.append(" '");
    for (int k = 0; k < 10; ++k) laughs.append("&").append(1, char('a' + i - 1)).append(";");
    laughs.append("'>");
  }
  return laughs;
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

  auto epub =
      MakeEpub("OEBPS/content.opf",
               "<package xmlns:dc='dc'><metadata><dc:title>A Book</dc:title><dc:creator>B. Writer"
               "</dc:creator><dc:language>fr</dc:language></metadata><manifest>"
               "<item id='c2' href='ch%202.xhtml'/><item id='c1' href='text/ch1.xhtml'/>"
               "<item id='evil' href='../../etc/passwd'/></manifest>"
               "<spine><itemref idref='c1'/><itemref idref='evil'/><itemref idref='c2'/></spine>"
               "</package>",
               {{"OEBPS/text/ch1.xhtml",
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
  const std::string laughs =
      EntityBomb() +
      "]><office:document-content xmlns:office='o' xmlns:text='t'><office:body>"
      "<text:p>x&j;y</text:p></office:body></office:document-content>";
  auto odt =
      MakeZip({{"mimetype", "application/vnd.oasis.opendocument.text"}, {"content.xml", laughs}});
  const auto t0 = std::chrono::steady_clock::now();
  d = Extract(odt, "l.odt");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  ASSERT_FALSE(d.ok());  // office parts never declare a DOCTYPE: refused
  EXPECT_NE(d.status().message().find("content.xml declares a DOCTYPE"), std::string::npos)
      << d.status().message();
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

// A one-page PDF (200x100 points) with the given content stream, a correct xref table.
std::vector<uint8_t> MakePdf(const std::string& content,
                             const std::string& media_box = "0 0 200 100") {
  std::vector<std::string> objs = {
      "<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [" + media_box +
          "] /Contents 4 0 R "
          "/Resources << /Font << /F1 5 0 R >> >> >>",
      "<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "\nendstream",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"};
  std::string pdf = "%PDF-1.4\n";
  std::vector<size_t> at;
  for (size_t i = 0; i < objs.size(); ++i) {
    at.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objs[i] + "\nendobj\n";
  }
  const size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objs.size() + 1) + "\n0000000000 65535 f \n";
  for (size_t o : at) {
    char line[32];
    std::snprintf(line, sizeof line, "%010zu 00000 n \n", o);
    pdf += line;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objs.size() + 1) + " /Root 1 0 R >>\nstartxref\n" +
         std::to_string(xref) + "\n%%EOF\n";
  return Bytes(pdf);
}

TEST(Document, PdfTextAndRenderedPageColours) {
  // Left half red, right half blue, one line of text: the render is RGB in that order, the
  // whole width of every row (poppler's rgb24 rows are 3 bytes a pixel, padded).
  auto pdf = MakePdf(
      "1 0 0 rg 0 0 100 100 re f 0 0 1 rg 100 0 100 100 re f "
      "BT /F1 12 Tf 0 1 0 rg 10 50 Td (Hello PDF) Tj ET");
  auto d = Extract(pdf, "x.pdf");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->format, DocFormat::kPdf);
  EXPECT_EQ(d->pages, 1);
  EXPECT_NE(d->text.find("Hello PDF"), std::string::npos) << d->text;
  for (int edge : {199, 200, 257}) {  // odd widths: padded rows
    auto img = RenderPdfPage(pdf.data(), pdf.size(), 0, edge);
    ASSERT_TRUE(img.ok()) << img.status().message();
    EXPECT_NEAR(img->width, edge, 1);
    EXPECT_NEAR(img->height, edge / 2, 1);
    ASSERT_EQ(img->channels, 3);
    for (int y : {2, img->height - 3}) {
      const uint8_t* left = img->row(y) + 3 * 2;
      const uint8_t* right = img->row(y) + 3 * (img->width - 3);
      EXPECT_GT(left[0], 200) << edge << " " << y;
      EXPECT_LT(left[1], 50);
      EXPECT_LT(left[2], 50);
      EXPECT_LT(right[0], 50);
      EXPECT_LT(right[1], 50);
      EXPECT_GT(right[2], 200) << edge << " " << y;
    }
  }
  EXPECT_FALSE(RenderPdfPage(pdf.data(), pdf.size(), 1, 100).ok());  // no page 2
  // A page 14 million points square (a scan bomb): rendered at the edge asked for, not at a
  // floor resolution that would need 120 GB.
  auto huge = MakePdf("1 0 0 rg 0 0 14400000 14400000 re f", "0 0 14400000 14400000");
  auto img = RenderPdfPage(huge.data(), huge.size(), 0, 64);
  if (img.ok()) {
    EXPECT_LE(img->width, 65);
    EXPECT_LE(img->height, 65);
  }
}

TEST(Document, EpubPackageEntityBombIsNotExpanded) {
  // EPUB packages and chapters may declare a DOCTYPE, so entities are simply never expanded.
  const std::string opf =
      EntityBomb() +
      "]><package><metadata><title>T&j;</title></metadata><manifest><item id='c' "
      "href='c.xhtml'/></manifest><spine><itemref idref='c'/></spine></package>";
  auto epub = MakeEpub("p.opf", opf,
                       {{"c.xhtml", "<!DOCTYPE html><html><body><p>Only this.</p></body></html>"}});
  const auto t0 = std::chrono::steady_clock::now();
  auto d = Extract(epub, "l.epub");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  if (d.ok()) {
    EXPECT_LT(d->title.size(), 50u);
    EXPECT_EQ(d->text, "Only this.");
  }
}

TEST(Document, EpubSpineOfDanglingReferencesIsCheap) {
  // 200,000 spine entries that name nothing and a chapter that is not well-formed XHTML (read
  // by the HTML parser): quick, and the chapter's text is found.
  std::string opf =
      "<package xmlns='http://www.idpf.org/2007/opf'><metadata "
      "xmlns:dc='http://purl.org/dc/elements/1.1/'><dc:title>Big</dc:title></metadata><manifest>"
      "<item id='c1' href='c1.html'/>";
  for (int i = 0; i < 200000; ++i) opf += "<item id='m" + std::to_string(i) + "' href='n'/>";
  opf += "</manifest><spine><itemref idref='c1'/>";
  for (int i = 0; i < 200000; ++i) opf += "<itemref idref='x" + std::to_string(i) + "'/>";
  opf += "</spine></package>";
  auto epub = MakeEpub("book.opf", opf,
                       {{"c1.html", "<html><body><p>Tag soup<br>still read<p>and on</body>"}});
  const auto t0 = std::chrono::steady_clock::now();
  auto d = Extract(epub, "big.epub");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->title, "Big");
  EXPECT_EQ(d->text, "Tag soup\nstill read\nand on");
  EXPECT_TRUE(d->truncated);  // the spine was not walked to its end
}

long MaxRssMb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

TEST(Document, HugeOfficePartsStreamInLittleMemory) {
  // 30 MB of empty paragraphs (a DOM of it would take about 750 MB): streamed, nothing kept.
  std::string body = "<w:document xmlns:w='w'><w:body>";
  while (body.size() < (30u << 20)) body += "<w:p/>";
  body += "<w:p><w:r><w:t>last</w:t></w:r></w:p></w:body></w:document>";
  auto docx = MakeZip({{"word/document.xml", body}});
  body = std::string();
  const long before = MaxRssMb();
  auto d = Extract(docx, "p.docx");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(d->text, "last");
  EXPECT_LT(MaxRssMb() - before, 300) << "MB above the " << before << " MB before";
  // A DOCTYPE in an office part is refused, as is a part that is not XML at all.
  auto dt = MakeZip({{"word/document.xml", "<!DOCTYPE x><w:document xmlns:w='w'/>"}});
  d = Extract(dt, "t.docx");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("DOCTYPE"), std::string::npos);
  auto junk = MakeZip({{"word/document.xml", std::string(5000, '\x01')}});
  d = Extract(junk, "j.docx");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kCorrupt);
}

TEST(Document, ZipDeclaringAMillionEntriesIsRefusedBeforeOpening) {
  // A real archive whose end record claims 1,000,000 entries (and one in ZIP64 form): refused
  // from the count, by the name's format, without libzip reading a table.
  auto z = MakeZip({{"word/document.xml", "<w:document xmlns:w='w'/>"}});
  ASSERT_GE(z.size(), 22u);
  std::vector<uint8_t> many = z;
  const size_t eocd = many.size() - 22;
  ASSERT_EQ(std::memcmp(many.data() + eocd, "PK\x05\x06", 4), 0);
  const uint32_t n = 1000000;
  many[eocd + 8] = many[eocd + 10] = 0xFF;
  many[eocd + 9] = many[eocd + 11] = 0xFF;  // 0xFFFF: "see ZIP64", which is absent
  auto d = Extract(many, "m.docx");
  EXPECT_FALSE(d.ok());  // 65535 declared: libzip reads and rejects the lie
  // ZIP64: locator + record before the end record.
  std::vector<uint8_t> z64(z.begin(), z.begin() + long(eocd));
  const size_t rec = z64.size();
  auto put = [&](std::vector<uint8_t>* v, uint64_t x, int bytes) {
    for (int i = 0; i < bytes; ++i) v->push_back(uint8_t(x >> (8 * i)));
  };
  // The ZIP64 end locator: its signature, disk 0, the record's offset, 1 disk.
  auto locator = [&](std::vector<uint8_t>* v, uint64_t record_at) {
    put(v, 0x07064b50, 4);
    put(v, 0, 4);
    put(v, record_at, 8);
    put(v, 1, 4);
  };
  put(&z64, 0x06064b50, 4);
  put(&z64, 44, 8);
  put(&z64, 45, 2);
  put(&z64, 45, 2);
  put(&z64, 0, 4);
  put(&z64, 0, 4);
  put(&z64, n, 8);
  put(&z64, n, 8);
  put(&z64, 0, 8);
  put(&z64, 0, 8);
  locator(&z64, rec);
  z64.insert(z64.end(), many.begin() + long(eocd), many.end());
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(DetectDocument(z64.data(), z64.size(), "m.docx"), DocFormat::kDocx);
  d = Extract(z64, "m.docx");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kTooLarge);
  EXPECT_NE(d.status().message().find("1000000 entries"), std::string::npos)
      << d.status().message();
  EXPECT_EQ(DetectDocument(z64.data(), z64.size(), "m.zip"), DocFormat::kUnknown);
  // A 50-byte file: a ZIP64 locator pointing far past its end is not followed.
  std::vector<uint8_t> tiny = {'P', 'K', 3, 4, 0, 0, 0, 0};
  locator(&tiny, 0x7FFFFFF0ull);
  put(&tiny, 0x06054b50, 4);
  put(&tiny, 0, 4);
  put(&tiny, 0xFFFF, 2);
  put(&tiny, 0xFFFF, 2);
  put(&tiny, 0, 4);
  put(&tiny, 0, 4);
  put(&tiny, 0, 2);
  ASSERT_EQ(tiny.size(), 50u);
  EXPECT_FALSE(Extract(tiny, "t.docx").ok());
}

}  // namespace
}  // namespace lumen::doc
