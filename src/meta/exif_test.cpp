#include <gtest/gtest.h>

#include <exiv2/exiv2.hpp>
#include <random>

#include "lumen/meta/exif.h"
#include "test_support.h"

namespace lumen {
namespace {

std::vector<uint8_t> JpegWithExif() {
  auto jpg = test::Encode(test::MakePicture(64, 48), ".jpg");
  auto img = Exiv2::ImageFactory::open(jpg.data(), static_cast<long>(jpg.size()));
  img->readMetadata();
  Exiv2::ExifData& e = img->exifData();
  e["Exif.Image.Make"] = "Canon";
  e["Exif.Image.Model"] = "Canon EOS 20D";
  e["Exif.Image.Orientation"] = uint16_t(6);
  e["Exif.Photo.DateTimeOriginal"] = "2005:07:28 05:09:07";
  e["Exif.Photo.SubSecTimeOriginal"] = "42";
  e["Exif.Photo.OffsetTimeOriginal"] = "+02:00";
  e["Exif.Photo.ISOSpeedRatings"] = uint16_t(400);
  e["Exif.Photo.FNumber"] = Exiv2::Rational(28, 10);
  e["Exif.Photo.ExposureTime"] = Exiv2::Rational(1, 250);
  e["Exif.Photo.FocalLength"] = Exiv2::Rational(50, 1);
  e["Exif.Photo.LensModel"] = "EF50mm f/1.8 II";
  e["Exif.GPSInfo.GPSLatitudeRef"] = "S";
  e["Exif.GPSInfo.GPSLatitude"] = "33/1 52/1 0/1";
  e["Exif.GPSInfo.GPSLongitudeRef"] = "E";
  e["Exif.GPSInfo.GPSLongitude"] = "151/1 12/1 36/1";
  e["Exif.GPSInfo.GPSAltitudeRef"] = Exiv2::byte(1);
  e["Exif.GPSInfo.GPSAltitude"] = Exiv2::Rational(5, 2);
  img->writeMetadata();
  Exiv2::BasicIo& io = img->io();
  io.seek(0, Exiv2::BasicIo::beg);
  Exiv2::DataBuf buf = io.read(static_cast<long>(io.size()));
  return std::vector<uint8_t>(buf.pData_, buf.pData_ + buf.size_);
}

TEST(Metadata, ReadsEveryField) {
  InitMetadataLibrary();
  auto bytes = JpegWithExif();
  auto m = ReadMetadata(bytes.data(), bytes.size());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(m->has_exif);
  EXPECT_EQ(m->camera_make, "Canon");
  EXPECT_EQ(m->camera_model, "Canon EOS 20D");
  EXPECT_EQ(m->lens, "EF50mm f/1.8 II");
  EXPECT_EQ(m->orientation, 6);
  EXPECT_EQ(m->captured_at, "2005-07-28T05:09:07.42");
  EXPECT_EQ(m->CapturedAtWithOffset(), "2005-07-28T05:09:07.42+02:00");
  EXPECT_EQ(m->iso, 400);
  EXPECT_DOUBLE_EQ(*m->aperture, 2.8);
  EXPECT_EQ(m->ShutterSpeedText(), "1/250");
  EXPECT_DOUBLE_EQ(*m->focal_length, 50.0);
  EXPECT_NEAR(*m->gps_latitude, -(33 + 52 / 60.0), 1e-9);
  EXPECT_NEAR(*m->gps_longitude, 151 + 12 / 60.0 + 36 / 3600.0, 1e-9);
  EXPECT_DOUBLE_EQ(*m->gps_altitude, -2.5);
}

TEST(Metadata, AbsentOrGarbageIsNotFatal) {
  InitMetadataLibrary();
  auto plain = test::Encode(test::MakePicture(32, 32), ".png");
  auto m = ReadMetadata(plain.data(), plain.size());
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->captured_at.has_value());
  EXPECT_EQ(m->orientation, 1);
  std::string junk(1000, '\x17');
  auto bad = ReadMetadata(reinterpret_cast<const uint8_t*>(junk.data()), junk.size());
  EXPECT_FALSE(bad.ok());
}

TEST(Metadata, RandomlyDamagedExifNeverCrashes) {
  InitMetadataLibrary();
  const auto clean = JpegWithExif();
  std::mt19937 rng(99);
  for (int round = 0; round < 300; ++round) {
    std::vector<uint8_t> b = clean;
    // Damage the first 2 kB, where the EXIF block lives.
    int flips = std::uniform_int_distribution<int>(1, 16)(rng);
    for (int k = 0; k < flips; ++k)
      b[std::uniform_int_distribution<size_t>(2, std::min<size_t>(b.size(), 2048) - 1)(rng)] ^=
          static_cast<uint8_t>(1u << std::uniform_int_distribution<int>(0, 7)(rng));
    auto m = ReadMetadata(b.data(), b.size());
    if (m.ok()) {
      EXPECT_GE(m->orientation, 1);
      EXPECT_LE(m->orientation, 8);
    }
  }
}

}  // namespace
}  // namespace lumen
